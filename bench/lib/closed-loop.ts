/**
 * A closed-loop load generator: C proposers, each an async loop issuing one operation after the
 * previous one finished. Warm-up first (not recorded), then a measured window. Every loop stops
 * by itself: at the end of the window, at an absolute op cap, or after too many errors.
 */
import { CpuWindow } from "./cpu.ts";
import { performance } from "node:perf_hooks";
import { LatencyRecorder, type LatencySummary } from "./latency.ts";
import { sleep } from "./proc.ts";

export interface ClosedLoopOptions {
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Absolute cap on operations issued in the cell (warm-up included). */
  readonly maxOps: number;
  /** The cell aborts once this many operations failed. */
  readonly maxErrors: number;
  /** Server PIDs whose CPU is measured over the window. */
  readonly serverPids?: readonly number[];
  /** How long to wait for in-flight operations after the window before giving up. */
  readonly drainTimeoutMs?: number;
  /** Stops the cell early (e.g. on SIGINT). */
  readonly signal?: AbortSignal;
}

export interface CellResult {
  readonly concurrency: number;
  readonly ops: number;
  readonly windowMs: number;
  readonly opsPerSec: number;
  readonly latency: LatencySummary;
  readonly clientCpuPct: number;
  readonly serverCpuPct: number;
  readonly errors: number;
  readonly firstError: string | null;
  /** Why the window ended. */
  readonly endedBy: "duration" | "op-cap" | "errors" | "aborted";
  /** In-flight operations that had not finished `drainTimeoutMs` after the window. */
  readonly stuck: number;
}

/**
 * Runs `op(proposer, seq)` in `concurrency` closed loops. `op` must settle on its own (each
 * client has request timeouts); the harness also gives up waiting after `drainTimeoutMs`.
 */
export async function runClosedLoop(opts: ClosedLoopOptions, op: (proposer: number, seq: number) => Promise<unknown>): Promise<CellResult> {
  const rec = new LatencyRecorder();
  let issued = 0;
  let stop = false;
  let measuring = false;
  let measuredOps = 0;
  let errors = 0;
  let firstError: string | null = null;
  let endedBy: CellResult["endedBy"] = "duration";
  let inFlight = 0;
  let wake: (() => void) | null = null;
  const halt = (why: CellResult["endedBy"]): void => {
    if (stop) return;
    stop = true;
    endedBy = why;
    wake?.();
  };

  const loop = async (p: number): Promise<void> => {
    let seq = 0;
    // One clock read per operation: its end is the next one's start (a closed loop issues the next
    // at once). At a few hundred ns per in-process op (a near-cache hit), a second read per op
    // would be a tenth of what is measured.
    let t0 = performance.now();
    while (!stop) {
      if (issued >= opts.maxOps) {
        halt("op-cap");
        break;
      }
      issued++;
      inFlight++;
      try {
        await op(p, seq++);
        const t1 = performance.now();
        // Only operations that complete inside the window count (their start may precede it).
        if (measuring) {
          rec.recordMs(t1 - t0);
          measuredOps++;
        }
        t0 = t1;
      } catch (err) {
        errors++;
        firstError ??= describeError(err);
        if (errors >= opts.maxErrors) halt("errors");
        else await sleep(10); // no hot spin on a failing server
        t0 = performance.now();
      } finally {
        inFlight--;
      }
    }
  };

  const interruptibleSleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        wake = null;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(t);
        wake = null;
        resolve();
      };
    });

  const onAbort = (): void => halt("aborted");
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const loops = Array.from({ length: opts.concurrency }, (_, p) => loop(p));
  await interruptibleSleep(opts.warmupMs);
  rec.reset();
  measuredOps = 0;
  measuring = !stop;
  const cpu = new CpuWindow(opts.serverPids ?? []);
  const t0 = performance.now();
  if (!stop) await interruptibleSleep(opts.durationMs);
  measuring = false;
  const windowMs = performance.now() - t0;
  const cpuReading = cpu.read(windowMs);
  const ops = measuredOps;
  const latency = rec.summary();
  halt(endedBy);

  // Drain: each op settles by its client's timeout; do not wait forever regardless.
  const drainTimeoutMs = opts.drainTimeoutMs ?? 15_000;
  let drainTimer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    Promise.allSettled(loops).then(() => true),
    new Promise<boolean>((r) => (drainTimer = setTimeout(() => r(false), drainTimeoutMs))),
  ]);
  clearTimeout(drainTimer);
  opts.signal?.removeEventListener("abort", onAbort);
  rec.destroy();
  return {
    concurrency: opts.concurrency,
    ops,
    windowMs,
    opsPerSec: windowMs > 0 ? (ops / windowMs) * 1000 : 0,
    latency,
    clientCpuPct: cpuReading.clientPct,
    serverCpuPct: cpuReading.serverPct,
    errors,
    firstError,
    endedBy,
    stuck: drained ? 0 : inFlight,
  };
}

/** "CODE_NAME: message" for dsync errors (which carry `codeName`), "Name: message" otherwise. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { codeName?: unknown }).codeName;
  return `${typeof code === "string" ? code : err.name}: ${err.message}`;
}

/**
 * Steady state before the first cell: each system runs its workload at C=16, unrecorded, for
 * `--system-warmup` seconds (default 10; 2 with --quick). Node runs new code in its interpreter
 * and optimizes it only once it is hot, which under load takes seconds: a fresh dsync cluster
 * spent 772 µs of CPU per lock cycle over its first 2 s of C=16 load, 434 over the next 2 s and
 * 242–281 µs from then on (3 nodes, one connection). The first cell would time that instead of
 * the server a long-running deployment has. Every system gets the same warm-up, so clients
 * written in JavaScript (ioredis, BullMQ, the etcd3 client) warm up too.
 */
export const SYSTEM_WARMUP_CONCURRENCY = 16;

/** The `--system-warmup` option: seconds, 0 to skip. */
export function systemWarmupSeconds(raw: string | undefined, quick: boolean): number {
  const s = raw === undefined ? (quick ? 2 : 10) : Number(raw);
  if (!(s >= 0) || !Number.isFinite(s)) throw new Error(`--system-warmup must be ≥ 0 seconds, got ${raw}`);
  return s;
}

/** Runs `op` in SYSTEM_WARMUP_CONCURRENCY closed loops for `seconds`, recording nothing. */
export async function warmUpSystem(seconds: number, op: (proposer: number, seq: number) => Promise<unknown>, signal?: AbortSignal): Promise<void> {
  if (seconds <= 0) return;
  await runClosedLoop(
    { concurrency: SYSTEM_WARMUP_CONCURRENCY, warmupMs: 0, durationMs: seconds * 1000, maxOps: 1_000_000 * seconds, maxErrors: 50, ...(signal && { signal }) },
    op,
  );
}
