import type { Message, Queue } from "./store.ts";
import type { DeadMessageView, QueueStats } from "./types.ts";

// Read-only projections of the state for callers. They copy what they return, so nothing a
// caller holds can reach back into the replicated state.

/** Where one message is (the machine's `placements()`, for tests and the simulator). */
export interface Placement {
  queue: string;
  state: "ready" | "inflight" | "dead";
  deliveryCount: number;
  visibleAt: number;
}

export function statsOf(q: Queue | undefined): QueueStats {
  if (q === undefined) return { depth: 0, inFlight: 0, delivered: 0, acked: 0, redelivered: 0, deadLettered: 0 };
  return { depth: q.ready.size, inFlight: q.inFlight, ...q.counters };
}

/** Up to `max` messages of a DLQ's store, oldest death first. */
export function deadMessageViews(store: Map<number, Message> | undefined, max: number): DeadMessageView[] {
  const out: DeadMessageView[] = [];
  if (store === undefined) return out;
  for (const m of store.values()) {
    if (out.length >= max) break;
    out.push({
      id: m.id,
      sourceQueue: m.queue,
      payload: m.payload,
      enqueuedAt: m.enqueuedAt,
      deliveryCount: m.deliveryCount,
      reason: "max-deliveries",
      deadAt: m.deadAt!,
      history: m.history.map((h) => ({ ...h })),
    });
  }
  return out;
}

export function placementsOf(messages: Map<number, Message>): Map<number, Placement> {
  const out = new Map<number, Placement>();
  for (const m of messages.values()) out.set(m.id, { queue: m.queue, state: m.state, deliveryCount: m.deliveryCount, visibleAt: m.visibleAt });
  return out;
}
