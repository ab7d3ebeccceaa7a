/**
 * Runs a batch's steps against the segment files: append, rotate, delete, fdatasync. Either the
 * WAL's fsync worker runs it, or (for a small batch while the worker is idle) the main thread
 * does, which saves two thread wake-ups per commit (see `wal.ts`).
 *
 * Whoever runs a batch owns the segment for that batch: at most one batch runs at a time, and the
 * writer's whole state (`WriterState`: the descriptor, sizes, fault counters, the power-loss
 * record) is plain data that travels with the batch and comes back with its ack. File descriptors
 * belong to the process, so the one the worker opened is valid on the main thread too.
 *
 * After any failure the writer is done: after a failed fsync the kernel may have dropped the dirty
 * pages, so retrying could report durability that does not exist.
 */
import { closeSync, fdatasyncSync, fstatSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ok as assert } from "node:assert";
import type { FromWorker, WorkerInit, WorkerOp } from "./wal-protocol.ts";
import { fsyncDirSync, segmentFileName } from "./segment-files.ts";
import { armFailpoint, stall, syscallError, type ArmedFailpoint } from "./failpoints.ts";
import { SyncedRecorder } from "./power-loss.ts";

/** The segment writer between batches: plain data, so it crosses between threads. */
export interface WriterState {
  readonly segment: number;
  readonly fd: number;
  /** Bytes written to the current segment, synced or not: what a completed sync makes durable. */
  readonly segmentBytes: number;
  /** fdatasync calls so far, and the duration of the latest. */
  readonly fsyncs: number;
  readonly lastFsyncMs: number;
  /** When the WAL opened (test failpoints' `after-ms` counts from here), and their call counts. */
  readonly openedAt: number;
  readonly appendCalls: number;
  readonly fsyncCalls: number;
  /** The power-loss record (segment → durable bytes), only with the `record-synced` failpoint. */
  readonly synced: Readonly<Record<string, number>> | null;
}

export class SegmentWriter {
  /** The file the current step works on, named in an error report (fd-based syscalls carry no path). */
  activeFile = "";
  readonly #init: WorkerInit;
  #segment: number;
  #segmentFile: string;
  #fd: number;
  #segmentBytes: number;
  #dirty = false;
  #fsyncs: number;
  #lastFsyncMs: number;
  readonly #openedAt: number;
  readonly #appendFault: ArmedFailpoint | null;
  readonly #fsyncFault: ArmedFailpoint | null;
  readonly #recorder: SyncedRecorder | null;

  constructor(init: WorkerInit, state: WriterState) {
    this.#init = init;
    this.#segment = state.segment;
    this.#segmentFile = this.#path(state.segment);
    this.#fd = state.fd;
    this.#segmentBytes = state.segmentBytes;
    this.#fsyncs = state.fsyncs;
    this.#lastFsyncMs = state.lastFsyncMs;
    this.#openedAt = state.openedAt;
    // Test-only hooks, all null in production: the hot path pays one null check each.
    this.#appendFault = armFailpoint(init.failpoints, "wal-append", state.openedAt, state.appendCalls);
    this.#fsyncFault = armFailpoint(init.failpoints, "wal-fsync", state.openedAt, state.fsyncCalls);
    this.#recorder = init.failpoints.recordSynced ? new SyncedRecorder(init.dir, state.synced ?? {}) : null;
  }

  /**
   * Opens the current segment for appending (the WAL truncated any torn tail before). `openedAt`
   * is when the WAL became ready: start-up time, which includes compiling the worker, must not
   * eat into a test's `after-ms`.
   */
  static open(init: WorkerInit, openedAt: number): SegmentWriter {
    const fd = openSync(join(init.dir, segmentFileName(init.segment)), "a");
    const state: WriterState = { segment: init.segment, fd, segmentBytes: fstatSync(fd).size, fsyncs: 0, lastFsyncMs: 0, openedAt, appendCalls: 0, fsyncCalls: 0, synced: null };
    const writer = new SegmentWriter(init, state);
    if (writer.#recorder !== null) {
      // A fresh record: what is on disk now is durable from here on (older segments are sealed).
      writer.activeFile = writer.#segmentFile;
      if (init.fsync) fdatasyncSync(fd);
      writer.#recorder.set(segmentFileName(init.segment), state.segmentBytes);
      writer.#recorder.write();
    }
    return writer;
  }

