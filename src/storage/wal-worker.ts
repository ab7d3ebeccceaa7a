/**
 * The WAL's fsync worker (`worker_threads`). It owns the segment file descriptor so that
 * write + fdatasync, which block for milliseconds, never run on the event loop.
 *
 * Protocol (see `wal-protocol.ts`): it posts `ready` once the segment is open, then for every
 * `batch` runs the ops in order, fdatasyncs once, and acks with the batch's `seq`. After any
 * failure it reports `error` and ignores everything else: after a failed fsync the kernel may
 * have dropped the dirty pages, so retrying could report durability that does not exist.
 *
 * Test hooks (`failpoints.ts`, `power-loss.ts`): the config arrives in `workerData`; injected
 * faults throw errors shaped like node's own, so they take the same path as real ones.
 */
import { closeSync, fdatasyncSync, fstatSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { ok as assert } from "node:assert";
import type { FromWorker, ToWorker, WorkerInit, WorkerOp } from "./wal-protocol.ts";
import { fsyncDirSync, segmentFileName } from "./segment-files.ts";
import { armFailpoint, syscallError } from "./failpoints.ts";
import { SyncedRecorder } from "./power-loss.ts";

const port = parentPort;
assert(port !== null, "wal-worker must run in a worker thread");
const init = workerData as WorkerInit;

// Test-only hooks, all null in production: the hot path pays one null check each. `after-ms`
// counts from here, when the worker (and so the WAL) is ready: start-up time, which includes
// compiling this module, must not eat into it.
const startedAt = Date.now();
const appendFault = armFailpoint(init.failpoints, "wal-append", startedAt);
const fsyncFault = armFailpoint(init.failpoints, "wal-fsync", startedAt);
const recorder = init.failpoints.recordSynced ? new SyncedRecorder(init.dir) : null;

let segment = init.segment;
/** Path of the current segment, kept rather than rebuilt on every write. */
let segmentFile = segmentPath(segment);
let fd = -1;
/** Bytes written to the current segment, synced or not: what a completed sync makes durable. */
let segmentBytes = 0;
let dirty = false;
let failed = false;
let fsyncs = 0;
let lastFsyncMs = 0;
/** The file the current step works on, named in the error report (fd-based syscalls carry no path). */
let activeFile = "";

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

function fail(seq: number, error: unknown): void {
  failed = true;
  const e = error as NodeJS.ErrnoException;
  post({
    type: "error",
    seq,
    message: e?.message ?? String(error),
    code: e?.code ?? null,
    errno: e?.errno ?? null,
    syscall: e?.syscall ?? null,
    path: e?.path ?? (activeFile || null),
  });
}

function segmentPath(id: number): string {
  return join(init.dir, segmentFileName(id));
}

function writeAll(buf: Uint8Array): void {
  activeFile = segmentFile;
  let offset = 0;
  if (appendFault !== null && appendFault.shouldFail(Date.now())) {
    // A full disk typically takes part of a write before refusing the rest: leave a torn tail.
    if (appendFault.error === "enospc") segmentBytes += writeSync(fd, buf, 0, buf.length >> 1);
    throw syscallError(appendFault.error, "write", activeFile);
  }
  while (offset < buf.length) offset += writeSync(fd, buf, offset, buf.length - offset);
  segmentBytes += buf.length;
}

/** Makes everything written so far durable (or just forgets it, with fsync off). */
function sync(): void {
  if (!dirty) return;
  activeFile = segmentFile;
  // Consulted even with fsync off, at the point where the fdatasync would be, so tests can run fast.
  if (fsyncFault !== null && fsyncFault.shouldFail(Date.now())) throw syscallError(fsyncFault.error, "fdatasync", activeFile);
  if (init.fsync) {
    const t0 = performance.now();
    fdatasyncSync(fd);
    lastFsyncMs = performance.now() - t0;
    fsyncs++;
  }
  dirty = false;
  if (recorder !== null) {
    // Before the ack is posted: every acknowledged byte is in the record.
    recorder.set(segmentFileName(segment), segmentBytes);
    recorder.write();
  }
}

function fsyncDir(): void {
  activeFile = init.dir;
  fsyncDirSync(init.dir);
}

function rotateTo(next: number): void {
  // Invariant: segments are consecutive; the main thread numbers them.
  assert(next === segment + 1, `rotation to segment ${next} from ${segment}`);
  // The old segment must be complete on disk before the new one exists: recovery only tolerates
  // a torn tail in the last segment.
  sync();
  closeSync(fd);
  segmentFile = activeFile = segmentPath(next);
  fd = openSync(segmentFile, "wx");
  segment = next;
  segmentBytes = 0;
  if (init.fsync) fsyncDir();
  if (recorder !== null) {
    recorder.set(segmentFileName(next), 0);
    recorder.write();
  }
}

function deleteSegments(from: number, below: number): void {
  sync(); // The records that supersede the doomed segments must be durable first.
  for (let id = from; id < below; id++) {
    // Invariant: the current segment is never deleted.
    assert(id < segment, `deleting live segment ${id}`);
    try {
      unlinkSync(segmentPath(id));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    // Oldest first and durable one by one, so a crash leaves a contiguous range of segments.
    if (init.fsync) fsyncDir();
    recorder?.delete(segmentFileName(id));
  }
  recorder?.write();
}

function runOp(op: WorkerOp): void {
  if (op.op === "write") {
    if (op.segment !== segment) rotateTo(op.segment);
    writeAll(op.buf);
    dirty = true;
  } else {
    deleteSegments(op.from, op.below);
  }
}

port.on("message", (msg: ToWorker) => {
  if (failed) return;
  if (msg.type === "batch") {
    try {
      const fsyncsBefore = fsyncs;
      for (const op of msg.ops) runOp(op);
      sync();
      // The written buffers go back with the ack: garbage here waits for this mostly idle
      // thread's next collection (about 50 MiB more resident per node in `npm run bench:idle`'s
      // 128 MiB fill of 256 KiB messages); the busy main thread collects them soon.
      const written: ArrayBuffer[] = [];
      for (const op of msg.ops) if (op.op === "write") written.push(op.buf.buffer as ArrayBuffer);
      post({ type: "ack", seq: msg.seq, fsyncs: fsyncs - fsyncsBefore, lastFsyncMs }, written);
    } catch (error) {
      fail(msg.seq, error);
    }
  } else {
    try {
      sync();
      closeSync(fd);
      post({ type: "closed" });
    } catch (error) {
      fail(-1, error);
    }
    port.close();
  }
});

try {
  // Append mode: the main thread truncated any torn tail before starting us.
  activeFile = segmentFile;
  fd = openSync(segmentFile, "a");
  segmentBytes = fstatSync(fd).size;
  if (recorder !== null) {
    // A fresh record: what is on disk now is durable from here on (older segments are sealed).
    if (init.fsync) fdatasyncSync(fd);
    recorder.set(segmentFileName(segment), segmentBytes);
    recorder.write();
  }
  post({ type: "ready" });
} catch (error) {
  fail(-1, error);
}
