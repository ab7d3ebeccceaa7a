import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode, InvalidArgumentError, Op } from "../../protocol/index.ts";
import { CacheClient } from "../../src/client/cache.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { ConfigError, configFromEnv, resolveConfig } from "../../src/config/node-config.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

let cluster: TestCluster;
let conn: DsyncClient;
let cache: CacheClient;

before(async () => {
  // One node: it is home of every key; the embedded store backs the cache.
  cluster = await TestCluster.create(1, { FSYNC: "false", CACHE_WRITE_POLICY: "write-through" });
  conn = new DsyncClient({ nodes: cluster.clientAddrs, preferLeader: false, maxAttempts: 1 });
  cache = new CacheClient(conn);
  await waitFor(async () => cache.set("ready", "1").then(() => true, () => false), "the cache to serve", 20_000);
});

after(async () => {
  await conn?.close();
  await cluster?.destroy();
});

test("cache node - bad requests get INVALID_ARGUMENT naming the field, and the node keeps serving", async () => {
  const bad: [number, unknown, RegExp][] = [
    [Op.CACHE_GET, {}, /"key" is required/],
    [Op.CACHE_GET, { key: "" }, /must not be empty/],
    [Op.CACHE_GET, { key: "k".repeat(1025) }, /longer than 1024 bytes/],
    [Op.CACHE_GET, { key: 7 }, /must be a string/],
    [Op.CACHE_GET, { key: "k", near: "yes" }, /"near" must be a boolean/],
    [Op.CACHE_SET, { key: "k", value: "text" }, /bytes \(MessagePack bin\), got string/],
    [Op.CACHE_SET, { key: "k" }, /bytes \(MessagePack bin\), got nil/],
    [Op.CACHE_SET, { key: "k", value: new Uint8Array(1024 * 1024 + 1) }, /largest value is 1048576 bytes/],
    [Op.CACHE_SET, { key: "k", value: new Uint8Array(1), ttlMs: 0 }, /"ttlMs" must be in/],
    [Op.CACHE_SET, { key: "k", value: new Uint8Array(1), ttlMs: 1.5 }, /"ttlMs" must be an integer/],
    [Op.CACHE_DELETE, [1, 2], /body must be a map/],
    [Op.CACHE_STATE, { key: null }, /"key" is required/],
    [Op.CACHE_NEAR_ACK, { seq: -1 }, /"seq" must be in/],
  ];
  for (const [op, body, message] of bad) {
    await assert.rejects(conn.call(op, body), (err: Error) => err instanceof InvalidArgumentError && message.test(err.message), `${op} ${JSON.stringify(body)?.slice(0, 60)}`);
  }
  // A peer-only type on the client port is refused too.
  await assert.rejects(conn.call(Op.CACHE_READ, { key: "x" }), (err: { code?: number }) => err.code === ErrorCode.UNKNOWN_TYPE);
  await cache.set("still", "serving");
  assert.equal(await cache.getString("still"), "serving");
});

test("cache node - set, get, delete, TTL expiry and invalidate; values are bytes", async () => {
  const bytes = new Uint8Array([0, 255, 1, 254]);
  await cache.set("bin", bytes);
  assert.deepEqual([...(await cache.get("bin"))!], [...bytes]);
  await cache.delete("bin");
  assert.equal(await cache.get("bin"), null);
  await cache.set("short", "lived", { ttlMs: 150 });
  assert.equal(await cache.getString("short"), "lived");
  await waitFor(async () => (await cache.get("short")) === null, "the TTL to expire the value", 5000);
  await cache.set("kept", "in the store");
  await cache.invalidate("kept");
  const s = await cache.state("kept");
  assert.deepEqual(s.copies.map((c) => c.state), ["I"]);
  assert.equal(await cache.getString("kept"), "in the store", "the value outlives its copies (it is in the partition's log)");
  const stats = await cache.stats();
  assert.equal(stats.store, "embedded");
  assert.equal(stats.writePolicy, "write-through");
  assert.ok(stats.hits > 0 && stats.misses > 0);
  // One node: two queue partitions (two per founding node), and a cache partition with each.
  assert.deepEqual(stats.homeOf, [1, 2], "the only node is home of every cache partition");
});

