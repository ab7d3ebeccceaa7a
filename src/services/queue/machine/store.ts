import { ownBytes } from "../../command-codec.ts";
import { MinHeap } from "../../shared/min-heap.ts";
import type { DeliveryRecord, QueueConfig } from "./types.ts";

/** Throws on a broken internal invariant: a bug, never bad input. */
export function invariant(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`queue invariant violated: ${what}`);
}

/**
 * One message. Exactly one of three places holds it, told by `state`:
 * - `ready`: in its queue's ready heap, consumable once `now >= visibleAt` (delayed before);
 * - `inflight`: delivered to `consumerId` under receipt `seq`, until `deadline`;
 * - `dead`: in the dead-letter store `dlq`.
 * An acked (or purged) message is in none: it is gone from the partition.
 */
export interface Message {
  readonly id: number;
  readonly queue: string;
  readonly payload: Uint8Array;
  readonly enqueuedAt: number;
  readonly dedupId: string | null;
  state: "ready" | "inflight" | "dead";
  /** ready: when it is (or was) visible. */
  visibleAt: number;
  /** ready: a wake-up timer at `visibleAt` is pending (a `visible` event is still owed). */
  wakePending: boolean;
  /** inflight: when the visibility timeout ends. */
  deadline: number;
  /** inflight: the consumer holding it. */
  consumerId: string | null;
  /** The partition-wide delivery sequence number of the current (or last) delivery; 0 = none. */
  seq: number;
  deliveryCount: number;
  firstDeliveredAt: number | null;
  /** The most recent deliveries (at most HISTORY_MAX), oldest first. */
  history: DeliveryRecord[];
  /** dead: the DLQ holding it, and when it got there. */
  dlq: string | null;
  deadAt: number | null;
}

/** Cumulative counters of one queue. */
export interface QueueCounters {
  delivered: number;
  acked: number;
  redelivered: number;
  deadLettered: number;
}

/** Visible order: visibility time, then id (ids grow with enqueue order). */
export function compareReady(a: Message, b: Message): number {
  if (a.visibleAt !== b.visibleAt) return a.visibleAt < b.visibleAt ? -1 : 1;
  return a.id - b.id;
}

/** One named queue of the partition. */
export interface Queue {
  readonly name: string;
  config: QueueConfig;
  /** Visible and delayed messages, in delivery order. */
  ready: MinHeap<Message>;
  inFlight: number;
  counters: QueueCounters;
  /** dedupId → the id it was first enqueued as and when; insertion order = time order. */
  dedup: Map<string, { id: number; at: number }>;
}

export function newQueue(name: string, config: QueueConfig): Queue {
  return {
    name,
    config: { ...config, backoff: { ...config.backoff } },
    ready: new MinHeap(compareReady),
    inFlight: 0,
    counters: { delivered: 0, acked: 0, redelivered: 0, deadLettered: 0 },
    dedup: new Map(),
  };
}

/** A message just enqueued at `now`, not yet placed: the caller makes it ready. */
export function newMessage(id: number, queue: string, payload: Uint8Array, now: number, visibleAt: number, dedupId: string | null): Message {
  return {
    id,
    queue,
    // The entry's own bytes once the log drops it (one copy in memory, not two); a copy when the
    // payload is a small part of a larger buffer (a batch, a segment read at replay).
    payload: ownBytes(payload),
    enqueuedAt: now,
    dedupId,
    state: "ready",
    visibleAt,
    wakePending: false,
    deadline: 0,
    consumerId: null,
    seq: 0,
    deliveryCount: 0,
    firstDeliveredAt: null,
    history: [],
    dlq: null,
    deadAt: null,
  };
}

/** The name of a queue's DLQ. */
export function dlqName(q: Queue): string {
  return q.config.dlq ?? `${q.name}.dlq`;
}

/**
 * A timer of the partition: a visibility timeout (`inflight`, current while the message is in
 * flight under delivery `seq`) or the moment a delayed message becomes visible (`wake`, current
 * while the message is ready at `at` with its wake pending). Stale timers are dropped lazily.
 */
export interface Timer {
  at: number;
  kind: "inflight" | "wake";
  id: number;
  seq: number;
}

export function compareTimers(a: Timer, b: Timer): number {
  if (a.at !== b.at) return a.at < b.at ? -1 : 1;
  if (a.kind !== b.kind) return a.kind === "inflight" ? -1 : 1;
  if (a.id !== b.id) return a.id - b.id;
  return a.seq - b.seq;
}

/** Everything a snapshot carries (the heaps and indexes are derived from it). */
export interface QueueState {
  lastIndex: number;
  clock: number;
  nextId: number;
  nextSeq: number;
  queues: Map<string, Queue>;
  /** Every message the partition holds, in id order. */
  messages: Map<number, Message>;
  /** DLQ name → its messages in the order they died. */
  dlqs: Map<string, Map<number, Message>>;
}
