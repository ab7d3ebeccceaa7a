/**
 * The queue service's wire types, one declaration for the daemon (its queue machine produces them)
 * and the client library (it receives them). PROTOCOL.md "Queues" describes each field.
 */

/** Exponential retry backoff: `min(capMs, baseMs * factor^(n-1))` for the n-th delivery, then
 * shortened by a deterministic jitter of up to `jitter` (a fraction in [0, 1]). */
export interface BackoffConfig {
  baseMs: number;
  factor: number;
  capMs: number;
  jitter: number;
}

/** The settings of one queue (all resolved: defaults filled in). */
export interface QueueConfig {
  /** A delivery that ends unacked when the message has this many deliveries dead-letters it. */
  maxDeliveries: number;
  /** The visibility timeout of a consume that names none. */
  visibilityMs: number;
  backoff: BackoffConfig;
  /** The dead-letter queue's name; null = `${queue}.dlq`. */
  dlq: string | null;
  /** How long a dedupId is remembered (0 = no dedup). */
  dedupWindowMs: number;
}

/** A message handed to a consumer (QUEUE_CONSUME, QUEUE_DELIVERY). Ack it with its `receipt` before its visibility ends; on the node, `payload` is the machine's copy: read it, do not modify it. */
export interface DeliveredMessage {
  id: number;
  payload: Uint8Array;
  deliveryCount: number;
  receipt: string;
  enqueuedAt: number;
  firstDeliveredAt: number;
}

/** How one delivery ended. `in-flight`: it has not ended yet. */
export type DeliveryOutcome = "in-flight" | "timeout" | "nacked" | "released";

/** One delivery of a message. */
export interface DeliveryRecord {
  at: number;
  consumerId: string;
  outcome: DeliveryOutcome;
  endedAt: number | null;
}

/** A dead-lettered message (QUEUE_DLQ_LIST). */
export interface DeadMessage {
  id: number;
  sourceQueue: string;
  payload: Uint8Array;
  enqueuedAt: number;
  deliveryCount: number;
  reason: "max-deliveries";
  deadAt: number;
  history: DeliveryRecord[];
}

/** Gauges and counters of one queue. `depth` = visible + delayed. */
export interface QueueStats {
  depth: number;
  inFlight: number;
  delivered: number;
  acked: number;
  redelivered: number;
  deadLettered: number;
}

/** The outcome of one receipt of an ack: acked, or refused (`stale`: the message was
 * redelivered, acked or dead-lettered since; `unknown`: no such message in this queue). */
export type AckOutcome =
  | { receipt: string; ok: true; id: number }
  | { receipt: string; ok: false; reason: "stale" | "unknown" | "malformed" };
