/**
 * The numbered wire error codes. Numbers are stable forever; names are for humans and logs.
 * `retryable` says whether a client may retry the same request (possibly on another node).
 * Every code is listed in PROTOCOL.md; a test checks both directions.
 * Blocks: 1–9 protocol, 10–19 cluster, 20–29 locks, 30–39 queues, 40–49 cache, 50–59 access
 * control, 99 internal.
 */
export const ErrorCode = {
  /** The frame could not be decoded, or its envelope is not `[type, id, body]`. The connection is closed. */
  PROTOCOL_ERROR: 1,
  /** The frame announced a body above the maximum frame size. The connection is closed. */
  FRAME_TOO_LARGE: 2,
  /** The envelope's message type is not one this node knows. */
  UNKNOWN_TYPE: 3,
  /** A field is missing, of the wrong type or out of range. */
  INVALID_ARGUMENT: 4,
  /** The HELLO asked for a protocol version this node does not speak. The connection is closed. */
  UNSUPPORTED_VERSION: 5,
  /** The auth token is missing or wrong. The connection is closed. */
  UNAUTHENTICATED: 6,
  /** A request other than HELLO arrived before the handshake. */
  HANDSHAKE_REQUIRED: 7,
  /** Too many requests in flight on this connection. */
  OVERLOADED: 8,
  /** This node is not the leader; `leaderHint` names the leader when known. */
  NOT_LEADER: 10,
  /** No quorum: the cluster cannot commit right now. */
  UNAVAILABLE: 11,
  /** The request did not complete in time; it may or may not have taken effect. */
  TIMEOUT: 12,
  /** The node is shutting down and accepts no new work. */
  SHUTTING_DOWN: 13,
  /** Client side only, never sent: the connection closed before the reply arrived. */
  CONNECTION_CLOSED: 14,
  /** Peer only: the other node belongs to another cluster (e.g. the one a backup was restored from). The link is refused. */
  WRONG_CLUSTER: 15,
  /** This node holds no replica of the queue's partition: send the request to `leaderAddr` (a node that does). */
  MOVED: 16,
  /** A node holds more replicated state than its space budget: writes that add state are refused until space is freed (reads, acks and purges work). */
  NO_SPACE: 17,
  /** Try-lock (waitMs 0): the lock is held in a conflicting mode. */
  LOCK_HELD: 20,
  /** Release of a lock this session does not hold (or with a stale fencing token). */
  NOT_HELD: 21,
  /** The request would complete a wait-for cycle; it was refused to break the deadlock. */
  DEADLOCK: 22,
  /** The lock session expired (no keep-alive within its TTL); its locks were released. */
  SESSION_EXPIRED: 23,
  /** A shared holder asked for exclusive: release the shared lock first. */
  UPGRADE_REFUSED: 24,
  /** A wait for a lock ended at its waitMs deadline. */
  LOCK_WAIT_TIMEOUT: 25,
  /** The queue's partition holds as many messages as it may: the whole batch was refused. */
  QUEUE_FULL: 30,
  /** The receipt no longer names a current delivery (it timed out, was acked, nacked or released). */
  STALE_RECEIPT: 31,
  /** The key has no reachable home right now (its partition is electing a leader, or the new home waits out old leases). */
  CACHE_HOME_UNAVAILABLE: 40,
  /** Peer only: the node asked is not (or no longer) the key's home. */
  CACHE_WRONG_HOME: 41,
  /** The backing store (Redis) failed or timed out. */
  CACHE_STORE_ERROR: 42,
  /** The connection's identity has no role that grants this operation on this resource. */
  PERMISSION_DENIED: 50,
  /** The identity (or connection) is over its request or byte rate; retry after `retryAfterMs`. */
  RATE_LIMITED: 51,
  /** The port speaks TLS and the client sent plaintext. The connection is closed. */
  TLS_REQUIRED: 52,
  /** The connection's token expired: send HELLO again with a fresh token (the connection stays open). */
  TOKEN_EXPIRED: 53,
  /** An unexpected failure inside the node. */
  INTERNAL: 99,
} as const;
/** One of the catalogue's numeric codes (the `code` of an ERROR body). */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
/** A code's name in the catalogue, e.g. "LOCK_HELD" (what state machines' refusals carry). */
export type ErrorCodeName = keyof typeof ErrorCode;

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.OVERLOADED,
  ErrorCode.NOT_LEADER,
  ErrorCode.MOVED,
  ErrorCode.UNAVAILABLE,
  ErrorCode.TIMEOUT,
  ErrorCode.SHUTTING_DOWN,
  ErrorCode.CONNECTION_CLOSED,
  ErrorCode.CACHE_HOME_UNAVAILABLE,
  ErrorCode.CACHE_WRONG_HOME,
  ErrorCode.CACHE_STORE_ERROR,
  ErrorCode.RATE_LIMITED,
  ErrorCode.TOKEN_EXPIRED,
]);

const NAMES = new Map<number, ErrorCodeName>(
  (Object.entries(ErrorCode) as [ErrorCodeName, ErrorCode][]).map(([name, code]) => [code, name]),
);

/** The name of a wire code, or undefined for a number this version does not know. */
export function errorCodeName(code: number): ErrorCodeName | undefined {
  return NAMES.get(code);
}

/** Whether a request that failed with `code` may be retried unchanged. */
export function isRetryableCode(code: number): boolean {
  return RETRYABLE.has(code as ErrorCode);
}

/**
 * Codes after which the failed request certainly had no effect. After any other code (TIMEOUT,
 * CONNECTION_CLOSED, SHUTTING_DOWN, CACHE_STORE_ERROR, INTERNAL) a request that changes state may
 * or may not have been applied: a write may have been replicated before the node that took it
 * failed, and may still commit. UNAVAILABLE is only ever a refusal before anything was proposed;
 * a write that was proposed and then lost its answer ends in TIMEOUT or SHUTTING_DOWN.
 */
const NO_EFFECT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.PROTOCOL_ERROR,
  ErrorCode.FRAME_TOO_LARGE,
  ErrorCode.UNKNOWN_TYPE,
  ErrorCode.INVALID_ARGUMENT,
  ErrorCode.UNSUPPORTED_VERSION,
  ErrorCode.UNAUTHENTICATED,
  ErrorCode.HANDSHAKE_REQUIRED,
  ErrorCode.OVERLOADED,
  ErrorCode.NOT_LEADER,
  ErrorCode.MOVED,
  ErrorCode.NO_SPACE,
  ErrorCode.UNAVAILABLE,
  ErrorCode.LOCK_HELD,
  ErrorCode.NOT_HELD,
  ErrorCode.DEADLOCK,
  ErrorCode.SESSION_EXPIRED,
  ErrorCode.UPGRADE_REFUSED,
  ErrorCode.LOCK_WAIT_TIMEOUT,
  ErrorCode.QUEUE_FULL,
  ErrorCode.STALE_RECEIPT,
  ErrorCode.CACHE_HOME_UNAVAILABLE,
  ErrorCode.CACHE_WRONG_HOME,
  ErrorCode.PERMISSION_DENIED,
  ErrorCode.RATE_LIMITED,
  ErrorCode.TLS_REQUIRED,
  ErrorCode.TOKEN_EXPIRED,
]);

/** Whether a request that failed with `code` certainly did not take effect (else: unknown). */
export function hadNoEffect(code: number): boolean {
  return NO_EFFECT.has(code as ErrorCode);
}
