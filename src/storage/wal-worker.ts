/**
 * The WAL's fsync worker (`worker_threads`): it runs batches with a `SegmentWriter`, so that
 * write + fdatasync, which block for milliseconds, stay off the event loop whenever the main
 * thread has other work (see `wal.ts` for when the main thread runs a batch itself).
 *
 * Protocol (see `wal-protocol.ts`): it opens the segment and posts `ready` with the writer's
 * state, then for every `batch` takes the state it carries, runs the ops, and acks with the
 * batch's `seq` and the new state. After any failure it reports `error` and ignores everything
 * else: after a failed fsync the kernel may have dropped the dirty pages, so retrying could
 * report durability that does not exist.
 */
import { parentPort, workerData } from "node:worker_threads";
import { ok as assert } from "node:assert";
import type { FromWorker, ToWorker, WorkerInit } from "./wal-protocol.ts";
import { SegmentWriter, errorReport } from "./segment-writer.ts";

const port = parentPort;
assert(port !== null, "wal-worker must run in a worker thread");
const init = workerData as WorkerInit;
let failed = false;

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

function fail(seq: number, error: unknown, writer: SegmentWriter | null): void {
  failed = true;
  post(errorReport(seq, error, writer?.activeFile ?? ""));
}

port.on("message", (msg: ToWorker) => {
  if (failed) return;
  const writer = new SegmentWriter(init, msg.state);
  if (msg.type === "batch") {
    try {
      writer.runBatch(msg.ops);
      // The written buffers go back with the ack: garbage here waits for this mostly idle
      // thread's next collection (about 50 MiB more resident per node in `npm run bench:idle`'s
      // 128 MiB fill of 256 KiB messages); the busy main thread collects them soon.
      const written: ArrayBuffer[] = [];
      for (const op of msg.ops) if (op.op === "write") written.push(op.buf.buffer as ArrayBuffer);
      post({ type: "ack", seq: msg.seq, state: writer.state() }, written);
    } catch (error) {
      fail(msg.seq, error, writer);
    }
  } else {
    try {
      writer.close();
      post({ type: "closed" });
    } catch (error) {
      fail(-1, error, writer);
    }
    port.close();
  }
});

let writer: SegmentWriter | null = null;
try {
  writer = SegmentWriter.open(init, Date.now());
  post({ type: "ready", state: writer.state() });
} catch (error) {
  fail(-1, error, writer);
}
