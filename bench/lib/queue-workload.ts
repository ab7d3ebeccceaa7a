/**
 * The queue workload every system in bench:queue runs: P producers, each a closed loop (enqueue
 * one message, await the enqueue's acknowledgement, repeat; ./closed-loop.ts), and C consumers
 * that take messages and ack each. Every message carries its producer's send time on this
 * process's clock, so enqueue-to-delivery latency needs no clock agreement between processes.
 *
 * A system plugs in as a {@link QueuePeer}: it opens producers and consumers for one cell, its
 * consumers report each delivery and ack to a {@link DeliverySink}, and the harness measures.
 */
import { describeError, runClosedLoop, type CellResult } from "./closed-loop.ts";
import { LatencyRecorder, type LatencySummary } from "./latency.ts";
import { sleep } from "./proc.ts";

/** What a message carries: who sent it, its sequence number in that producer, and when. */
export interface Stamp {
  /** {@link nowMs} when the producer called enqueue. */
  readonly sentAtMs: number;
  readonly producer: number;
  readonly seq: number;
}

/** Wall-clock milliseconds with sub-millisecond resolution (one clock for send and delivery). */
export const nowMs = (): number => performance.timeOrigin + performance.now();

/** Bytes of a binary stamp; payloads are padded with zeros up to the size asked for. */
export const STAMP_BYTES = 16;

/** A payload of `bytes` (≥ {@link STAMP_BYTES}) starting with the stamp: f64 sentAtMs, u32 producer, u32 seq. */
export function encodeStamp(s: Stamp, bytes: number): Uint8Array {
  const out = new Uint8Array(Math.max(bytes, STAMP_BYTES));
  const v = new DataView(out.buffer);
  v.setFloat64(0, s.sentAtMs);
  v.setUint32(8, s.producer);
  v.setUint32(12, s.seq);
  return out;
}

/** The stamp at the start of `payload`. @throws RangeError when the payload is shorter than a stamp. */
export function decodeStamp(payload: Uint8Array): Stamp {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return { sentAtMs: v.getFloat64(0), producer: v.getUint32(8), seq: v.getUint32(12) };
}

/**
 * Where consumers report what they got. `delivered` when a message reaches consumer code,
 * `acked` once the system confirmed its ack (or, for a subscription that acks by itself, once the
 * handler returned), `failed` for a consumer-side error. Only events inside the measured window
 * count for the figures; duplicates and losses are counted over the whole cell.
 */
export class DeliverySink {
  readonly latency = new LatencyRecorder();
  windowStart = Number.POSITIVE_INFINITY;
  windowEnd = Number.POSITIVE_INFINITY;
  ackedInWindow = 0;
  ackedTotal = 0;
  /** Deliveries of a message this cell had already delivered (at-least-once redelivery). */
  duplicates = 0;
  errors = 0;
  firstError: string | null = null;
  /** Keys ({@link stampKey}) of every message delivered. */
  readonly #seen = new Set<number>();
  /** Producers waiting for their message's ack (`loop: "acked"`). */
  readonly #waiters = new Map<number, () => void>();

  get distinctDelivered(): number {
    return this.#seen.size;
  }

