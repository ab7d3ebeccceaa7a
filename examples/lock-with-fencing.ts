/**
 * A lock with a fencing token. A holder can lose its lock without knowing it (a long GC pause,
 * a network partition: its session expires and someone else gets the lock). The fencing token
 * — strictly increasing per resource — lets the storage refuse the late writer.
 *
 *   DSYNC_NODES=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 npx tsx examples/lock-with-fencing.ts
 */
import { LockClient, connect } from "dsync/client";

/** A store that remembers the highest token it has accepted and refuses older ones. */
class FencedStore {
  #highest = 0;
  readonly values: string[] = [];

  write(token: number, value: string): void {
    if (token < this.#highest) throw new Error(`refused "${value}": token ${token} is older than ${this.#highest}`);
    this.#highest = token;
    this.values.push(value);
  }
}

const client = await connect({ nodes: process.env.DSYNC_NODES ?? "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003" });
const store = new FencedStore();
const workerA = new LockClient(client, { clientId: "worker-a" });
const workerB = new LockClient(client, { clientId: "worker-b" });
const resource = `invoices/${process.pid}`;
try {
  const a = await workerA.acquire(resource);
  store.write(a.token, "A's update");
  // A stalls here and loses the lock (we release it for the demo); B takes over.
  await workerA.release(a);
  const b = await workerB.acquire(resource);
  store.write(b.token, "B's update");
  // A wakes up and writes with its old token: the store refuses it.
  try {
    store.write(a.token, "A's late update");
    throw new Error("the late write was accepted");
  } catch (err) {
    console.log(`fenced off: ${(err as Error).message}`);
  }
  await workerB.release(b);
  console.log(`tokens ${a.token} < ${b.token}; store holds: ${store.values.join(", ")}`);
} finally {
  await workerA.close();
  await workerB.close();
  await client.close();
}
