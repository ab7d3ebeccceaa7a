import type { LockResult } from "./types.ts";
import type { Waiter } from "./resource-table.ts";

/** Shortest session TTL: keepalives more often than once a second would only load the log. */
export const SESSION_TTL_MS_MIN = 1000;
/** Default longest session TTL: 5 minutes. */
export const SESSION_TTL_MS_MAX_DEFAULT = 5 * 60_000;

/**
 * A client session: the owner of every hold and wait. Its id is the log index of its
 * `session.open`, so ids grow with age ("youngest" = highest id, which deadlock resolution uses).
 */
export interface Session {
  readonly id: number;
  readonly clientId: string;
  readonly ttlMs: number;
  expiresAt: number;
  readonly createdIndex: number;
  /**
   * Dedup state: the highest applied acquire/release `seq` and its result. A retry of that seq
   * (reply lost, leader changed) gets the same result instead of acting twice; older seqs are
   * refused, since only the last result is kept.
   */
  lastSeq: number;
  lastResult: LockResult | null;
  /** Names of the resources it holds (iterate sorted: insertion order is not canonical). */
  readonly holds: Set<string>;
  /** Its pending requests by resource; insertion order is waitId order (restore keeps it). */
  readonly waits: Map<string, Waiter>;
}

/** Creates a session opened by the entry at `index`. */
export function newSession(index: number, clientId: string, ttlMs: number, now: number): Session {
  return {
    id: index,
    clientId,
    ttlMs,
    expiresAt: now + ttlMs,
    createdIndex: index,
    lastSeq: -1,
    lastResult: null,
    holds: new Set(),
    waits: new Map(),
  };
}

/** Clamps a requested session TTL into [SESSION_TTL_MS_MIN, max]. */
export function clampSessionTtl(ttlMs: number, max: number): number {
  return Math.min(Math.max(ttlMs, SESSION_TTL_MS_MIN), Math.max(max, SESSION_TTL_MS_MIN));
}

/**
 * Whether the session is alive at `now`. A session past its expiry is dead for its client even
 * before the leader's `expire` entry removes it: acting on its behalf could let a partitioned
 * client keep a lock the rest of the system already considers free.
 */
export function isLive(s: Session | undefined, now: number): s is Session {
  return s !== undefined && now < s.expiresAt;
}

/** The outcome of the dedup check for a sequenced command. */
export type SeqCheck = { fresh: true } | { fresh: false; result: LockResult };

/** Decides whether `seq` is new, a retry of the last command, or stale. */
export function checkSeq(s: Session, seq: number): SeqCheck {
  if (seq > s.lastSeq) return { fresh: true };
  if (seq === s.lastSeq && s.lastResult !== null) return { fresh: false, result: { ...s.lastResult } };
  return {
    fresh: false,
    result: {
      ok: false,
      code: "INVALID_ARGUMENT",
      message: `stale sequence ${seq}: session ${s.id} already applied ${s.lastSeq}`,
    },
  };
}
