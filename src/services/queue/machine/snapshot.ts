import { copyBytes, decodeCommand, encodeCommand } from "../../command-codec.ts";
import { invariant, newQueue, type Message, type Queue, type QueueState } from "./store.ts";
import type { DeliveryOutcome, QueueConfig } from "./types.ts";

const VERSION = 1;

type ConfigRow = [maxDeliveries: number, visibilityMs: number, baseMs: number, factor: number, capMs: number, jitter: number, dlq: string | null, dedupWindowMs: number];
type QueueRow = [name: string, config: ConfigRow, counters: [number, number, number, number], dedup: [dedupId: string, id: number, at: number][]];
type HistoryRow = [at: number, consumerId: string, outcome: DeliveryOutcome, endedAt: number | null];
type MessageRow = [
  id: number,
  queue: string,
  payload: Uint8Array,
  enqueuedAt: number,
  dedupId: string | null,
  state: Message["state"],
  visibleAt: number,
  wakePending: boolean,
  deadline: number,
  consumerId: string | null,
  seq: number,
  deliveryCount: number,
  firstDeliveredAt: number | null,
  history: HistoryRow[],
  dlq: string | null,
  deadAt: number | null,
];

interface Image {
  v: number;
  lastIndex: number;
  clock: number;
  nextId: number;
  nextSeq: number;
  queues: QueueRow[];
  messages: MessageRow[];
  dlqs: [name: string, ids: number[]][];
}

const configRow = (c: QueueConfig): ConfigRow => [c.maxDeliveries, c.visibilityMs, c.backoff.baseMs, c.backoff.factor, c.backoff.capMs, c.backoff.jitter, c.dlq, c.dedupWindowMs];

/**
 * Serializes the state as positional rows. Maps are written in iteration order and restored in
 * the same order, so identical states give identical bytes and a restored machine iterates (and
 * so decides) like the original.
 */
export function encodeSnapshot(st: QueueState): Uint8Array {
  const image: Image = {
    v: VERSION,
    lastIndex: st.lastIndex,
    clock: st.clock,
    nextId: st.nextId,
    nextSeq: st.nextSeq,
    queues: [...st.queues.values()].map((q) => [
      q.name,
      configRow(q.config),
      [q.counters.delivered, q.counters.acked, q.counters.redelivered, q.counters.deadLettered],
      [...q.dedup].map(([k, v]) => [k, v.id, v.at]),
    ]),
    messages: [...st.messages.values()].map((m) => [
      m.id,
      m.queue,
      m.payload,
      m.enqueuedAt,
      m.dedupId,
      m.state,
      m.visibleAt,
      m.wakePending,
      m.deadline,
      m.consumerId,
      m.seq,
      m.deliveryCount,
      m.firstDeliveredAt,
      m.history.map((h): HistoryRow => [h.at, h.consumerId, h.outcome, h.endedAt]),
      m.dlq,
      m.deadAt,
    ]),
    dlqs: [...st.dlqs].map(([name, msgs]) => [name, [...msgs.keys()]]),
  };
  return encodeCommand(image);
}

/** Rebuilds the state (not the heaps: the machine re-derives them) from {@link encodeSnapshot}. */
export function decodeSnapshot(data: Uint8Array): QueueState {
  const image = decodeCommand(data) as Image;
  invariant(image !== null && typeof image === "object" && image.v === VERSION, `unknown queue snapshot version ${String((image as Image | null)?.v)}`);
  const queues = new Map<string, Queue>();
  for (const [name, c, counters, dedup] of image.queues) {
    const config: QueueConfig = {
      maxDeliveries: c[0],
      visibilityMs: c[1],
      backoff: { baseMs: c[2], factor: c[3], capMs: c[4], jitter: c[5] },
      dlq: c[6],
      dedupWindowMs: c[7],
    };
    const q = newQueue(name, config);
    q.counters = { delivered: counters[0], acked: counters[1], redelivered: counters[2], deadLettered: counters[3] };
    for (const [k, id, at] of dedup) q.dedup.set(k, { id, at });
    queues.set(name, q);
  }
  const messages = new Map<number, Message>();
  for (const r of image.messages) {
    messages.set(r[0], {
      id: r[0],
      queue: r[1],
      payload: copyBytes(r[2]), // a copy: the image's buffer belongs to the caller
      enqueuedAt: r[3],
      dedupId: r[4],
      state: r[5],
      visibleAt: r[6],
      wakePending: r[7],
      deadline: r[8],
      consumerId: r[9],
      seq: r[10],
      deliveryCount: r[11],
      firstDeliveredAt: r[12],
      history: r[13].map(([at, consumerId, outcome, endedAt]) => ({ at, consumerId, outcome, endedAt })),
      dlq: r[14],
      deadAt: r[15],
    });
  }
  const dlqs = new Map<string, Map<number, Message>>();
  for (const [name, ids] of image.dlqs) {
    const store = new Map<number, Message>();
    for (const id of ids) {
      const m = messages.get(id);
      invariant(m !== undefined && m.state === "dead" && m.dlq === name, `snapshot: DLQ ${name} lists message ${id} that is not dead there`);
      store.set(id, m);
    }
    dlqs.set(name, store);
  }
  return { lastIndex: image.lastIndex, clock: image.clock, nextId: image.nextId, nextSeq: image.nextSeq, queues, messages, dlqs };
}
