/**
 * Value types that cross the storage boundary.
 *
 * They are structurally compatible with `src/raft/types.ts` (`Entry`, `HardState`, `SnapshotMeta`)
 * but declared here because storage sits *below* raft and must not import from it.
 */

/** One log entry of one Raft group. `data` is opaque to the WAL. */
export interface WalEntry {
  readonly term: number;
  readonly index: number;
  readonly type: number;
  readonly data: Uint8Array;
}

/** The state that must be durable before a vote or an append is acknowledged. */
export interface WalHardState {
  readonly term: number;
  readonly vote: string | null;
  readonly commit: number;
}

/** The membership of a group as of a snapshot. */
export interface WalConfState {
  readonly voters: readonly string[];
  readonly learners: readonly string[];
}

/** Index and term of the last entry a snapshot covers, and the membership at that point. */
export interface WalSnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly conf: WalConfState;
}

/**
 * One record a caller appends. Every record carries the Raft group it belongs to, because one
 * WAL is shared by all groups hosted on a node.
 *
 * - `entries`: non-empty, consecutive indexes; they replace the group's existing suffix starting
 *   at `entries[0].index`, which must lie in `(snapshotIndex, lastIndex + 1]`.
 * - `hardState`: supersedes the group's previous hard state.
 * - `snapshot`: a snapshot at `meta.index` was taken or installed. Entries `<= meta.index` are
 *   discarded; if the log does not contain an entry at `meta.index` with `meta.term` (an installed
 *   snapshot from a diverging leader), the whole log of the group is discarded, as in etcd's
 *   `raftLog.restore`. `meta.index` must be greater than the group's current snapshot index.
 */
export type WalRecord =
  | { readonly kind: "entries"; readonly group: number; readonly entries: readonly WalEntry[] }
  | { readonly kind: "hardState"; readonly group: number; readonly hardState: WalHardState }
  | { readonly kind: "snapshot"; readonly group: number; readonly meta: WalSnapshotMeta };

/** A group's state as replayed from the log at open. */
export interface WalGroupState {
  /** The latest hard state, or null if none was ever written. */
  readonly hardState: WalHardState | null;
  /** The live entries: indexes `snapshotIndex + 1 ..` in order, without gaps. */
  readonly entries: readonly WalEntry[];
  /** The latest snapshot marker, or null. */
  readonly snapshotMeta: WalSnapshotMeta | null;
}

/** What recovery did to the tail of the log at open. */
export interface WalRecoveryInfo {
  /** Bytes cut from the end of the last segment (a torn or zero-filled tail); 0 if clean. */
  readonly truncatedBytes: number;
  /** File name of the segment that was truncated, or null if nothing was truncated. */
  readonly segment: string | null;
}

/** Counters for `/metrics`. All are cumulative since open except `segments` and `bytes`. */
export interface WalStats {
  /** Segment files currently on disk. */
  readonly segments: number;
  /** Bytes in those segment files, including writes not yet acknowledged. */
  readonly bytes: number;
  /** fdatasync calls issued (by the worker or the main thread). */
  readonly fsyncs: number;
  /** Duration of the most recent fdatasync in milliseconds (0 before the first). */
  readonly lastFsyncMs: number;
  /** `append()` calls flushed so far; `appendsBatched / batches` is the mean group-commit size. */
  readonly appendsBatched: number;
  /** Batches (one write + one fsync each, two writes when a batch rotates) flushed so far. */
  readonly batches: number;
  /** Of those, the ones the main thread wrote itself because the worker was idle and the batch small. */
  readonly inlineBatches: number;
}
