import type { MinHeap } from "../../shared/min-heap.ts";
import { invariant, type Message, type QueueState, type Timer } from "./store.ts";

// Upkeep of what a snapshot leaves out (the timer heap, the consumer index, each queue's ready
// heap and in-flight count), in one place so the rebuild after a restore is the same
// bookkeeping the machine does while applying.

/** Consumer → ids of its in-flight messages. */
export type ConsumerIndex = Map<string, Set<number>>;

export function track(consumers: ConsumerIndex, m: Message): void {
  const c = m.consumerId!;
  let s = consumers.get(c);
  if (s === undefined) {
    s = new Set();
    consumers.set(c, s);
  }
  s.add(m.id);
}

export function untrack(consumers: ConsumerIndex, m: Message): void {
  const c = m.consumerId!;
  const s = consumers.get(c);
  invariant(s !== undefined && s.delete(m.id), `in-flight message ${m.id} not indexed under consumer ${c}`);
  if (s.size === 0) consumers.delete(c);
}

/** Whether `t` still stands for its message's current delivery or wake-up (timers are dropped lazily). */
export function isCurrent(st: QueueState, t: Timer): boolean {
  const m = st.messages.get(t.id);
  if (m === undefined || m.seq !== t.seq) return false;
  if (t.kind === "inflight") return m.state === "inflight" && m.deadline === t.at;
  return m.state === "ready" && m.wakePending && m.visibleAt === t.at;
}

/**
 * Rebuilds the derived heaps and indexes of a freshly decoded state. Every heap pops in a total
 * order, so a rebuilt heap (without the stale entries the original still carries) behaves the same.
 */
export function rebuildIndexes(st: QueueState, timers: MinHeap<Timer>, consumers: ConsumerIndex): void {
  timers.clear();
  consumers.clear();
  for (const m of st.messages.values()) {
    const q = st.queues.get(m.queue);
    invariant(q !== undefined, `snapshot: message ${m.id} of unknown queue ${m.queue}`);
    if (m.state === "ready") {
      q.ready.push(m);
      if (m.wakePending) timers.push({ at: m.visibleAt, kind: "wake", id: m.id, seq: m.seq });
    } else if (m.state === "inflight") {
      q.inFlight++;
      track(consumers, m);
      timers.push({ at: m.deadline, kind: "inflight", id: m.id, seq: m.seq });
    }
  }
}