test("cache node - a set resent with its write id after a newer write does not put the older value back", async () => {
  await conn.call(Op.CACHE_SET, { key: "resent", value: new TextEncoder().encode("older"), wid: "test-w1" });
  await cache.set("resent", "newer");
  // The client resends the first set (its reply was lost): the node must apply it only once.
  await conn.call(Op.CACHE_SET, { key: "resent", value: new TextEncoder().encode("older"), wid: "test-w1" });
  assert.equal(await cache.getString("resent"), "newer");
  await assert.rejects(conn.call(Op.CACHE_SET, { key: "resent", value: new Uint8Array(1), wid: 7 }), (err: Error) => err instanceof InvalidArgumentError && /"wid" must be a string/.test(err.message));
});

test("cache node - a near-cache serves hits locally and drops a key another client writes", async () => {
  const nearConn = new DsyncClient({ nodes: cluster.clientAddrs, preferLeader: false });
  const near = new CacheClient(nearConn, { nearCache: true });
  try {
    await cache.set("nc", "v1");
    assert.equal(await near.getString("nc"), "v1");
    assert.equal(await near.getString("nc"), "v1");
    assert.equal(near.nearHits, 1);
    assert.equal((await cache.state("nc")).copies[0]!.near, 1, "the node knows the near copy");
    await cache.set("nc", "v2"); // resolves only once the near-cache confirmed the invalidation
    assert.equal(await near.getString("nc"), "v2");
    assert.equal(near.nearHits, 1, "the second value came from the node");
    await nearConn.close();
    await waitFor(async () => (await cache.state("nc")).copies[0]!.near === 0, "the node to forget a closed client's copies", 5000);
  } finally {
    near.close();
    await nearConn.close();
  }
});

test("cache node - a near-cache client keeps serving a key it keeps using past one lease (renewals), and still sees the next write", async () => {
  const nearConn = new DsyncClient({ nodes: cluster.clientAddrs, preferLeader: false });
  const near = new CacheClient(nearConn, { nearCache: true });
  try {
    await cache.set("renewed", "v1");
    assert.equal(await near.getString("renewed"), "v1");
    const missesBefore = near.nearMisses;
    // 5 s of reads: five leases (1 s by default). Without renewals the copy runs out at least
    // once a lease; with them it only would if the renewal timer stalled for half a lease.
    let gets = 0;
    for (const end = performance.now() + 5000; performance.now() < end; gets++) {
      assert.equal(await near.getString("renewed"), "v1");
      await new Promise((r) => setTimeout(r, 20));
    }
    const misses = near.nearMisses - missesBefore;
    assert.ok(misses <= 2, `${misses} of ${gets} gets went to the node`);
    await cache.set("renewed", "v2");
    assert.equal(await near.getString("renewed"), "v2");
  } finally {
    near.close();
    await nearConn.close();
  }
});

// Seen in the fault campaign with no fault: a plain client read a write's new value while a
// near-cache client on the same node still served the old one (the node made the new value
// visible before its near clients had acked the invalidation): a read inversion.
test("cache node - while a near-cache client has not yet dropped the old value, nobody reads the new one", async () => {
  const nearConn = new DsyncClient({ nodes: cluster.clientAddrs, preferLeader: false });
  const readerConn = new DsyncClient({ nodes: cluster.clientAddrs, preferLeader: false });
  const ACK_DELAY_MS = 400;
  let ackSentAt = 0;
  // A near-cache client that takes its time to confirm the invalidation (it still serves the
  // old value until it does).
  nearConn.on("push", (env) => {
    if (env.type !== Op.CACHE_NEAR_INVALIDATE) return;
    const { seq } = env.body as { seq: number };
    setTimeout(() => {
      ackSentAt = performance.now();
      void nearConn.call(Op.CACHE_NEAR_ACK, { seq }).catch(() => {});
    }, ACK_DELAY_MS);
  });
  try {
    await cache.set("inv", "old");
    const got = (await nearConn.call(Op.CACHE_GET, { key: "inv", near: true })) as { near: boolean };
    assert.equal(got.near, true, "the near copy is registered");
    const write = cache.set("inv", "new");
    await new Promise((r) => setTimeout(r, 50));
    const reader = new CacheClient(readerConn);
    const value = await reader.getString("inv");
    const readAt = performance.now();
    await write;
    assert.equal(value, "new");
    assert.ok(ackSentAt > 0 && readAt >= ackSentAt, `the read finished ${(ackSentAt - readAt).toFixed(0)} ms before the near client dropped the old value`);
  } finally {
    await nearConn.close();
    await readerConn.close();
  }
});

