/** The storage layer's public surface: the WAL, its value types and its errors. */
export { Wal, SEGMENT_BYTES_DEFAULT, type WalOptions } from "./wal.ts";
export { WalClosedError, WalCorruptionError, WalInvalidArgumentError, WalIoError, ioFailureDetails } from "./errors.ts";
export { FailpointConfigError, envFailpoints, parseFailpoints, type FailpointConfig } from "./failpoints.ts";
export type {
  WalConfState,
  WalEntry,
  WalGroupState,
  WalHardState,
  WalRecord,
  WalRecoveryInfo,
  WalSnapshotMeta,
  WalStats,
} from "./types.ts";
