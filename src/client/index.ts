/**
 * The dsync client library: `connect()` to a cluster, then call its services.
 * Errors are exported as classes so callers can `instanceof` them.
 */
export { connect, DsyncClient, type CallOptions, type ClientEvents } from "./client.ts";
export { takeBackup, type BackupProgress, type BackupResult } from "./backup.ts";
export type { ClientOptions, ClientTlsOptions } from "./options.ts";
export { CacheClient, type CacheClientOptions, type CacheSetOptions } from "./cache.ts";
export { LockClient, type AcquireOptions, type Lock, type LockMode, type LockClientEvents } from "./locks.ts";
export {
  QueueClient,
  Subscription,
  type DeliveredMessage,
  type EnqueueOptions,
  type ConsumeOptions,
  type QueueSettings,
  type QueueConfig,
  type QueueStats,
  type AckOutcome,
  type DeadMessage,
  type SubscribeOptions,
  type MessageHandler,
} from "./queues.ts";
export {
  DsyncError,
  ProtocolError,
  InvalidArgumentError,
  NotLeaderError,
  UnavailableError,
  TimeoutError,
  ConnectionClosedError,
  LockHeldError,
  NotHeldError,
  DeadlockError,
  SessionExpiredError,
  LockWaitTimeoutError,
  CacheHomeUnavailableError,
  QueueFullError,
  StaleReceiptError,
  PermissionDeniedError,
  RateLimitedError,
  ErrorCode,
  type NodeStatus,
  type CacheKeyState,
  type CacheCopy,
  type CacheStats,
  type PeerStatus,
} from "../../protocol/index.ts";
