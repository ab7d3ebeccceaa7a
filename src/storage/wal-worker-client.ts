/**
 * The main thread's side of the fsync worker: starting it, shaping batches for transfer and
 * turning its error reports back into errors. Kept out of `wal.ts`, which only orders records
 * and batches; everything about crossing the thread boundary is here and in `wal-protocol.ts`.
 */
import { Worker } from "node:worker_threads";
import { WalIoError } from "./errors.ts";
import type { FromWorker, WorkerInit } from "./wal-protocol.ts";
import type { WriterState } from "./segment-writer.ts";

function sourceWorker(init: WorkerInit): Worker {
  const url = new URL("./wal-worker.ts", import.meta.url).href;
  const api = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(url)}, ${JSON.stringify(import.meta.url)}))`;
  return new Worker(bootstrap, { eval: true, workerData: init, execArgv: [] });
}

/** Starts the fsync worker and waits for its `ready` (explicit handshake, no sleep): the worker and the writer's state. */
export function startWorker(init: WorkerInit): Promise<{ worker: Worker; state: WriterState }> {
  // Compiled (dist/, plain node): the worker is JavaScript next to this file.
  const compiled = import.meta.url.endsWith(".js");
  // From source the worker is TypeScript. On Node 20, loader hooks registered by `--import tsx`
  // do not reach a worker's entry module, so a tiny eval'd bootstrap loads it through tsx's own
  // API. execArgv is emptied: the worker needs none of the parent's flags (e.g. --test).
  const worker = compiled ? new Worker(new URL("./wal-worker.js", import.meta.url), { workerData: init, execArgv: [] }) : sourceWorker(init);
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    };
    const onMessage = (msg: FromWorker) => {
      cleanup();
      if (msg.type === "ready") {
        resolve({ worker, state: msg.state });
      } else {
        void worker.terminate();
        reject(new WalIoError(`WAL worker failed to start: ${msg.type === "error" ? msg.message : msg.type}`));
      }
    };
    const onError = (error: Error) => {
      cleanup();
      reject(new WalIoError("WAL worker failed to start", { cause: error }));
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new WalIoError(`WAL worker exited during start-up (code ${code})`));
    };
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
  });
}

/** The WAL failure an `error` report (from the worker, or the main thread's own batch) stands for. */
export function workerWriteError(msg: Extract<FromWorker, { type: "error" }>): WalIoError {
  // Rebuilt as node's fs errors look (code 'EIO', syscall, path), so callers can tell EIO
  // from ENOSPC and name the file; fd-based syscalls carry no path, the worker adds it.
  const cause = Object.assign(new Error(msg.message), { code: msg.code ?? undefined, errno: msg.errno ?? undefined, syscall: msg.syscall ?? undefined, path: msg.path ?? undefined });
  const where = msg.path !== null && !msg.message.includes(msg.path) ? ` (${msg.path})` : "";
  return new WalIoError(`WAL write failed: ${msg.message}${where}`, { cause });
}

/** Concatenates frames into one buffer that owns its ArrayBuffer, so it can be transferred. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const only = parts[0]!;
  if (parts.length === 1 && only.byteOffset === 0 && only.byteLength === only.buffer.byteLength) return only;
  let total = 0;
  for (const p of parts) total += p.length;
  // Never Buffer.concat: small Buffers come from a shared pool, and transferring it would detach it.
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
