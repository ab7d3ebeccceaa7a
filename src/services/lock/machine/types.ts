/**
 * Public types of the lock service (Raft group 0): the commands that go through the log, the
 * results a proposer receives, and the events pushed to clients that did not propose the entry.
 *
 * Every command carries `now`, the leader's clock when it proposed the entry: the state machine
 * never reads a clock of its own, so every replica reaches the same state from the same log.
 */

import type { LockEvent, LockGranted, LockMode, LockQueued } from "../../../../protocol/lock-messages.ts";

export type {
  HolderView,
  LockEvent,
  LockGranted,
  LockListReply,
  LockMode,
  LockQueued,
  LockStats,
  LockStatusReply,
  ResourceView,
  WaiterView,
} from "../../../../protocol/lock-messages.ts";

/**
 * A command of the lock state machine.
 *
 * - `session.open`: `ttlMs` is clamped to [1000, sessionTtlMsMax]. The session id is the log
 *   index of this entry (monotonic, unique, so "higher id" means "younger owner").
 * - `session.keepalive`: extends the session to `now + ttlMs` (never shortens it).
 * - `session.close`: ends the session; its holds are released and its waits withdrawn.
 * - `expire`: proposed by the leader (when {@link LockMachine.nextDeadline} is due); settles
 *   everything due at `now`: sessions, per-acquire hold TTLs, wait deadlines.
 * - `acquire`: `waitMs` 0 = try-lock, > 0 = wait at most that long, -1 = wait forever.
 *   `ttlMs` null (or 0) = the hold lasts until released or the session ends.
 *   `seq` deduplicates retries (per session, increasing).
 * - `release`: `token` is the fencing token of the hold; the `waitId` of a pending wait also
 *   works here and withdraws that wait (so a client can cancel an acquire it gave up on).
 */
export type LockCommand =
  | { op: "session.open"; clientId: string; ttlMs: number; now: number }
  | { op: "session.keepalive"; sessionId: number; now: number }
  | { op: "session.close"; sessionId: number; now: number }
  | { op: "expire"; now: number }
  | {
      op: "acquire";
      sessionId: number;
      seq: number;
      resource: string;
      mode: LockMode;
      ttlMs: number | null;
      waitMs: number;
      now: number;
    }
  | { op: "release"; sessionId: number; seq: number; resource: string; token: number; now: number };

/** Error codes of a refused command. */
export type LockErrorCode =
  | "LOCK_HELD"
  | "NOT_HELD"
  | "DEADLOCK"
  | "SESSION_EXPIRED"
  | "INVALID_ARGUMENT"
  | "UPGRADE_REFUSED";

/**
 * The result the proposer of a command receives.
 *
 * - `session`: for open and keepalive, the session and when it expires; for close, `expiresAt`
 *   is the close time.
 * - `granted`: `token` is the fencing token: the log index of the entry that granted the hold.
 * - `queued`: `position` is the number of requests queued ahead (0 = next in line); `waitId` is
 *   the log index of the acquire. The outcome arrives later as a {@link LockEvent}.
 * - `expired`: the sessions the `expire` command ended, ascending.
 */
export type LockResult =
  | { ok: true; kind: "session"; sessionId: number; expiresAt: number }
  | LockGranted
  | LockQueued
  | { ok: true; kind: "released"; resource: string }
  | { ok: true; kind: "expired"; sessions: number[] }
  | { ok: false; code: LockErrorCode; message: string };


/** Options of a {@link LockMachine}. They must be the same on every replica. */
export interface LockMachineOptions {
  /** Receives events after each apply, in a deterministic order. */
  onEvent?: (e: LockEvent) => void;
  /** Upper bound of a session TTL (default 5 minutes). */
  sessionTtlMsMax?: number;
  /** Bound of a wait queue; an acquire beyond it is refused with LOCK_HELD (default 10,000). */
  waitersPerResourceMax?: number;
}

/** A read-only view of one session. */
export interface SessionView {
  id: number;
  clientId: string;
  expiresAt: number;
  ttlMs: number;
  createdIndex: number;
}

