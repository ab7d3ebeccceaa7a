/**
 * A queue worker: push deliveries (at most `prefetch` in hand), an ack when the handler
 * resolves, a nack (retried with the queue's backoff) when it throws, and a graceful shutdown on
 * SIGTERM/SIGINT: stop taking messages, finish the ones in hand, send their acks, exit.
 *
 *   DSYNC_NODES=127.0.0.1:7001 QUEUE=emails npx tsx examples/queue-worker.ts
 */
import { QueueClient, connect } from "dsync/client";

const queue = process.env.QUEUE ?? "emails";
const client = await connect({ nodes: process.env.DSYNC_NODES ?? "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003" });
const queues = new QueueClient(client);
let processed = 0;

const subscription = await queues.subscribe(queue, { prefetch: 8 }, async (m) => {
  const body = new TextDecoder().decode(m.payload);
  await new Promise((r) => setTimeout(r, 5)); // the work
  processed++;
  console.log(`processed ${m.id}: ${body}`);
});
console.log(`worker ready on ${queue}`);

let stopping = false;
const stop = async (signal: string): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await subscription.close(); // no new deliveries; in-hand messages finish and are acked
  await client.close();
  console.log(`stopped on ${signal} after ${processed} messages`);
  process.exit(0);
};
process.once("SIGTERM", () => void stop("SIGTERM"));
process.once("SIGINT", () => void stop("SIGINT"));
