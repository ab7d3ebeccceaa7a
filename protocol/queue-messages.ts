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

/** How queue names map to partitions, recorded once in group 0 (see "Queue partitions"). */
export interface QueueLayout {
  readonly partitions: number;
  readonly virtualNodes: number;
  readonly members: readonly string[];
  /** Replicas per partition (absent in layouts recorded before partitions had a replication factor: every member). */
  readonly replicationFactor?: number;
  /**
   * Cache partitions follow the shard map: cache partition p has queue partition p's replicas and
   * preferred leader, and moves with it. Absent in layouts recorded before: one cache partition
   * per founding member, replicated on every founder.
   */
  readonly cacheOnShards?: boolean;
}

/** Where a queue's partition is led: a client that sends there skips the forwarding hop. */
export interface LeaderHint {
  leader: string | null;
  leaderAddr: string | null;
}

/** QUEUE_ENQUEUE's reply: one id per message, `duplicates[i]` when message i's dedupId was seen. */
export interface QueueEnqueueReply extends LeaderHint {
  queue: string;
  partition: number;
  ids: number[];
  duplicates: boolean[];
}

/** QUEUE_CONSUME's reply: zero or more deliveries (none when `waitMs` passed first). */
export interface QueueConsumeReply extends LeaderHint {
  queue: string;
  messages: DeliveredMessage[];
}

/** QUEUE_ACK's reply: one outcome per receipt, in order. */
export interface QueueAckReply extends LeaderHint {
  queue: string;
  acked: number;
  outcomes: AckOutcome[];
}

/** QUEUE_NACK's reply: when the message is visible again (null once dead-lettered). */
export interface QueueNackReply {
  queue: string;
  id: number;
  visibleAt: number | null;
  deadLettered: boolean;
}

/** QUEUE_SUBSCRIBE's reply; deliveries follow as QUEUE_DELIVER pushes. */
export interface QueueSubscribeReply extends LeaderHint {
  subscriptionId: number;
  queue: string;
  prefetch: number;
  partition: number;
}

/** QUEUE_UNSUBSCRIBE's reply: `closed` is false when no such subscription was open. */
export interface QueueUnsubscribeReply {
  subscriptionId: number;
  closed: boolean;
}

/** QUEUE_STATS's reply. */
export interface QueueStatsReply extends LeaderHint {
  queue: string;
  partition: number;
  stats: QueueStats;
  dlq: string;
  dlqDepth: number;
  config: QueueConfig;
}

/** QUEUE_CONFIGURE's reply: the queue's whole configuration after the change. */
export interface QueueConfigureReply {
  queue: string;
  config: QueueConfig;
}

/** QUEUE_DLQ_LIST's reply: the oldest dead letters first. */
export interface QueueDlqListReply {
  queue: string;
  dlq: string;
  messages: DeadMessage[];
}

/** QUEUE_DLQ_REDRIVE's reply: the new ids of the messages moved back. */
export interface QueueDlqRedriveReply {
  queue: string;
  dlq: string;
  ids: number[];
}

/** QUEUE_PURGE's reply: `queue` is the dead-letter queue's name when `dlq` was asked. */
export interface QueuePurgeReply {
  queue: string;
  purged: number;
}

/** One partition in QUEUE_LIST's reply. */
export interface QueuePartitionView {
  partition: number;
  leader: string | null;
  queues: ({ queue: string } & QueueStats)[];
  dlqs: string[];
}

/** QUEUE_LIST's reply. */
export interface QueueListReply {
  layout: QueueLayout | null;
  partitions: QueuePartitionView[];
}
