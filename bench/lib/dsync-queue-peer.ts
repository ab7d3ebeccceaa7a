/**
 * dsync's durable queue as a bench:queue peer, in two consumer modes on one cluster:
 *   - subscribe: each consumer is a `QueueClient.subscribe` with a prefetch; the handler returns at
 *     once and the subscription acks (the mode a user picks for throughput);
 *   - poll:      each consumer loops on a long-poll `consume` (max = prefetch) and acks what it got
 *     with one batched `ack`.
 * Producers call `enqueue`. `perConnection` producers share one DsyncClient, and consumers have
 * connections of their own, so one socket does not cap a cell. The connections' seed lists are
 * rotated so their first dials spread over the three nodes; each then moves to group 0's leader
 * (the client's default `preferLeader`) and QueueClient sends the queue's requests to its
 * partition's leader, as a user's client would; the report says where they went.
 */
import { DsyncClient } from "../../src/client/client.ts";
import { QueueClient, type DeliveredMessage, type Subscription } from "../../src/client/queues.ts";
import type { DsyncCluster } from "./dsync-cluster.ts";
import { sleep } from "./proc.ts";
import { decodeStamp, encodeStamp, withinMs, type DeliverySink, type QueueCell, type QueuePeer, type Stamp } from "./queue-workload.ts";

export interface DsyncQueueOptions {
  readonly perConnection: number;
  /** Subscribe prefetch, and the `max` of each long-poll consume. */
  readonly prefetch: number;
  readonly payloadBytes: number;
}

/** How long a consumer's long poll waits for a message before asking again. */
const LONG_POLL_MS = 1000;
/** Visibility timeout of deliveries: far above any ack delay seen, so no redelivery is expected. */
const VISIBILITY_MS = 30_000;

type Mode = "subscribe" | "poll";

/** The two peers over one running cluster, and where the last cell's connections ended up. */
export function dsyncQueuePeers(cluster: DsyncCluster, opts: DsyncQueueOptions): { subscribe: QueuePeer; poll: QueuePeer; lastPlacement(): string } {
  let placement = "";
  const peer = (mode: Mode): QueuePeer => ({
    name: mode === "subscribe" ? "dsync" : "dsync-poll",
    pids: cluster.pids,
    async open(c: number, sink: DeliverySink, tag: string): Promise<QueueCell> {
      const queue = `bench-${tag}`;
      const groups = Math.ceil(c / opts.perConnection);
      const addrs = cluster.clientAddrs;
      // Rotate the seed list per connection: each starts its dial at a different node.
      const connect = (i: number): DsyncClient =>
        new DsyncClient({ nodes: addrs.map((_, k) => addrs[(i + k) % addrs.length]!), clientName: `bench-queue-${tag}-${i}` });
      const producerConns = Array.from({ length: groups }, (_, g) => connect(g));
      const consumerConns = Array.from({ length: groups }, (_, g) => connect(groups + g));
      const conns = [...producerConns, ...consumerConns];
      const stops: (() => Promise<void>)[] = [];
      let placementNow = (): string => "";
      const close = async (): Promise<void> => {
        placement = placementNow();
        await Promise.allSettled(stops.map((s) => withinMs(s(), 10_000, `${mode} consumer close`)));
        await Promise.allSettled(conns.map((cn) => withinMs(cn.close(), 5000, "DsyncClient.close")));
      };
      try {
        await Promise.all(conns.map((cn) => cn.ready()));
        const producers = producerConns.map((cn) => new QueueClient(cn));
        const consumers = consumerConns.map((cn) => new QueueClient(cn));
        const { partition, leader } = await producers[0]!.stats(queue);
        const subs: Subscription[] = [];
        // Where the queue's partition was led, and which node each producer's requests and each
        // consumer's deliveries came from in the end (requests go to the partition leader once a
        // reply names it; a subscription follows the leader by itself).
        placementNow = () => {
          const count = (ids: (string | undefined)[]): string => {
            const on = new Map<string, number>();
            for (const id of ids) on.set(id ?? "not connected", (on.get(id ?? "not connected") ?? 0) + 1);
            return [...on].map(([id, n]) => `${id} × ${n}`).join(", ");
          };
          const consumed = mode === "subscribe" ? `subscriptions on ${count(subs.map((sub) => sub.client.serverInfo?.nodeId))}` : `consumers' requests to ${count(consumers.map((q) => q.clientFor(queue).serverInfo?.nodeId))}`;
          return `queue partition ${partition} led by ${leader ?? "?"} at the start; producers' requests to ${count(producers.map((q) => q.clientFor(queue).serverInfo?.nodeId))}; ${consumed}`;
        };
        for (let k = 0; k < c; k++) {
          const q = consumers[Math.floor(k / opts.perConnection)]!;
          if (mode === "subscribe") {
            const sub = await subscribeConsumer(q, queue, sink, opts.prefetch);
            subs.push(sub);
            stops.push(() => sub.close());
          } else stops.push(pollConsumer(q, queue, sink, opts.prefetch));
        }
        return {
          async enqueue(s: Stamp): Promise<void> {
            await producers[Math.floor(s.producer / opts.perConnection)]!.enqueue(queue, encodeStamp(s, opts.payloadBytes));
          },
          async leftover(): Promise<string> {
            const { depth, inFlight, deadLettered } = (await producers[0]!.stats(queue)).stats;
            return [depth ? `${depth} waiting` : "", inFlight ? `${inFlight} in flight` : "", deadLettered ? `${deadLettered} dead-lettered` : ""].filter(Boolean).join(", ");
          },
          close,
        };
      } catch (err) {
        await close();
        throw err;
      }
    },
  });
  return { subscribe: peer("subscribe"), poll: peer("poll"), lastPlacement: () => placement };
}

/**
 * One subscription; the handler records the delivery and returns, and the subscription acks (one
 * batched ACK per event-loop turn). The client does not report when that ack is done, so the
 * message counts as acked when the handler returns.
 */
async function subscribeConsumer(q: QueueClient, queue: string, sink: DeliverySink, prefetch: number): Promise<Subscription> {
  const sub = await q.subscribe(queue, { prefetch, visibilityMs: VISIBILITY_MS }, (m: DeliveredMessage) => {
    const s = decodeStamp(m.payload);
    sink.delivered(s);
    sink.acked(s);
  });
  sub.on("error", (err) => sink.failed(err));
  return sub;
}

/** A long-poll loop: consume up to `max`, record each delivery, ack them in one call. */
function pollConsumer(q: QueueClient, queue: string, sink: DeliverySink, max: number): () => Promise<void> {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const got = await q.consume(queue, { max, waitMs: LONG_POLL_MS, visibilityMs: VISIBILITY_MS });
        if (got.length === 0) continue;
        const stamps = got.map((m) => decodeStamp(m.payload));
        for (const s of stamps) sink.delivered(s);
        await q.ack(queue, got.map((m) => m.receipt));
        for (const s of stamps) sink.acked(s);
      } catch (err) {
        if (stopped) break;
        sink.failed(err);
        await sleep(10); // no hot spin on a failing server
      }
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}
