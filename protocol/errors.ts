import { ErrorCode, errorCodeName, hadNoEffect, isRetryableCode } from "./error-codes.ts";

/** The body of an ERROR frame. */
export interface ErrorBody {
  readonly code: number;
  readonly message: string;
  /** Node id of the leader, with NOT_LEADER when known (with MOVED: a node holding the partition). */
  readonly leaderHint?: string | null;
  /** Client address (host:port) of the leader, with NOT_LEADER when known. */
  readonly leaderAddr?: string | null;
  /** With RATE_LIMITED: how long to wait before the request would be admitted. */
  readonly retryAfterMs?: number;
}

/**
 * Base of every error dsync raises, on the server and in the client. Carries the wire `code`,
 * whether the failed operation may be retried, and the underlying `cause`.
 */
export class DsyncError extends Error {
  override name = "DsyncError";
  readonly code: number;
  readonly retryable: boolean;
  constructor(code: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.retryable = isRetryableCode(code);
  }
  /** The wire name of `code`, e.g. `"NOT_LEADER"`, or `"UNKNOWN_<n>"`. */
  get codeName(): string {
    return errorCodeName(this.code) ?? `UNKNOWN_${this.code}`;
  }
  toBody(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}

/** A malformed, undecodable or oversized frame. The connection is closed after it. */
export class ProtocolError extends DsyncError {
  override name = "ProtocolError";
  constructor(message: string, code: ErrorCode = ErrorCode.PROTOCOL_ERROR, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A request whose fields are missing or of the wrong type: a caller bug, never retried. */
export class InvalidArgumentError extends DsyncError {
  override name = "InvalidArgumentError";
  constructor(message: string) {
    super(ErrorCode.INVALID_ARGUMENT, message);
  }
}

/** The node asked is not the leader; retry against `leaderHint`/`leaderAddr` when known. */
export class NotLeaderError extends DsyncError {
  override name = "NotLeaderError";
  constructor(
    readonly leaderHint: string | null,
    readonly leaderAddr: string | null,
    message?: string,
  ) {
    super(ErrorCode.NOT_LEADER, message ?? (leaderHint ? `not the leader; the leader is ${leaderHint}` : "not the leader; no leader is known yet"));
  }
  override toBody(): ErrorBody {
    return { ...super.toBody(), leaderHint: this.leaderHint, leaderAddr: this.leaderAddr };
  }
}

/**
 * The node holds no replica of the queue's partition (queue partitions live on a subset of the
 * nodes): resend to `leaderAddr`, a node that holds it, and remember that route for the queue.
 */
export class MovedError extends DsyncError {
  override name = "MovedError";
  constructor(
    readonly leaderHint: string | null,
    readonly leaderAddr: string | null,
    message: string,
  ) {
    super(ErrorCode.MOVED, message);
  }
  override toBody(): ErrorBody {
    return { ...super.toBody(), leaderHint: this.leaderHint, leaderAddr: this.leaderAddr };
  }
}

/** The message type is unknown or not accepted here. */
export class UnknownTypeError extends DsyncError {
  override name = "UnknownTypeError";
  constructor(message: string) {
    super(ErrorCode.UNKNOWN_TYPE, message);
  }
}

/** No quorum is reachable; retry with backoff. */
export class UnavailableError extends DsyncError {
  override name = "UnavailableError";
  constructor(message = "no quorum: the cluster cannot commit right now") {
    super(ErrorCode.UNAVAILABLE, message);
  }
}

/** The request did not complete in time; it may or may not have taken effect. */
export class TimeoutError extends DsyncError {
  override name = "TimeoutError";
  constructor(message: string) {
    super(ErrorCode.TIMEOUT, message);
  }
}

/** The connection closed before the reply arrived (client side only, never on the wire). */
export class ConnectionClosedError extends DsyncError {
  override name = "ConnectionClosedError";
  constructor(message = "connection closed", options?: { cause?: unknown }) {
    super(ErrorCode.CONNECTION_CLOSED, message, options);
  }
}

/** Try-lock found the lock held in a conflicting mode. Not retried. */
export class LockHeldError extends DsyncError {
  override name = "LockHeldError";
  constructor(message: string) {
    super(ErrorCode.LOCK_HELD, message);
  }
}

/** A release of a lock this session does not hold (or a stale fencing token). Not retried. */
export class NotHeldError extends DsyncError {
  override name = "NotHeldError";
  constructor(message: string) {
    super(ErrorCode.NOT_HELD, message);
  }
}

/** The request was refused to break a wait-for cycle. Release what you hold, then retry. */
export class DeadlockError extends DsyncError {
  override name = "DeadlockError";
  constructor(message: string) {
    super(ErrorCode.DEADLOCK, message);
  }
}

/** The lock session expired; every lock it held was released. Open a new session. */
export class SessionExpiredError extends DsyncError {
  override name = "SessionExpiredError";
  constructor(message: string) {
    super(ErrorCode.SESSION_EXPIRED, message);
  }
}

/** The wait for a lock reached its waitMs deadline. */
export class LockWaitTimeoutError extends DsyncError {
  override name = "LockWaitTimeoutError";
  constructor(message: string) {
    super(ErrorCode.LOCK_WAIT_TIMEOUT, message);
  }
}

/** The queue's partition is full; nothing of the batch was enqueued. */
export class QueueFullError extends DsyncError {
  override name = "QueueFullError";
  constructor(message: string) {
    super(ErrorCode.QUEUE_FULL, message);
  }
}

/** The receipt names a delivery that has ended (timed out, acked, nacked or released). */
export class StaleReceiptError extends DsyncError {
  override name = "StaleReceiptError";
  constructor(message: string) {
    super(ErrorCode.STALE_RECEIPT, message);
  }
}

/** No reachable node is home of the cache key right now; retry shortly. */
export class CacheHomeUnavailableError extends DsyncError {
  override name = "CacheHomeUnavailableError";
  constructor(message: string) {
    super(ErrorCode.CACHE_HOME_UNAVAILABLE, message);
  }
}

/** The identity's roles do not grant the operation on the resource; nothing happened. */
export class PermissionDeniedError extends DsyncError {
  override name = "PermissionDeniedError";
  constructor(message: string) {
    super(ErrorCode.PERMISSION_DENIED, message);
  }
}

/** Over a request or byte rate: nothing happened; the same request may be sent after `retryAfterMs`. */
export class RateLimitedError extends DsyncError {
  override name = "RateLimitedError";
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(ErrorCode.RATE_LIMITED, message);
  }
  override toBody(): ErrorBody {
    return { code: this.code, message: this.message, retryAfterMs: this.retryAfterMs };
  }
}

/**
 * The typed error for a refusal named by its code (a state machine's `{ok: false, code}` uses the
 * catalogue's names, e.g. "LOCK_HELD"): the one mapping from refusal to error, for the daemon and
 * the client alike. A name outside the catalogue is an INVALID_ARGUMENT.
 */
export function errorForCode(name: string, message: string): DsyncError {
  const code = Object.hasOwn(ErrorCode, name) ? ErrorCode[name as keyof typeof ErrorCode] : ErrorCode.INVALID_ARGUMENT;
  return errorFromBody({ code, message });
}

/**
 * What to report after a request was sent more than once: the last error, unless an earlier
 * attempt's outcome was unknown (it may have been applied). Then that unknown outcome is the
 * request's outcome, whatever the later attempts said: a NOT_LEADER or MOVED on a resend proves
 * nothing about the first send.
 */
export function outcomeError(firstUnknown: DsyncError | null, last: Error): Error {
  if (firstUnknown === null || firstUnknown === last) return last;
  if (last instanceof DsyncError && !hadNoEffect(last.code)) return last;
  return errorFromBody({ code: firstUnknown.code, message: `${firstUnknown.message} (a resend then failed: ${last.message})` });
}

/** Rebuilds the most specific error class for an ERROR frame's body. */
export function errorFromBody(body: ErrorBody): DsyncError {
  switch (body.code) {
    case ErrorCode.PROTOCOL_ERROR:
    case ErrorCode.FRAME_TOO_LARGE:
      return new ProtocolError(body.message, body.code);
    case ErrorCode.INVALID_ARGUMENT:
      return new InvalidArgumentError(body.message);
    case ErrorCode.NOT_LEADER:
      return new NotLeaderError(body.leaderHint ?? null, body.leaderAddr ?? null, body.message);
    case ErrorCode.MOVED:
      return new MovedError(body.leaderHint ?? null, body.leaderAddr ?? null, body.message);
    case ErrorCode.UNAVAILABLE:
      return new UnavailableError(body.message);
    case ErrorCode.TIMEOUT:
      return new TimeoutError(body.message);
    case ErrorCode.LOCK_HELD:
      return new LockHeldError(body.message);
    case ErrorCode.NOT_HELD:
      return new NotHeldError(body.message);
    case ErrorCode.DEADLOCK:
      return new DeadlockError(body.message);
    case ErrorCode.SESSION_EXPIRED:
      return new SessionExpiredError(body.message);
    case ErrorCode.QUEUE_FULL:
      return new QueueFullError(body.message);
    case ErrorCode.STALE_RECEIPT:
      return new StaleReceiptError(body.message);
    case ErrorCode.LOCK_WAIT_TIMEOUT:
      return new LockWaitTimeoutError(body.message);
    case ErrorCode.CACHE_HOME_UNAVAILABLE:
      return new CacheHomeUnavailableError(body.message);
    case ErrorCode.PERMISSION_DENIED:
      return new PermissionDeniedError(body.message);
    case ErrorCode.RATE_LIMITED:
      return new RateLimitedError(body.message, body.retryAfterMs ?? 0);
    default:
      return new DsyncError(body.code, body.message);
  }
}
