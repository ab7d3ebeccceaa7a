/**
 * The WAL's fsync worker (`worker_threads`). It owns the segment file descriptor so that
 * write + fdatasync, which block for milliseconds, never run on the event loop.
 *
 * Protocol (see `wal-protocol.ts`): it posts `ready` once the segment is open, then for every
 * `batch` runs the ops in order, fdatasyncs once, and acks with the batch's `seq`. After any
 * failure it reports `error` and ignores everything else: after a failed fsync the kernel may
 * have dropped the dirty pages, so retrying could report durability that does not exist.
 */
import { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { ok as assert } from "node:assert";
import type { FromWorker, ToWorker, WorkerInit, WorkerOp } from "./wal-protocol.ts";
import { fsyncDirSync, segmentFileName } from "./segment-files.ts";

const port = parentPort;
assert(port !== null, "wal-worker must run in a worker thread");
const init = workerData as WorkerInit;

let segment = init.segment;
let fd = -1;
let dirty = false;
let failed = false;
let fsyncs = 0;
let lastFsyncMs = 0;

function post(msg: FromWorker): void {
  port!.postMessage(msg);
}

function fail(seq: number, error: unknown): void {
  failed = true;
  const e = error as NodeJS.ErrnoException;
  post({ type: "error", seq, message: e?.message ?? String(error), code: e?.code ?? null });
}

function writeAll(buf: Uint8Array): void {
  let offset = 0;
  while (offset < buf.length) offset += writeSync(fd, buf, offset, buf.length - offset);
}

/** Makes everything written so far durable (or just forgets it, with fsync off). */
function sync(): void {
  if (!dirty) return;
  if (init.fsync) {
    const t0 = performance.now();
    fdatasyncSync(fd);
    lastFsyncMs = performance.now() - t0;
    fsyncs++;
  }
  dirty = false;
}

function rotateTo(next: number): void {
  // Invariant: segments are consecutive; the main thread numbers them.
  assert(next === segment + 1, `rotation to segment ${next} from ${segment}`);
  // The old segment must be complete on disk before the new one exists: recovery only tolerates
  // a torn tail in the last segment.
  sync();
  closeSync(fd);
  fd = openSync(join(init.dir, segmentFileName(next)), "wx");
  segment = next;
  if (init.fsync) fsyncDirSync(init.dir);
}

function deleteSegments(from: number, below: number): void {
  sync(); // The records that supersede the doomed segments must be durable first.
  for (let id = from; id < below; id++) {
    // Invariant: the current segment is never deleted.
    assert(id < segment, `deleting live segment ${id}`);
    try {
      unlinkSync(join(init.dir, segmentFileName(id)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    // Oldest first and durable one by one, so a crash leaves a contiguous range of segments.
    if (init.fsync) fsyncDirSync(init.dir);
  }
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
      post({ type: "ack", seq: msg.seq, fsyncs: fsyncs - fsyncsBefore, lastFsyncMs });
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
  fd = openSync(join(init.dir, segmentFileName(segment)), "a");
  post({ type: "ready" });
} catch (error) {
  fail(-1, error);
}
