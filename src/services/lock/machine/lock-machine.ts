import type { AppliedEntry, StateMachine } from "../../../host/state-machine.ts";
import { decodeLockCommand } from "./codec.ts";
import { DeadlineQueue, type Deadline } from "./deadline-queue.ts";
import {
  assertResource,
  canGrantNow,
  compatible,
  invariant,
  ResourceTable,
  viewOf,
  type Hold,
  type Resource,
  type Waiter,
} from "./resource-table.ts";
import { checkSeq, clampSessionTtl, isLive, newSession, SESSION_TTL_MS_MAX_DEFAULT, type Session } from "./sessions.ts";
import { decodeSnapshot, encodeSnapshot, type LockCounters } from "./snapshot.ts";
import type {
  LockCommand,
  LockErrorCode,
  LockEvent,
  LockMachineOptions,
  LockMode,
  LockResult,
  LockStats,
  ResourceView,
  SessionView,
} from "./types.ts";
import { badClientId, badResource, isId, isMode, isTime } from "./validate.ts";
import { findCycle, type GraphSource, type WaitEdge } from "./wait-for-graph.ts";

export { encodeLockCommand, decodeLockCommand } from "./codec.ts";

const WAITERS_PER_RESOURCE_MAX_DEFAULT = 10_000;

type Acquire = Extract<LockCommand, { op: "acquire" }>;
type Release = Extract<LockCommand, { op: "release" }>;

function fail(code: LockErrorCode, message: string): LockResult {
  return { ok: false, code, message };
}

function invalid(message: string): LockResult {
  return fail("INVALID_ARGUMENT", message);
}

function sessionExpired(id: number): LockResult {
  return fail("SESSION_EXPIRED", `session ${id} is unknown or expired`);
}

/**
 * The lock service's replicated state machine (Raft group 0): sessions with TTLs, shared and
 * exclusive locks with FIFO wait queues, fencing tokens, per-acquire TTLs and wait deadlines,
 * deadlock detection on a wait-for graph between sessions, and exactly-once acquire/release
 * under client retries.
 *
 * Pure and deterministic: no clock (time is the leader's `now` inside each command), no
 * randomness, no I/O; every iteration that can influence a decision runs in an order that the
 * snapshot preserves. The same log gives the same state, results and events on every replica.
 *
 * Upgrades (shared → exclusive while holding) are refused with UPGRADE_REFUSED: two shared
 * holders that both upgrade would wait for each other forever, and an upgrade that jumps the
 * queue would starve writers already waiting. Releasing and acquiring exclusive is explicit
 * about the window in which another writer may get in first. A downgrade is refused the same way.
 */
export class LockMachine implements StateMachine {
  readonly #onEvent: ((e: LockEvent) => void) | undefined;
  readonly #sessionTtlMsMax: number;
  readonly #waitersMax: number;

  #sessions = new Map<number, Session>();
  #table = new ResourceTable();
  #deadlines = new DeadlineQueue();
  #counters: LockCounters = { grants: 0, deadlocks: 0, sessionExpiries: 0 };
  #lastIndex = 0;
  #locksHeld = 0;
  #waiting = 0;

