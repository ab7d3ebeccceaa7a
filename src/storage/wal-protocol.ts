/**
 * Messages between the WAL (main thread) and its fsync worker. Explicit acks, no sleeps: the
 * main thread resolves appends only on an `ack` whose `seq` covers them.
 */

import type { FailpointConfig } from "./failpoints.ts";
import type { WriterState } from "./segment-writer.ts";

/** `workerData` of the worker: where to write, whether to fdatasync, and test-only failpoints. */
export interface WorkerInit {
  readonly dir: string;
  /** The segment to append to; it exists (created and dir-fsynced by the main thread at open). */
  readonly segment: number;
  readonly fsync: boolean;
  /** Disk faults to inject (see `failpoints.ts`); none in production. */
  readonly failpoints: FailpointConfig;
}

/** One step of a batch, executed in order. */
export type WorkerOp =
  /**
   * Append `buf` to `segment`. If `segment` is the current segment + 1, the worker first
   * fdatasyncs and closes the current one, creates the new file and fsyncs the directory.
   */
  | { readonly op: "write"; readonly segment: number; readonly buf: Uint8Array }
  /**
   * Delete segments `[from, below)`, oldest first, fsyncing the directory after each so the live
   * segments stay a contiguous range even across a crash. Everything written before is
   * fdatasynced first: the deletion is only safe once the records that supersede them are durable.
   */
  | { readonly op: "deleteSegments"; readonly from: number; readonly below: number };

/** Main thread → worker. */
export type ToWorker =
  /** Run `ops` from writer `state`, fdatasync once at the end, reply `ack` (or `error`) with `seq`. */
  | { readonly type: "batch"; readonly seq: number; readonly ops: readonly WorkerOp[]; readonly state: WriterState }
  /** fdatasync, close the segment, reply `closed` and exit. */
  | { readonly type: "close"; readonly state: WriterState };

/** Worker → main thread. */
export type FromWorker =
  /** The segment is open; batches may be sent. `state` is the writer's, for the next batch. */
  | { readonly type: "ready"; readonly state: WriterState }
  /** Batch `seq` is durable; `state` is the writer's after it. */
  | { readonly type: "ack"; readonly seq: number; readonly state: WriterState }
  /**
   * Batch `seq` (or start-up, seq -1) failed; the worker processes nothing more. The fields of the
   * fs error (code 'EIO', syscall 'fdatasync'…) and the file it was about.
   */
  | {
      readonly type: "error";
      readonly seq: number;
      readonly message: string;
      readonly code: string | null;
      readonly errno: number | null;
      readonly syscall: string | null;
      readonly path: string | null;
    }
  /** Closed cleanly after a `close`. */
  | { readonly type: "closed" };
