import { decodeCommand, encodeCommand } from "../../command-codec.ts";
import { invariant, ResourceTable, type Hold, type Resource, type Waiter } from "./resource-table.ts";
import type { Session } from "./sessions.ts";
import type { LockMode, LockResult } from "./types.ts";

/** Cumulative counters (the gauges are recomputed from the state). */
export interface LockCounters {
  grants: number;
  deadlocks: number;
  sessionExpiries: number;
}

/** Everything a snapshot carries. Derived indexes (deadline heap, gauges) are rebuilt. */
export interface LockState {
  lastIndex: number;
  counters: LockCounters;
  sessions: Map<number, Session>;
  table: ResourceTable;
}

const VERSION = 1;

type SessionRow = [id: number, clientId: string, ttlMs: number, expiresAt: number, createdIndex: number, lastSeq: number, lastResult: LockResult | null];
type HolderRow = [sessionId: number, token: number, mode: LockMode, expiresAt: number | null];
type WaiterRow = [sessionId: number, waitId: number, mode: LockMode, deadline: number | null, ttlMs: number | null];
type ResourceRow = [name: string, mode: LockMode | null, lastToken: number, lastMode: LockMode | null, holders: HolderRow[], waiters: WaiterRow[]];

interface Image {
  v: number;
  lastIndex: number;
  counters: LockCounters;
  sessions: SessionRow[];
  resources: ResourceRow[];
}

/**
 * Serializes the state. Maps are written in their iteration order and restored in the same
 * order, so a restored machine iterates (and therefore decides) exactly like the original, and
 * snapshots of identical states are identical bytes.
 */
export function encodeSnapshot(st: LockState): Uint8Array {
  const image: Image = {
    v: VERSION,
    lastIndex: st.lastIndex,
    counters: { grants: st.counters.grants, deadlocks: st.counters.deadlocks, sessionExpiries: st.counters.sessionExpiries },
    sessions: [...st.sessions.values()].map((s) => [s.id, s.clientId, s.ttlMs, s.expiresAt, s.createdIndex, s.lastSeq, s.lastResult]),
    resources: [...st.table.values()].map((r) => [
      r.name,
      r.mode,
      r.lastToken,
      r.lastMode,
      [...r.holders.values()].map((h): HolderRow => [h.sessionId, h.token, h.mode, h.expiresAt]),
      r.waiters.map((w): WaiterRow => [w.sessionId, w.waitId, w.mode, w.deadline, w.ttlMs]),
    ]),
  };
  return encodeCommand(image);
}

/** Rebuilds the state from {@link encodeSnapshot}'s bytes, including each session's holds and waits. */
export function decodeSnapshot(data: Uint8Array): LockState {
  const image = decodeCommand(data) as Image;
  invariant(image !== null && typeof image === "object" && image.v === VERSION, `unknown lock snapshot version ${String((image as Image | null)?.v)}`);
  const sessions = new Map<number, Session>();
  for (const [id, clientId, ttlMs, expiresAt, createdIndex, lastSeq, lastResult] of image.sessions) {
    sessions.set(id, { id, clientId, ttlMs, expiresAt, createdIndex, lastSeq, lastResult, holds: new Set(), waits: new Map() });
  }
  const table = new ResourceTable();
  const waiters: Waiter[] = [];
  for (const [name, mode, lastToken, lastMode, holderRows, waiterRows] of image.resources) {
    const r: Resource = { name, mode, holders: new Map(), waiters: [], lastToken, lastMode };
    for (const [sessionId, token, hmode, expiresAt] of holderRows) {
      const hold: Hold = { sessionId, token, mode: hmode, expiresAt };
      r.holders.set(sessionId, hold);
      const s = sessions.get(sessionId);
      invariant(s !== undefined, `snapshot: holder ${sessionId} of ${name} has no session`);
      s.holds.add(name);
    }
    for (const [sessionId, waitId, wmode, deadline, ttlMs] of waiterRows) {
      const w: Waiter = { resource: name, sessionId, waitId, mode: wmode, deadline, ttlMs };
      r.waiters.push(w);
      waiters.push(w);
    }
    table.put(r);
  }
  // A session's waits were inserted in waitId order (each acquire has a higher index than the
  // last), so sorting by waitId restores the original iteration order.
  waiters.sort((a, b) => a.waitId - b.waitId);
  for (const w of waiters) {
    const s = sessions.get(w.sessionId);
    invariant(s !== undefined, `snapshot: waiter ${w.waitId} has no session`);
    s.waits.set(w.resource, w);
  }
  return { lastIndex: image.lastIndex, counters: { ...image.counters }, sessions, table };
}