  #inWindow(): boolean {
    const now = performance.now();
    return now >= this.windowStart && now < this.windowEnd;
  }

  delivered(s: Stamp): void {
    const key = stampKey(s);
    if (this.#seen.has(key)) this.duplicates++;
    else this.#seen.add(key);
    if (this.#inWindow()) this.latency.recordMs(nowMs() - s.sentAtMs);
  }

  acked(s: Stamp): void {
    this.ackedTotal++;
    if (this.#inWindow()) this.ackedInWindow++;
    const key = stampKey(s);
    this.#waiters.get(key)?.();
    this.#waiters.delete(key);
  }

  failed(err: unknown): void {
    this.errors++;
    this.firstError ??= describeError(err);
  }

  /** Resolves once `s` is acked, or rejects after `timeoutMs`. Register before enqueueing it. */
  whenAcked(s: Stamp, timeoutMs: number): Promise<void> {
    const key = stampKey(s);
    return withinMs(new Promise<void>((resolve) => this.#waiters.set(key, resolve)), timeoutMs, `ack of message ${s.producer}/${s.seq}`).finally(() =>
      this.#waiters.delete(key),
    );
  }
}

/** producer × 2^32 + seq: a safe integer for producers < 2^21. */
const stampKey = (s: Stamp): number => s.producer * 2 ** 32 + s.seq;

/** Producers and consumers of one cell, set up and connected before the clock starts. */
export interface QueueCell {
  /** Enqueues one message carrying `s`; resolves once the system acknowledged the enqueue. */
  enqueue(s: Stamp): Promise<void>;
  /**
   * What the server still holds for the cell's queue (waiting, in flight, failed), as a short
   * text, or "" when the queue is empty: a check that every ack really landed.
   */
  leftover(): Promise<string>;
  /** Stops the consumers and closes every connection; must settle on its own (bounded). */
  close(): Promise<void>;
}

export interface QueuePeer {
  readonly name: string;
  /** Server processes whose CPU is measured over the window. */
  readonly pids: readonly number[];
  /** Opens `c` producers and `c` consumers on a queue of its own named after `tag`. */
  open(c: number, sink: DeliverySink, tag: string): Promise<QueueCell>;
}

export interface QueueCellOptions {
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Absolute cap on enqueues in the cell (warm-up included). */
  readonly maxOps: number;
  readonly maxErrors: number;
  /** After the producers stop, how long consumers may take to empty the queue. */
  readonly drainMs: number;
  /**
   * What a producer awaits before its next message: "enqueued", the enqueue's acknowledgement
   * (consumers may fall behind: see backlogAtStop), or "acked", its message's ack by a consumer
   * (at most C messages in flight, so latency stays a steady-state figure).
   */
  readonly loop: "enqueued" | "acked";
  readonly signal?: AbortSignal;
}

export interface QueueCellResult {
  readonly concurrency: number;
  /** Acks confirmed inside the window, per second: the end-to-end rate. */
  readonly msgsPerSec: number;
  /** Enqueue (send) to delivery (consumer code), messages delivered inside the window. */
  readonly delivery: LatencySummary;
  /** The producers' side: enqueue calls and their acknowledgement latency. */
  readonly producers: CellResult;
  /** Enqueued but not yet acked when the producers stopped: > a few × C means consumers lag. */
  readonly backlogAtStop: number;
  readonly enqueued: number;
  readonly duplicates: number;
  /** Enqueued (acknowledged to a producer) but never delivered within `drainMs` after the window. */
  readonly missing: number;
  readonly consumerErrors: number;
  readonly firstConsumerError: string | null;
  /** {@link QueueCell.leftover} after the drain: "" when the server's queue ended empty. */
  readonly leftover: string;
}

/** Runs one cell: opens the peer, drives the closed-loop producers, drains, closes. */
export async function runQueueCell(peer: QueuePeer, tag: string, opts: QueueCellOptions): Promise<QueueCellResult> {
  const sink = new DeliverySink();
  const cell = await peer.open(opts.concurrency, sink, tag);
  let enqueued = 0;
  try {
    // The sink's window is set on the same clock and at the same moment as the closed loop's
    // (warm-up, then `durationMs`); the two differ by timer jitter only.
    sink.windowStart = performance.now() + opts.warmupMs;
    sink.windowEnd = sink.windowStart + opts.durationMs;
    const producers = await runClosedLoop(
      { concurrency: opts.concurrency, warmupMs: opts.warmupMs, durationMs: opts.durationMs, maxOps: opts.maxOps, maxErrors: opts.maxErrors, serverPids: peer.pids, signal: opts.signal },
      async (p, seq) => {
        const s = { sentAtMs: nowMs(), producer: p, seq };
        const acked = opts.loop === "acked" ? sink.whenAcked(s, opts.drainMs) : null;
        acked?.catch(() => {}); // awaited below; a failed enqueue must not leave it unhandled
        await cell.enqueue(s);
        enqueued++;
        await acked;
      },
    );
    const backlogAtStop = Math.max(0, enqueued - sink.ackedTotal);
    const drainUntil = performance.now() + opts.drainMs;
    while (sink.distinctDelivered < enqueued && performance.now() < drainUntil && !opts.signal?.aborted) await sleep(20);
    // Acks may still be on their way (a subscription sends them a turn later): ask again briefly.
    let leftover = await describeLeftover(cell);
    for (let tries = 0; leftover !== "" && tries < 20 && !opts.signal?.aborted; tries++) {
      await sleep(100);
      leftover = await describeLeftover(cell);
    }
    return {
      concurrency: opts.concurrency,
      // A window cut short (errors, abort) is flagged by producers.endedBy; the rate is then rough.
      msgsPerSec: (sink.ackedInWindow / opts.durationMs) * 1000,
      delivery: sink.latency.summary(),
      producers,
      backlogAtStop,
      enqueued,
      duplicates: sink.duplicates,
      missing: Math.max(0, enqueued - sink.distinctDelivered),
      consumerErrors: sink.errors,
      firstConsumerError: sink.firstError,
      leftover,
    };
  } finally {
    await cell.close();
    sink.latency.destroy();
  }
}

/** The cell's leftover, or why it could not be read. */
async function describeLeftover(cell: QueueCell): Promise<string> {
  try {
    return await withinMs(cell.leftover(), 5000, "leftover");
  } catch (err) {
    return `could not check: ${describeError(err)}`;
  }
}

/** Resolves with `p`, or rejects after `ms`, so closing a stuck client never hangs the run. */
export function withinMs<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