test("cache node - CACHE_EVICTION_POLICY=lfu keeps the most used keys and counts evictions by policy in /metrics", async () => {
  // Long leases (5 s), so the copies the test inspects do not simply run out on a slow machine.
  const lfu = await TestCluster.create(1, { FSYNC: "false", CACHE_CAPACITY: "3", CACHE_EVICTION_POLICY: "LFU", CACHE_INVALIDATION_TIMEOUT_MS: "5000" });
  const c = new DsyncClient({ nodes: lfu.clientAddrs, preferLeader: false, maxAttempts: 1 });
  try {
    const lc = new CacheClient(c);
    await waitFor(async () => lc.set("a", "1").then(() => true, () => false), "the cache to serve", 20_000);
    for (const [k, v] of [["b", "2"], ["c", "3"], ["d", "4"]]) await lc.set(k!, v!);
    // Reads bring copies to the node: a, b, c, then a twice more and c once more.
    for (const k of ["a", "b", "c", "a", "a", "c"]) assert.ok(await lc.getString(k));
    assert.equal(await lc.getString("d"), "4"); // b is the least used copy
    const held = async (key: string) => (await lc.state(key)).copies.some((copy) => copy.state !== "I");
    assert.equal(await held("b"), false, "b, the least used line, was evicted");
    for (const key of ["a", "c", "d"]) assert.equal(await held(key), true, `${key} is still held`);
    // Evicted is not lost: the value is in the partition's log.
    assert.equal(await lc.getString("b"), "2");
    const metrics = await fetch(`${lfu.nodes[0]!.httpUrl}/metrics`).then((r) => r.text());
    const evicted = Number(/dsync_cache_evictions_total\{policy="lfu"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? -1);
    assert.ok(evicted >= 1, `evictions by lfu in /metrics: ${evicted}`);
  } finally {
    await c.close();
    await lfu.destroy();
  }
});

test("cache config - bad cache settings are reported with every other problem", () => {
  const raw = configFromEnv({ NODE_ID: "n", CACHE_WRITE_POLICY: "write-around", CACHE_WRITE_BACK_MS: "-5", CACHE_CAPACITY_BYTES: "12", CACHE_EVICTION_POLICY: "random", CACHE_INVALIDATION_TIMEOUT_MS: "50" });
  assert.throws(
    () => resolveConfig(raw),
    (err: ConfigError) =>
      err instanceof ConfigError &&
      err.problems.length === 5 &&
      err.problems.some((p) => /CACHE_WRITE_POLICY must be one of write-back, write-through/.test(p)) &&
      err.problems.some((p) => /CACHE_WRITE_BACK_MS/.test(p)) &&
      err.problems.some((p) => /CACHE_CAPACITY_BYTES/.test(p)) &&
      err.problems.some((p) => /CACHE_EVICTION_POLICY must be one of lru, lfu, fifo/.test(p)) &&
      err.problems.some((p) => /CACHE_INVALIDATION_TIMEOUT_MS/.test(p)),
  );
  const ok = resolveConfig(configFromEnv({ NODE_ID: "n", CACHE_WRITE_POLICY: "Write-Back", CACHE_WRITE_BACK_MS: "0", CACHE_CAPACITY_BYTES: "4096" }));
  assert.equal(ok.cacheWritePolicy, "write-back");
  assert.equal(ok.cacheWriteBackMs, 0);
  assert.equal(ok.cacheCapacityBytes, 4096);
  const defaults = resolveConfig(configFromEnv({ NODE_ID: "n" }));
  assert.equal(defaults.cacheWritePolicy, "write-through");
  assert.equal(defaults.cacheEvictionPolicy, "lru");
  assert.equal(defaults.cacheInvalidationTimeoutMs, 1000);
  const fifo = resolveConfig(configFromEnv({ NODE_ID: "n", CACHE_EVICTION_POLICY: " FIFO ", CACHE_INVALIDATION_TIMEOUT_MS: "250" }));
  assert.equal(fifo.cacheEvictionPolicy, "fifo");
  assert.equal(fifo.cacheInvalidationTimeoutMs, 250);
});
