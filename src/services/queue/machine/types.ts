/**
 * Public types of the queue service: one partition's commands (they go through that partition's
 * Raft log), the results a proposer receives, the events pushed to the node, and the read views.
 *
 * Every command carries `now`, the leader's clock when it proposed the entry. The machine never
 * reads a clock of its own; it keeps `max(now seen so far)` as its clock, so partition time never
 * runs backwards across a leader change (which is what keeps first deliveries FIFO).
 */

import type { AckOutcome, BackoffConfig, DeliveredMessage, QueueConfig } from "../../../../protocol/queue-messages.ts";

export type { AckOutcome, BackoffConfig, DeadMessage, DeadMessage as DeadMessageView, DeliveredMessage, DeliveryOutcome, DeliveryRecord, QueueConfig, QueueStats } from "../../../../protocol/queue-messages.ts";


/** One message of an enqueue batch. `payload` at most 1 MiB. */
export interface EnqueueMessage {
  payload: Uint8Array;
  delayMs?: number | null;
  dedupId?: string | null;
}

/**
 * A command of one partition's queue state machine.
 *
 * - `enqueue`: a batch for one queue, all or nothing (QUEUE_FULL refuses the whole batch).
 * - `consume`: up to `max` (1..1000) visible messages, in flight until `now + visibilityMs`
 *   (the queue's default when absent).
 * - `ack`: removes the messages whose receipts are current; each receipt gets its own outcome.
 * - `nack`: the message goes back after `delayMs`, or after the queue's backoff when absent;
 *   at maxDeliveries it is dead-lettered instead.
 * - `expire`: proposed by the leader once its clock reaches {@link QueueMachine.nextDeadline}.
 * - `release-consumer`: the consumer is gone; its in-flight messages are visible again at once.
 * - `configure`: changes only the fields given; creates the queue if needed.
 * - `dlq.redrive`: `queue` is the DLQ's name; moves up to `max` messages (oldest first) back to
 *   their source queues with deliveryCount 0.
 * - `batch`: several commands (no batch among them) in one entry, each with the batch's `now`.
 * - `purge`: drops the visible and delayed messages of `queue` (in-flight ones stay ackable);
 *   with `dlq: true`, `queue` names a DLQ and all its messages are dropped.
 */
export type QueueCommand =
  | { op: "enqueue"; queue: string; messages: EnqueueMessage[]; now: number }
  | { op: "consume"; queue: string; consumerId: string; max: number; visibilityMs?: number | null; now: number }
  | { op: "ack"; queue: string; receipts: string[]; now: number }
  | { op: "nack"; queue: string; receipt: string; delayMs?: number | null; now: number }
  | { op: "expire"; now: number }
  | { op: "release-consumer"; consumerId: string; now: number }
  | {
      op: "configure";
      queue: string;
      maxDeliveries?: number | null;
      visibilityMs?: number | null;
      backoff?: Partial<BackoffConfig> | null;
      dlq?: string | null;
      dedupWindowMs?: number | null;
      now: number;
    }
  | { op: "dlq.redrive"; queue: string; max: number; now: number }
  | { op: "purge"; queue: string; dlq?: boolean | null; now: number }
  | { op: "batch"; cmds: UnstampedQueueCommand[]; now: number };

/** A command before the leader stamps it (a batch's members share the batch's stamp). */
export type UnstampedQueueCommand = DistributiveOmit<Exclude<QueueCommand, { op: "batch" }>, "now">;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export type QueueErrorCode = "INVALID_ARGUMENT" | "QUEUE_FULL" | "STALE_RECEIPT";


export type QueueResult =
  | { ok: true; kind: "enqueued"; queue: string; ids: number[]; duplicates: boolean[] }
  | { ok: true; kind: "messages"; queue: string; messages: DeliveredMessage[] }
  | { ok: true; kind: "acked"; queue: string; acked: number; outcomes: AckOutcome[] }
  | { ok: true; kind: "nacked"; queue: string; id: number; visibleAt: number | null; deadLettered: boolean }
  | { ok: true; kind: "expired"; redelivered: number; deadLettered: number; more: boolean }
  | { ok: true; kind: "released"; consumerId: string; redelivered: number; deadLettered: number }
  | { ok: true; kind: "configured"; queue: string; config: QueueConfig }
  | { ok: true; kind: "redriven"; queue: string; ids: number[] }
  | { ok: true; kind: "purged"; queue: string; count: number }
  | { ok: true; kind: "batch"; results: QueueResult[] }
  | { ok: false; code: QueueErrorCode; message: string };

/** `visible`: `count` messages of `queue` became consumable (long-polls and push subscriptions
 * can be served). Emitted once per queue per command, in the order queues were touched. */
export type QueueEvent = { kind: "visible"; queue: string; count: number };



/** Options of a {@link QueueMachine}. They must be the same on every replica. */
export interface QueueMachineOptions {
  /** Receives events after each apply, in a deterministic order. */
  onEvent?: (e: QueueEvent) => void;
  /** Messages a partition holds at most (visible, delayed, in flight and dead), default 1,000,000. */
  maxMessages?: number;
  /** Settings of a queue never configured. */
  defaults?: Partial<Omit<QueueConfig, "backoff">> & { backoff?: Partial<BackoffConfig> };
  /** Timeouts and wake-ups one `expire` settles at most (the rest on the next), default 10,000. */
  expireBatchMax?: number;
}
