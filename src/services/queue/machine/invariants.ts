import { invariant, type QueueState, type Timer } from "./store.ts";

/**
 * A full structural check, O(state), for tests and the simulator (the apply path asserts as it
 * goes). Every message is in exactly one place — its queue's ready heap, in flight (indexed
 * under its consumer, with a pending timeout), or one DLQ — and every gauge matches the state.
 */
export function checkState(st: QueueState, consumers: Map<string, Set<number>>, timers: readonly Timer[]): void {
  let prev = 0;
  const inReady = new Set<number>();
  for (const q of st.queues.values()) {
    let inflight = 0;
    for (const m of q.ready.items()) {
      invariant(!inReady.has(m.id), `message ${m.id} twice in ready heaps`);
      inReady.add(m.id);
      invariant(st.messages.get(m.id) === m, `ready message ${m.id} of ${q.name} not in the message table`);
      invariant(m.queue === q.name, `message ${m.id} of ${m.queue} in the ready heap of ${q.name}`);
    }
    for (const m of st.messages.values()) if (m.queue === q.name && m.state === "inflight") inflight++;
    invariant(inflight === q.inFlight, `${q.name}: inFlight ${q.inFlight}, counted ${inflight}`);
    let last = -Infinity;
    for (const v of q.dedup.values()) {
      invariant(v.at >= last, `${q.name}: dedup entries out of time order`);
      last = v.at;
    }
  }
  const pendingTimeouts = new Set<string>();
  const pendingWakes = new Set<number>();
  for (const t of timers) {
    if (t.kind === "inflight") pendingTimeouts.add(`${t.id}:${t.seq}:${t.at}`);
    else pendingWakes.add(t.id);
  }
  let dead = 0;
  for (const m of st.messages.values()) {
    invariant(m.id > prev && m.id < st.nextId, `message ids out of order at ${m.id}`);
    prev = m.id;
    invariant(st.queues.has(m.queue), `message ${m.id} of unknown queue ${m.queue}`);
    invariant(m.deliveryCount >= 0 && m.seq < st.nextSeq, `message ${m.id}: bad counters`);
    const open = m.history.filter((h) => h.outcome === "in-flight").length;
    switch (m.state) {
      case "ready":
        invariant(inReady.has(m.id), `ready message ${m.id} is in no ready heap`);
        invariant(m.consumerId === null && m.dlq === null && open === 0, `ready message ${m.id} looks delivered or dead`);
        invariant(!m.wakePending || pendingWakes.has(m.id), `message ${m.id} owes a wake-up with no timer`);
        break;
      case "inflight":
        invariant(!inReady.has(m.id) && m.dlq === null, `in-flight message ${m.id} is also elsewhere`);
        invariant(m.consumerId !== null && consumers.get(m.consumerId)?.has(m.id) === true, `in-flight message ${m.id} not indexed under its consumer`);
        invariant(m.deliveryCount >= 1 && open === 1 && m.history[m.history.length - 1]!.outcome === "in-flight", `in-flight message ${m.id} has no open delivery`);
        invariant(pendingTimeouts.has(`${m.id}:${m.seq}:${m.deadline}`), `in-flight message ${m.id} has no timeout pending`);
        break;
      case "dead": {
        invariant(!inReady.has(m.id) && m.consumerId === null && open === 0, `dead message ${m.id} is also elsewhere`);
        invariant(m.dlq !== null && st.dlqs.get(m.dlq)?.get(m.id) === m, `dead message ${m.id} not in its DLQ ${m.dlq}`);
        dead++;
        break;
      }
    }
  }
  let stored = 0;
  for (const [name, store] of st.dlqs) {
    invariant(store.size > 0, `empty DLQ ${name} kept`);
    stored += store.size;
  }
  invariant(stored === dead, `DLQs hold ${stored} messages, ${dead} are dead`);
  let tracked = 0;
  for (const s of consumers.values()) {
    invariant(s.size > 0, "empty consumer index kept");
    tracked += s.size;
  }
  let inflightTotal = 0;
  for (const q of st.queues.values()) inflightTotal += q.inFlight;
  invariant(tracked === inflightTotal, `consumer index holds ${tracked}, ${inflightTotal} in flight`);
}
