/**
 * The cache with a near-cache: reads served from this process's memory after the first, and
 * still never stale — a write anywhere invalidates the copy before it completes.
 *
 *   DSYNC_NODES=127.0.0.1:7001 npx tsx examples/near-cache.ts
 */
import { CacheClient, connect } from "dsync/client";

const nodes = process.env.DSYNC_NODES ?? "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";
// Any node serves the cache: stay on the first one reached.
const readerConn = await connect({ nodes, preferLeader: false });
const writerConn = await connect({ nodes: nodes.split(",").reverse(), preferLeader: false });
const reader = new CacheClient(readerConn, { nearCache: true });
const writer = new CacheClient(writerConn);
const key = `user:${process.pid}`;
try {
  await writer.set(key, "Ada", { ttlMs: 60_000 });
  const t0 = performance.now();
  const first = await reader.getString(key);
  const t1 = performance.now();
  const second = await reader.getString(key); // from memory
  const t2 = performance.now();
  console.log(`first read ${first} in ${(t1 - t0).toFixed(2)} ms, second read ${second} in ${(t2 - t1).toFixed(3)} ms (near-cache)`);
  await writer.set(key, "Grace"); // returns once the reader's copy is gone
  console.log(`after another client's write: ${await reader.getString(key)}`);
} finally {
  await reader.close();
  await writer.close();
  await readerConn.close();
  await writerConn.close();
}
