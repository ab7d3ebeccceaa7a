import type { BackoffConfig, QueueConfig } from "./types.ts";
import { utf8Length } from "../../../../protocol/validate.ts";

/** Longest queue name (and consumer id, dedupId), in UTF-8 bytes. */
export const NAME_BYTES_MAX = 256;
/** Largest payload. */
export const PAYLOAD_BYTES_MAX = 1024 * 1024;
/** Most messages one consume returns. */
export const CONSUME_MAX = 1000;
/** Most messages one enqueue carries. */
export const ENQUEUE_BATCH_MAX = 10_000;
/** Most receipts one ack carries. */
export const ACK_BATCH_MAX = 10_000;
/** Most messages one redrive moves. */
export const REDRIVE_MAX = 10_000;
/** Longest visibility timeout, delay, backoff cap or dedup window: 7 days. */
export const DURATION_MS_MAX = 7 * 24 * 3600_000;
/** Highest maxDeliveries. */
export const MAX_DELIVERIES_MAX = 10_000;
/** Deliveries kept in a message's history (the most recent). */
export const HISTORY_MAX = 32;

export const DEFAULT_CONFIG: QueueConfig = {
  maxDeliveries: 10,
  visibilityMs: 30_000,
  backoff: { baseMs: 1000, factor: 2, capMs: 60_000, jitter: 0.2 },
  dlq: null,
  dedupWindowMs: 5 * 60_000,
};

/** Returns a reason when `v` is not a 1..256-byte string, else null. */
export function badName(v: unknown, what: string): string | null {
  if (typeof v !== "string") return `${what} must be a string`;
  const n = utf8Length(v);
  if (n < 1 || n > NAME_BYTES_MAX) return `${what} must be 1..${NAME_BYTES_MAX} bytes of UTF-8 (got ${n})`;
  return null;
}

/** Whether `v` is a finite number >= 0 (times in ms). */
export function isTime(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}

/** Whether `v` is a duration in [min, DURATION_MS_MAX]. */
export function isDuration(v: unknown, min = 0): v is number {
  return isTime(v) && v >= min && v <= DURATION_MS_MAX;
}

/** Whether `v` is an integer in [min, max]. */
export function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;
}

/** Whether `v` is absent (undefined or MessagePack nil). */
export function absent(v: unknown): v is undefined | null {
  return v === undefined || v === null;
}

/** Returns a reason when `v` is not a payload, else null. */
export function badPayload(v: unknown): string | null {
  if (!(v instanceof Uint8Array)) return "payload must be binary (Uint8Array)";
  if (v.byteLength > PAYLOAD_BYTES_MAX) return `payload must be at most ${PAYLOAD_BYTES_MAX} bytes (got ${v.byteLength})`;
  return null;
}

/** Returns a reason when `v` is not the messages of an enqueue, else null. */
export function badEnqueueMessages(v: unknown): string | null {
  if (!Array.isArray(v) || v.length < 1 || v.length > ENQUEUE_BATCH_MAX) return `messages must be an array of 1..${ENQUEUE_BATCH_MAX}`;
  for (let i = 0; i < v.length; i++) {
    const m = v[i] as unknown;
    if (m === null || typeof m !== "object") return `messages[${i}] must be a map`;
    const { payload, delayMs, dedupId } = m as Record<string, unknown>;
    const badP = badPayload(payload);
    if (badP !== null) return `messages[${i}]: ${badP}`;
    if (!absent(delayMs) && !isDuration(delayMs)) return `messages[${i}]: delayMs must be a duration in ms`;
    if (!absent(dedupId)) {
      const badD = badName(dedupId, "dedupId");
      if (badD !== null) return `messages[${i}]: ${badD}`;
    }
  }
  return null;
}

/** Validates a complete backoff; returns a reason or null. */
export function badBackoff(b: BackoffConfig): string | null {
  if (!isDuration(b.baseMs)) return `backoff.baseMs must be in [0, ${DURATION_MS_MAX}]`;
  if (!(typeof b.factor === "number" && Number.isFinite(b.factor) && b.factor >= 1 && b.factor <= 100)) return "backoff.factor must be in [1, 100]";
  if (!isDuration(b.capMs) || b.capMs < b.baseMs) return `backoff.capMs must be in [baseMs, ${DURATION_MS_MAX}]`;
  if (!(typeof b.jitter === "number" && Number.isFinite(b.jitter) && b.jitter >= 0 && b.jitter <= 1)) return "backoff.jitter must be in [0, 1]";
  return null;
}

/**
 * Merges a partial configuration over `base`, validating every field given. `queue` is the
 * queue's own name (a DLQ may not be the queue itself). Returns the new config or a reason.
 */
export function mergeConfig(
  base: QueueConfig,
  patch: {
    maxDeliveries?: unknown;
    visibilityMs?: unknown;
    backoff?: unknown;
    dlq?: unknown;
    dedupWindowMs?: unknown;
  },
  queue: string | null,
): QueueConfig | string {
  const out: QueueConfig = { ...base, backoff: { ...base.backoff } };
  if (!absent(patch.maxDeliveries)) {
    if (!isInt(patch.maxDeliveries, 1, MAX_DELIVERIES_MAX)) return `maxDeliveries must be an integer in [1, ${MAX_DELIVERIES_MAX}]`;
    out.maxDeliveries = patch.maxDeliveries;
  }
  if (!absent(patch.visibilityMs)) {
    if (!isDuration(patch.visibilityMs, 1)) return `visibilityMs must be in [1, ${DURATION_MS_MAX}]`;
    out.visibilityMs = patch.visibilityMs;
  }
  if (!absent(patch.backoff)) {
    const b = patch.backoff;
    if (typeof b !== "object" || Array.isArray(b)) return "backoff must be a map";
    const p = b as Record<string, unknown>;
    for (const k of ["baseMs", "factor", "capMs", "jitter"] as const) {
      if (!absent(p[k])) (out.backoff as unknown as Record<string, unknown>)[k] = p[k];
    }
    const bad = badBackoff(out.backoff);
    if (bad !== null) return bad;
  }
  if (patch.dlq !== undefined) {
    if (patch.dlq !== null) {
      const bad = badName(patch.dlq, "dlq");
      if (bad !== null) return bad;
      if (patch.dlq === queue) return "a queue cannot be its own dead-letter queue";
    }
    out.dlq = patch.dlq as string | null;
  }
  if (!absent(patch.dedupWindowMs)) {
    if (!isDuration(patch.dedupWindowMs)) return `dedupWindowMs must be in [0, ${DURATION_MS_MAX}]`;
    out.dedupWindowMs = patch.dedupWindowMs;
  }
  return out;
}
