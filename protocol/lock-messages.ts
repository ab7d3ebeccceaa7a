/**
 * The lock service's wire types, one declaration for the daemon (its lock machine produces them)
 * and the client library (it receives them). PROTOCOL.md "Locks" describes each field.
 */

/** Exclusive holders are alone; shared holders coexist. */
export type LockMode = "exclusive" | "shared";

/** LOCK_ACQUIRE answered at once: held, with its fencing token (the log index of the grant). */
export interface LockGranted {
  ok: true;
  kind: "granted";
  resource: string;
  mode: LockMode;
  token: number;
  sessionId: number;
}

/** LOCK_ACQUIRE queued: `position` requests are ahead (0 = next); the outcome arrives as a LOCK_EVENT for `waitId`. */
export interface LockQueued {
  ok: true;
  kind: "queued";
  resource: string;
  position: number;
  waitId: number;
}

/**
 * Something a client that is not the proposer must hear about (pushed by the node hosting its
 * session). Events about the proposer's own request (its `waitId` is the entry being applied)
 * are not emitted: the proposer hears them in the result.
 */
export type LockEvent =
  | { kind: "granted"; sessionId: number; waitId: number; resource: string; mode: LockMode; token: number }
  | {
      kind: "refused";
      sessionId: number;
      waitId: number;
      resource: string;
      code: "DEADLOCK" | "LOCK_WAIT_TIMEOUT" | "SESSION_EXPIRED";
      message: string;
    }
  | { kind: "lost"; sessionId: number; resource: string; token: number; reason: "ttl" | "session-expired" }
  | { kind: "session-expired"; sessionId: number };

/** A read-only view of one hold. */
export interface HolderView {
  sessionId: number;
  token: number;
  mode: LockMode;
  expiresAt: number | null;
}

/** A read-only view of one pending request. */
export interface WaiterView {
  sessionId: number;
  waitId: number;
  mode: LockMode;
  deadline: number | null;
}

/** A read-only view of one resource: holders in grant order, waiters in queue (FIFO) order. */
export interface ResourceView {
  mode: LockMode | null;
  holders: HolderView[];
  waiters: WaiterView[];
}

/** Counters of the lock service (gauges first, then cumulative counters). */
export interface LockStats {
  sessions: number;
  locksHeld: number;
  waiters: number;
  grants: number;
  deadlocks: number;
  sessionExpiries: number;
}

/** LOCK_STATUS's reply: one resource's holders and waiters (a free resource has none of either). */
export type LockStatusReply = ResourceView & { resource: string };

/** LOCK_LIST's reply: every resource with holders or waiters, and the service's counters. */
export interface LockListReply {
  resources: LockStatusReply[];
  stats: LockStats;
}