  state(): WriterState {
    return {
      segment: this.#segment,
      fd: this.#fd,
      segmentBytes: this.#segmentBytes,
      fsyncs: this.#fsyncs,
      lastFsyncMs: this.#lastFsyncMs,
      openedAt: this.#openedAt,
      appendCalls: this.#appendFault?.calls ?? 0,
      fsyncCalls: this.#fsyncFault?.calls ?? 0,
      synced: this.#recorder?.segments() ?? null,
    };
  }

  /** Runs `ops` in order, then one fdatasync. @throws the fs error (or an injected one). */
  runBatch(ops: readonly WorkerOp[]): void {
    for (const op of ops) {
      if (op.op === "write") {
        if (op.segment !== this.#segment) this.#rotateTo(op.segment);
        this.#writeAll(op.buf);
        this.#dirty = true;
      } else {
        this.#deleteSegments(op.from, op.below);
      }
    }
    this.#sync();
  }

  /** Makes everything durable and closes the segment. */
  close(): void {
    this.#sync();
    closeSync(this.#fd);
  }

  #path(id: number): string {
    return join(this.#init.dir, segmentFileName(id));
  }

  #writeAll(buf: Uint8Array): void {
    this.activeFile = this.#segmentFile;
    let offset = 0;
    const fault = this.#appendFault;
    if (fault !== null && fault.shouldFail(Date.now())) {
      if (fault.error === "stall") {
        stall();
      } else {
        // A full disk typically takes part of a write before refusing the rest: leave a torn tail.
        if (fault.error === "enospc") this.#segmentBytes += writeSync(this.#fd, buf, 0, buf.length >> 1);
        throw syscallError(fault.error, "write", this.activeFile);
      }
    }
    while (offset < buf.length) offset += writeSync(this.#fd, buf, offset, buf.length - offset);
    this.#segmentBytes += buf.length;
  }

  /** Makes everything written so far durable (or just forgets it, with fsync off). */
  #sync(): void {
    if (!this.#dirty) return;
    this.activeFile = this.#segmentFile;
    // Consulted even with fsync off, at the point where the fdatasync would be, so tests can run fast.
    const fault = this.#fsyncFault;
    if (fault !== null && fault.shouldFail(Date.now())) {
      if (fault.error === "stall") stall();
      else throw syscallError(fault.error, "fdatasync", this.activeFile);
    }
    if (this.#init.fsync) {
      const t0 = performance.now();
      fdatasyncSync(this.#fd);
      this.#lastFsyncMs = performance.now() - t0;
      this.#fsyncs++;
    }
    this.#dirty = false;
    if (this.#recorder !== null) {
      // Before the batch is acknowledged: every acknowledged byte is in the record.
      this.#recorder.set(segmentFileName(this.#segment), this.#segmentBytes);
      this.#recorder.write();
    }
  }

  #fsyncDir(): void {
    this.activeFile = this.#init.dir;
    fsyncDirSync(this.#init.dir);
  }

  #rotateTo(next: number): void {
    // Invariant: segments are consecutive; the main thread numbers them.
    assert(next === this.#segment + 1, `rotation to segment ${next} from ${this.#segment}`);
    // The old segment must be complete on disk before the new one exists: recovery only tolerates
    // a torn tail in the last segment.
    this.#sync();
    closeSync(this.#fd);
    this.#segmentFile = this.activeFile = this.#path(next);
    this.#fd = openSync(this.#segmentFile, "wx");
    this.#segment = next;
    this.#segmentBytes = 0;
    if (this.#init.fsync) this.#fsyncDir();
    if (this.#recorder !== null) {
      this.#recorder.set(segmentFileName(next), 0);
      this.#recorder.write();
    }
  }

  #deleteSegments(from: number, below: number): void {
    this.#sync(); // The records that supersede the doomed segments must be durable first.
    for (let id = from; id < below; id++) {
      // Invariant: the current segment is never deleted.
      assert(id < this.#segment, `deleting live segment ${id}`);
      try {
        unlinkSync(this.#path(id));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
      // Oldest first and durable one by one, so a crash leaves a contiguous range of segments.
      if (this.#init.fsync) this.#fsyncDir();
      this.#recorder?.delete(segmentFileName(id));
    }
    this.#recorder?.write();
  }
}

/** The `error` report for a failed batch: the fs error's fields and the file it was about. */
export function errorReport(seq: number, error: unknown, activeFile: string): Extract<FromWorker, { type: "error" }> {
  const e = error as NodeJS.ErrnoException;
  return {
    type: "error",
    seq,
    message: e?.message ?? String(error),
    code: e?.code ?? null,
    errno: e?.errno ?? null,
    syscall: e?.syscall ?? null,
    path: e?.path ?? (activeFile || null),
  };
}