  /** The wait-for graph as the deadlock search sees it. */
  readonly #graph: GraphSource = {
    waitsOf: (id) => this.#sessions.get(id)?.waits.values() ?? [],
    waitCount: (id) => this.#sessions.get(id)?.waits.size ?? 0,
    resource: (name) => this.#table.get(name),
  };

  // Context of the entry being applied.
  #index = 0;
  #now = 0;
  #events: LockEvent[] = [];

  constructor(opts: LockMachineOptions = {}) {
    this.#onEvent = opts.onEvent;
    this.#sessionTtlMsMax = opts.sessionTtlMsMax ?? SESSION_TTL_MS_MAX_DEFAULT;
    this.#waitersMax = opts.waitersPerResourceMax ?? WAITERS_PER_RESOURCE_MAX_DEFAULT;
  }

  /** Applies a committed entry; an empty entry (a leader's no-op) returns null. */
  apply(entry: AppliedEntry): LockResult | null {
    if (entry.data.length === 0) {
      this.#advance(entry.index);
      return null;
    }
    let cmd: unknown;
    try {
      cmd = decodeLockCommand(entry.data);
    } catch {
      cmd = undefined; // Undecodable bytes are bad input: answered, not thrown.
    }
    return this.applyCommand(cmd as LockCommand, entry.index);
  }

  /**
   * Applies one command as the entry at log `index`. Indices must increase from call to call
   * (they are session ids and fencing tokens); anything else is a caller bug and throws. Bad
   * commands never throw: they get INVALID_ARGUMENT. Events are delivered after the state change
   * is complete, so a throwing listener cannot leave the state half-updated.
   */
  applyCommand(cmd: LockCommand, index: number): LockResult {
    this.#advance(index);
    this.#index = index;
    this.#events = [];
    const result = this.#dispatch(cmd as unknown);
    const events = this.#events;
    this.#events = [];
    if (this.#onEvent !== undefined) for (const e of events) this.#onEvent(e);
    return result;
  }

  snapshot(): Uint8Array {
    return encodeSnapshot({ lastIndex: this.#lastIndex, counters: this.#counters, sessions: this.#sessions, table: this.#table });
  }

  restore(data: Uint8Array): void {
    const st = decodeSnapshot(data);
    this.#lastIndex = st.lastIndex;
    this.#counters = st.counters;
    this.#sessions = st.sessions;
    this.#table = st.table;
    // Rebuild the derived indexes. The heap pops in a total order, so rebuilding it from the
    // state gives the same behaviour as the heap the original built entry by entry.
    this.#deadlines.clear();
    this.#locksHeld = 0;
    this.#waiting = 0;
    for (const s of this.#sessions.values()) this.#deadlines.push({ at: s.expiresAt, kind: "session", sessionId: s.id });
    for (const r of this.#table.values()) {
      assertResource(r);
      this.#locksHeld += r.holders.size;
      this.#waiting += r.waiters.length;
      for (const h of r.holders.values()) this.#pushHoldDeadline(r.name, h);
      for (const w of r.waiters) this.#pushWaitDeadline(w);
    }
  }

  // ---- read-only views ----

  /**
   * The earliest pending session expiry, hold TTL or wait deadline, or null: the leader proposes
   * `expire` once its clock reaches it. (Drops stale heap entries on the way: no logical change.)
   */
  nextDeadline(): number | null {
    for (;;) {
      const d = this.#deadlines.peek();
      if (d === undefined) return null;
      if (this.#isCurrent(d)) return d.at;
      this.#deadlines.pop();
    }
  }

  /** A copy of one resource's holders (grant order) and waiters (queue order), or null if idle. */
  resource(name: string): ResourceView | null {
    const r = this.#table.get(name);
    return r === undefined ? null : viewOf(r);
  }

  /** Names of the resources somebody holds or waits for, sorted. */
  resources(): string[] {
    return this.#table.names();
  }

  session(id: number): SessionView | null {
    const s = this.#sessions.get(id);
    return s === undefined ? null : { id: s.id, clientId: s.clientId, expiresAt: s.expiresAt, ttlMs: s.ttlMs, createdIndex: s.createdIndex };
  }

  stats(): LockStats {
    return {
      sessions: this.#sessions.size,
      locksHeld: this.#locksHeld,
      waiters: this.#waiting,
      grants: this.#counters.grants,
      deadlocks: this.#counters.deadlocks,
      sessionExpiries: this.#counters.sessionExpiries,
    };
  }

  // ---- commands ----

  #advance(index: number): void {
    // Invariant: entries are applied once, in log order (ids and tokens are log indices).
    invariant(isId(index) && index > this.#lastIndex, `entry ${index} applied after ${this.#lastIndex}`);
    this.#lastIndex = index;
  }

  #dispatch(c: unknown): LockResult {
    if (c === null || typeof c !== "object" || Array.isArray(c)) return invalid("a lock command must be a map");
    const cmd = c as { op?: unknown; now?: unknown };
    if (!isTime(cmd.now)) return invalid("now must be a finite number >= 0");
    this.#now = cmd.now;
    switch (cmd.op) {
      case "session.open":
        return this.#open(c as Extract<LockCommand, { op: "session.open" }>);
      case "session.keepalive":
        return this.#keepalive(c as Extract<LockCommand, { op: "session.keepalive" }>);
      case "session.close":
        return this.#close(c as Extract<LockCommand, { op: "session.close" }>);
      case "expire":
        return this.#expire();
      case "acquire":
        return this.#sequenced(c as Acquire, () => this.#acquire(c as Acquire));
      case "release":
        return this.#sequenced(c as Release, () => this.#release(c as Release));
      default:
        return invalid(`unknown lock op ${JSON.stringify(String(cmd.op)).slice(0, 80)}`);
    }
  }

  #open(cmd: Extract<LockCommand, { op: "session.open" }>): LockResult {
    const bad = badClientId(cmd.clientId);
    if (bad !== null) return invalid(bad);
    if (!isTime(cmd.ttlMs)) return invalid("ttlMs must be a finite number >= 0");
    const s = newSession(this.#index, cmd.clientId, clampSessionTtl(cmd.ttlMs, this.#sessionTtlMsMax), this.#now);
    this.#sessions.set(s.id, s);
    this.#deadlines.push({ at: s.expiresAt, kind: "session", sessionId: s.id });
    return { ok: true, kind: "session", sessionId: s.id, expiresAt: s.expiresAt };
  }

  #keepalive(cmd: Extract<LockCommand, { op: "session.keepalive" }>): LockResult {
    if (!isId(cmd.sessionId)) return invalid("sessionId must be an integer >= 0");
    const s = this.#sessions.get(cmd.sessionId);
    if (!isLive(s, this.#now)) return sessionExpired(cmd.sessionId);
    // Never shorten: after a leader change the new leader's clock may lag the old one's.
    const expiresAt = this.#now + s.ttlMs;
    if (expiresAt > s.expiresAt) {
      s.expiresAt = expiresAt;
      this.#deadlines.push({ at: expiresAt, kind: "session", sessionId: s.id });
    }
    return { ok: true, kind: "session", sessionId: s.id, expiresAt: s.expiresAt };
  }

  #close(cmd: Extract<LockCommand, { op: "session.close" }>): LockResult {
    if (!isId(cmd.sessionId)) return invalid("sessionId must be an integer >= 0");
    const s = this.#sessions.get(cmd.sessionId);
    if (s === undefined) return sessionExpired(cmd.sessionId);
    // The closing client is the proposer: it hears nothing about its own holds and waits.
    for (const name of this.#endSession(s, false)) this.#promote(name);
    return { ok: true, kind: "session", sessionId: s.id, expiresAt: this.#now };
  }

  /**
   * Settles everything due at `now` in phases: expired sessions, then hold TTLs, then wait
   * deadlines are all removed first; only then are the freed resources granted to the surviving
   * waiters. So nothing granted by an `expire` is taken back by the same `expire`, and a
   * resource never gets two exclusive grants carrying the same token (the entry's index).
   */
  #expire(): LockResult {
    const now = this.#now;
    const due: Deadline[] = [];
    for (let d = this.#deadlines.peek(); d !== undefined && d.at <= now; d = this.#deadlines.peek()) {
      this.#deadlines.pop();
      due.push(d);
    }
    const affected = new Set<string>();
    const expired: number[] = [];
    for (const d of due) {
      if (d.kind !== "session" || !this.#isCurrent(d)) continue;
      const s = this.#sessions.get(d.sessionId)!;
      for (const name of this.#endSession(s, true)) affected.add(name);
      expired.push(s.id);
    }
    for (const d of due) {
      if (d.kind !== "hold" || !this.#isCurrent(d)) continue;
      const r = this.#table.get(d.resource)!;
      this.#removeHold(r, d.sessionId);
      this.#emit({ kind: "lost", sessionId: d.sessionId, resource: d.resource, token: d.token, reason: "ttl" });
      affected.add(d.resource);
    }
    for (const d of due) {
      if (d.kind !== "wait" || !this.#isCurrent(d)) continue;
      const w = this.#sessions.get(d.sessionId)!.waits.get(d.resource)!;
      this.#removeWaiter(this.#table.get(d.resource)!, w);
      this.#refuse(w, "LOCK_WAIT_TIMEOUT", `wait for ${d.resource} timed out`);
      affected.add(d.resource);
    }
    for (const name of [...affected].sort()) this.#promote(name);
    return { ok: true, kind: "expired", sessions: expired.sort((a, b) => a - b) };
  }

  /** Validation, session check and dedup shared by acquire and release. */
  #sequenced(cmd: Acquire | Release, run: () => LockResult): LockResult {
    if (!isId(cmd.sessionId)) return invalid("sessionId must be an integer >= 0");
    if (!isId(cmd.seq)) return invalid("seq must be an integer >= 0");
    const badName = badResource(cmd.resource);
    if (badName !== null) return invalid(badName);
    if (cmd.op === "acquire") {
      if (!isMode(cmd.mode)) return invalid('mode must be "exclusive" or "shared"');
      if (cmd.ttlMs !== null && !isTime(cmd.ttlMs)) return invalid("ttlMs must be null or a finite number >= 0");
      if (cmd.waitMs !== -1 && !isTime(cmd.waitMs)) return invalid("waitMs must be -1 (forever) or a finite number >= 0");
    } else if (!isId(cmd.token)) {
      return invalid("token must be an integer >= 0");
    }
    const s = this.#sessions.get(cmd.sessionId);
    if (!isLive(s, this.#now)) return sessionExpired(cmd.sessionId);
    const seen = checkSeq(s, cmd.seq);
    if (!seen.fresh) return seen.result;
    const result = run();
    s.lastSeq = cmd.seq;
    s.lastResult = result;
    return { ...result };
  }

  #acquire(cmd: Acquire): LockResult {
    const s = this.#sessions.get(cmd.sessionId)!;
    const name = cmd.resource;
    const mode = cmd.mode;
    const r = this.#table.get(name);
    const held = r?.holders.get(s.id);
    if (held !== undefined) {
      // Re-entrant and idempotent: the same grant, not a second hold.
      if (held.mode === mode) return this.#granted(name, held);
      return fail(
        "UPGRADE_REFUSED",
        `session ${s.id} holds ${name} ${held.mode}; changing a held lock to ${mode} is not supported (release it first, then acquire ${mode})`,
      );
    }
    const pending = s.waits.get(name);
    if (pending !== undefined) {
      // A session waits at most once per resource: a repeat of the same request reports it.
      if (pending.mode === mode) return { ok: true, kind: "queued", resource: name, position: r!.waiters.indexOf(pending), waitId: pending.waitId };
      return invalid(`session ${s.id} already waits for ${name} ${pending.mode} (waitId ${pending.waitId})`);
    }
    const ttlMs = cmd.ttlMs === null || cmd.ttlMs === 0 ? null : cmd.ttlMs;
    if (canGrantNow(r, mode)) return this.#granted(name, this.#grant(this.#table.getOrCreate(name), s.id, mode, ttlMs, null));
    const res = r!;
    if (cmd.waitMs === 0) return fail("LOCK_HELD", this.#describeBlocker(res, mode));
    if (res.waiters.length >= this.#waitersMax) return fail("LOCK_HELD", `${name}: wait queue full (${this.#waitersMax} waiters)`);

    const waiter: Waiter = {
      resource: name,
      sessionId: s.id,
      waitId: this.#index,
      mode,
      deadline: cmd.waitMs < 0 ? null : this.#now + cmd.waitMs,
      ttlMs,
    };
    res.waiters.push(waiter);
    s.waits.set(name, waiter);
    this.#waiting++;

    // Break every cycle the new wait closes. The graph was acyclic before, so each cycle runs
    // through the requester; refusing the youngest session of the cycle breaks it, and if that
    // is the requester, no other request needs to be refused.
    for (;;) {
      if (s.waits.get(name) !== waiter) break; // Granted meanwhile (a victim ahead left).
      const cycle = findCycle(s.id, this.#graph);
      if (cycle === null) break;
      this.#counters.deadlocks++;
      const victim = cycle.reduce((a, b) => (b.from > a.from ? b : a));
      const message = `deadlock: ${describeCycle(cycle)}; refused the youngest session, ${victim.from}`;
      if (victim.from === s.id) {
        // Leaving from the tail cannot unblock anyone: no promotion, no side effects.
        this.#removeWaiter(res, waiter);
        assertResource(res);
        return fail("DEADLOCK", message);
      }
      const vw = this.#sessions.get(victim.from)!.waits.get(victim.resource)!;
      this.#removeWaiter(this.#table.get(victim.resource)!, vw);
      this.#refuse(vw, "DEADLOCK", message);
      this.#promote(victim.resource);
    }
    const granted = res.holders.get(s.id);
    if (granted !== undefined) return this.#granted(name, granted);
    this.#pushWaitDeadline(waiter);
    return { ok: true, kind: "queued", resource: name, position: res.waiters.indexOf(waiter), waitId: waiter.waitId };
  }

  #release(cmd: Release): LockResult {
    const s = this.#sessions.get(cmd.sessionId)!;
    const name = cmd.resource;
    const r = this.#table.get(name);
    const hold = r?.holders.get(s.id);
    if (r !== undefined && hold !== undefined && hold.token === cmd.token) {
      this.#removeHold(r, s.id);
      this.#promote(name);
      return { ok: true, kind: "released", resource: name };
    }
    const pending = s.waits.get(name);
    if (r !== undefined && pending !== undefined && pending.waitId === cmd.token) {
      this.#removeWaiter(r, pending);
      this.#promote(name);
      return { ok: true, kind: "released", resource: name };
    }
    return fail(
      "NOT_HELD",
      hold !== undefined
        ? `session ${s.id} holds ${name} with token ${hold.token}, not ${cmd.token}`
        : `session ${s.id} does not hold ${name}`,
    );
  }

  // ---- state changes ----

  /**
   * Grants from the head of the queue: one exclusive request, or a run of consecutive shared
   * ones. A head whose wait deadline has passed is refused (TIMEOUT) rather than granted late,
   * even if the leader has not proposed `expire` for it yet. Drops the resource when idle.
   */
  #promote(name: string): void {
    const r = this.#table.get(name);
    if (r === undefined) return;
    while (r.waiters.length > 0) {
      const head = r.waiters[0]!;
      if (head.deadline !== null && head.deadline <= this.#now) {
        this.#removeWaiter(r, head);
        this.#refuse(head, "LOCK_WAIT_TIMEOUT", `wait for ${name} timed out`);
        continue;
      }
      if (!compatible(r, head.mode)) break;
      this.#removeWaiter(r, head);
      this.#grant(r, head.sessionId, head.mode, head.ttlMs, head.waitId);
      if (head.mode === "exclusive") break;
    }
    assertResource(r);
    this.#table.dropIfIdle(r);
  }

  /** Makes `sessionId` a holder; the token is the index of the entry being applied. */
  #grant(r: Resource, sessionId: number, mode: LockMode, ttlMs: number | null, waitId: number | null): Hold {
    const token = this.#index;
    // Invariant: fencing tokens strictly increase per resource; only shared holders granted by
    // the same entry share its token (an exclusive grant is never undone by its own entry).
    invariant(
      token > r.lastToken || (token === r.lastToken && mode === "shared" && r.lastMode === "shared"),
      `${r.name}: token ${token} (${mode}) after ${r.lastToken} (${r.lastMode})`,
    );
    // Invariant: never two exclusive holders, never an exclusive beside a shared one.
    invariant(compatible(r, mode), `${r.name}: ${mode} grant beside ${r.mode} holders`);
    const hold: Hold = { sessionId, token, mode, expiresAt: ttlMs === null ? null : this.#now + ttlMs };
    r.holders.set(sessionId, hold);
    r.mode = mode;
    r.lastToken = token;
    r.lastMode = mode;
    this.#sessions.get(sessionId)!.holds.add(r.name);
    this.#locksHeld++;
    this.#counters.grants++;
    this.#pushHoldDeadline(r.name, hold);
    if (waitId !== null) this.#emit({ kind: "granted", sessionId, waitId, resource: r.name, mode, token });
    return hold;
  }

  #removeHold(r: Resource, sessionId: number): void {
    invariant(r.holders.delete(sessionId), `${r.name}: session ${sessionId} is not a holder`);
    this.#sessions.get(sessionId)?.holds.delete(r.name);
    if (r.holders.size === 0) r.mode = null;
    this.#locksHeld--;
  }

  #removeWaiter(r: Resource, w: Waiter): void {
    const i = r.waiters.indexOf(w);
    invariant(i >= 0, `${r.name}: wait ${w.waitId} is not queued`);
    r.waiters.splice(i, 1);
    this.#sessions.get(w.sessionId)?.waits.delete(r.name);
    this.#waiting--;
  }

  /**
   * Removes a session with its holds and waits; returns the resources to promote (sorted). An
   * expiry tells the owner (lost per hold, refused per wait, then session-expired); a close does
   * not, its owner being the proposer.
   */
  #endSession(s: Session, expired: boolean): string[] {
    const names = [...new Set([...s.holds, ...s.waits.keys()])].sort();
    for (const name of names) {
      const r = this.#table.get(name)!;
      const hold = r.holders.get(s.id);
      if (hold !== undefined) {
        this.#removeHold(r, s.id);
        if (expired) this.#emit({ kind: "lost", sessionId: s.id, resource: name, token: hold.token, reason: "session-expired" });
      }
      const w = s.waits.get(name);
      if (w !== undefined) {
        this.#removeWaiter(r, w);
        if (expired) this.#refuse(w, "SESSION_EXPIRED", `session ${s.id} expired`);
      }
    }
    this.#sessions.delete(s.id);
    if (expired) {
      this.#counters.sessionExpiries++;
      this.#emit({ kind: "session-expired", sessionId: s.id });
    }
    return names;
  }

  #refuse(w: Waiter, code: "DEADLOCK" | "LOCK_WAIT_TIMEOUT" | "SESSION_EXPIRED", message: string): void {
    this.#emit({ kind: "refused", sessionId: w.sessionId, waitId: w.waitId, resource: w.resource, code, message });
  }

  /** Queues an event; one about the proposer's own request is dropped (it is in the result). */
  #emit(e: LockEvent): void {
    if ((e.kind === "granted" || e.kind === "refused") && e.waitId === this.#index) return;
    this.#events.push(e);
  }

  // ---- deadlines ----

  #pushHoldDeadline(resource: string, h: Hold): void {
    if (h.expiresAt !== null) this.#deadlines.push({ at: h.expiresAt, kind: "hold", resource, sessionId: h.sessionId, token: h.token });
  }

  #pushWaitDeadline(w: Waiter): void {
    if (w.deadline !== null) this.#deadlines.push({ at: w.deadline, kind: "wait", resource: w.resource, sessionId: w.sessionId, waitId: w.waitId });
  }

  /** Whether a heap entry still describes the state (lazy deletion). */
  #isCurrent(d: Deadline): boolean {
    switch (d.kind) {
      case "session":
        return this.#sessions.get(d.sessionId)?.expiresAt === d.at;
      case "hold": {
        const h = this.#table.get(d.resource)?.holders.get(d.sessionId);
        return h !== undefined && h.token === d.token && h.expiresAt === d.at;
      }
      case "wait": {
        const w = this.#sessions.get(d.sessionId)?.waits.get(d.resource);
        return w !== undefined && w.waitId === d.waitId && w.deadline === d.at;
      }
    }
  }

  // ---- results ----

  #granted(resource: string, h: Hold): LockResult {
    return { ok: true, kind: "granted", resource, mode: h.mode, token: h.token, sessionId: h.sessionId };
  }

  #describeBlocker(r: Resource, mode: LockMode): string {
    if (r.holders.size === 0 || compatible(r, mode)) return `${r.name} has ${r.waiters.length} request(s) queued ahead`;
    const ids = [...r.holders.keys()];
    const shown = ids.slice(0, 8).join(", ") + (ids.length > 8 ? ", …" : "");
    return `${r.name} is held ${r.mode} by session(s) ${shown}`;
  }
}

/** A readable cycle, capped so a long cycle cannot make a huge result (the log keeps it). */
function describeCycle(cycle: WaitEdge[]): string {
  const shown = cycle.slice(0, 8).map((e) => `session ${e.from} waits on ${JSON.stringify(e.resource.slice(0, 64))} for session ${e.to}`);
  if (cycle.length > shown.length) shown.push(`… (${cycle.length} sessions in the cycle)`);
  return shown.join(", ");
}
