import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { Redis } from "ioredis";
import { startRedis, type RedisServer } from "../../scripts/lib/redis-server.ts";
import { CacheClient } from "../../src/client/cache.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { REDIS_KEY_PREFIX } from "../../src/services/cache/store.ts";
import { ROOT, TestCluster, waitFor } from "../helpers/daemon.ts";

const CAPACITY = 8;
const WRITE_BACK_MS = 10;
const HOT_KEYS = ["hot-0", "hot-1", "hot-2", "hot-3", "hot-4"];

/** One operation as a client saw it; times are performance.now() in this process. */
interface Op {
  readonly client: string;
  readonly kind: "read" | "write";
  readonly key: string;
  /** Written, or read (null: absent). */
  value: string | null;
  readonly start: number;
  end: number;
  ok: boolean;
  /** Served by the client's near-cache (no round trip). */
  nearHit?: boolean;
}

/**
 * No stale reads: a read of `key` returns the initial absence or some write's value; that write
 * must have started before the read ended, and no write of `key` may have both started after
 * it completed and completed before the read began (which would make the value older than a
 * completed write). Failed writes may or may not have happened: they never make a read stale,
 * but a read may return them.
 */
function checkHistory(ops: readonly Op[]): { reads: number } {
  const writes = new Map<string, Op>();
  for (const o of ops) if (o.kind === "write") writes.set(o.value!, o);
  let reads = 0;
  for (const r of ops) {
    if (r.kind !== "read" || !r.ok) continue;
    reads++;
    const w = r.value === null ? null : (writes.get(r.value) ?? null);
    if (r.value !== null) {
      assert.ok(w !== null && w.key === r.key, `${r.client} read ${r.key} = ${r.value}, a value never written to it`);
      assert.ok(w.start < r.end, `${r.client} read ${r.key} = ${r.value} before that write began`);
    }
    const wEnd = w === null ? -Infinity : w.ok ? w.end : Infinity;
    for (const w2 of writes.values()) {
      if (w2.key !== r.key || !w2.ok || w2 === w) continue;
      assert.ok(
        !(w2.start > wEnd && w2.end < r.start),
        `stale read${r.nearHit ? " (near-cache hit)" : ""}: ${r.client} read ${r.key} = ${r.value} at ${r.start.toFixed(1)}, but ${w2.client} had written ${w2.value} (${w2.start.toFixed(1)}–${w2.end.toFixed(1)}) after that value's write ended (${wEnd.toFixed(1)})`,
      );
    }
  }
  return { reads };
}

interface Actor {
  readonly name: string;
  readonly node: number;
  readonly cache: CacheClient;
  readonly conn: DsyncClient;
}

let redis: RedisServer;
let cluster: TestCluster;
let actors: Actor[] = [];
let r: Redis;
const history: Op[] = [];
let seq = 0;

function actor(node: number, near: boolean): Actor {
  const conn = new DsyncClient({ nodes: [cluster.clientAddrs[node]!], preferLeader: false, requestTimeoutMs: 5000, maxAttempts: 3 });
  return { name: `${near ? "near" : "plain"}@node_${node}`, node, conn, cache: new CacheClient(conn, { nearCache: near }) };
}

async function doOp(a: Actor, kind: "read" | "write", key: string): Promise<Op> {
  const op: Op = { client: a.name, kind, key, value: kind === "write" ? `${a.name}#${++seq}` : null, start: performance.now(), end: 0, ok: false };
  history.push(op);
  try {
    if (kind === "write") await a.cache.set(key, op.value!);
    else {
      const hits = a.cache.nearHits;
      op.value = await a.cache.getString(key);
      op.nearHit = a.cache.nearHits > hits;
    }
    op.ok = true;
  } catch {
    // Recorded as failed: a failed write may still have taken effect; a failed read says nothing.
  }
  op.end = performance.now();
  return op;
}

/** One step: every actor does one random read or write of a hot key, all at once. */
async function step(who: Actor[], writeShare = 0.4): Promise<Op[]> {
  return Promise.all(who.map((a) => doOp(a, Math.random() < writeShare ? "write" : "read", HOT_KEYS[Math.floor(Math.random() * HOT_KEYS.length)]!)));
}

/**
 * The coherence invariant at a quiet moment, for `keys`: every live copy holds the same version,
 * and the key's home lists every node holding one among the copies it granted (so a write would
 * reach it, or wait out its lease).
 */
async function checkCoherence(via: CacheClient, keys: readonly string[]): Promise<void> {
  for (const key of keys) {
    const s = await via.state(key);
    const live = s.copies.filter((c) => c.state === "S");
    assert.ok(new Set(live.map((c) => c.gen)).size <= 1, `copies of ${key} hold different versions: ${JSON.stringify(s)}`);
    const granted = s.copies.find((c) => c.node === s.home)?.holders;
    if (!granted) continue; // The home is unreachable or just changed: nothing to compare with.
    for (const c of live) {
      if (c.home !== s.home) continue; // Granted by an earlier home: its lease fences it.
      assert.ok(granted.some((h) => h.node === c.node), `${c.node} holds ${key} but its home ${s.home} does not list it: ${JSON.stringify(s)}`);
    }
  }
}

function dsyncCli(node: number, ...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/dsync.ts"), "-n", cluster.clientAddrs[node]!, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => resolve({ code: code ?? -1, out: out.trim() }));
  });
}

before(async () => {
  redis = await startRedis({ appendfsync: "everysec" });
  const env = { REDIS_URL: redis.url, CACHE_CAPACITY: String(CAPACITY), CACHE_WRITE_BACK_MS: String(WRITE_BACK_MS), FSYNC: "false" };
  try {
    cluster = await TestCluster.create(3, env);
  } catch (err) {
    await redis.stop();
    throw err;
  }
  r = new Redis(redis.url);
  actors = [0, 1, 2].flatMap((n) => [actor(n, false), actor(n, true)]);
  // Ready once every node can write and read (every cache partition has a home).
  for (const a of actors) await waitFor(async () => (await doOp(a, "write", `ready-${a.name}`)).ok, `${a.name} to serve the cache`, 20_000);
});

after(async () => {
  for (const a of actors) await a.conn.close();
  r?.disconnect();
  await cluster?.destroy();
  await redis?.stop();
});

test("cache - concurrent reads and writes from clients on all nodes: copies agree with their homes, no stale read", { timeout: 60_000 }, async () => {
  for (let i = 0; i < 40; i++) {
    await step(actors);
    await checkCoherence(actors[i % actors.length]!.cache, HOT_KEYS);
  }
  // A loaded machine may miss a heartbeat now and then (a partition elects a new home): allow a
  // few failed operations, never a wrong answer.
  const ops = history.filter((o) => HOT_KEYS.includes(o.key));
  const failed = ops.filter((o) => !o.ok).length;
  assert.ok(failed <= ops.length * 0.05, `${failed} of ${ops.length} operations failed`);
  const { reads } = checkHistory(history);
  assert.ok(reads > 50, `checked ${reads} reads`);
  const nearHits = actors.reduce((s, a) => s + a.cache.nearHits, 0);
  assert.ok(nearHits > 0, "near-caches served some reads locally");
});

test("cache - a write on one node is read on another; put → get → invalidate → get through the CLI", { timeout: 60_000 }, async () => {
  const [a, b] = [actors[0]!, actors[2]!];
  await waitFor(async () => (await doOp(a, "write", "greeting-probe")).ok, "node_0 to serve", 20_000);
  await a.cache.set("greeting", "hello");
  assert.equal(await b.cache.getString("greeting"), "hello");
  await b.cache.set("greeting", "bonjour");
  assert.equal(await a.cache.getString("greeting"), "bonjour");

  assert.deepEqual(await dsyncCli(0, "cache", "set", "demo", '{"x":1}'), { code: 0, out: "OK" });
  assert.deepEqual(await dsyncCli(1, "cache", "get", "demo"), { code: 0, out: '{"x":1}' });
  // Copies are leased for about a second, less than a CLI process takes to start: look at them
  // through the library, and at the CLI's rendering of the same request.
  assert.equal(await actors[1]!.cache.getString("demo"), '{"x":1}');
  const copies = await actors[0]!.cache.state("demo");
  assert.equal(copies.copies.find((c) => c.node === "node_1")?.state, "S", JSON.stringify(copies));
  const state = await dsyncCli(2, "cache", "state", "demo");
  assert.equal(state.code, 0);
  assert.match(state.out, /NODE\s+STATE\s+ROLE\s+LEASE LEFT\s+NEAR CLIENTS/);
  assert.match(state.out, /node_\d\s+[SI]\s+home/);
  assert.match(state.out, /home node_\d; copies it granted: /);
  assert.deepEqual(await dsyncCli(2, "cache", "invalidate", "demo"), { code: 0, out: "invalidated demo on every node" });
  const s = await actors[1]!.cache.state("demo");
  assert.ok(s.copies.every((c) => c.state === "I"), "no node holds the key after invalidate");
  assert.deepEqual(await dsyncCli(1, "cache", "get", "demo"), { code: 0, out: '{"x":1}' });
  assert.deepEqual(await dsyncCli(1, "cache", "del", "demo"), { code: 0, out: "deleted demo" });
  assert.equal((await dsyncCli(0, "cache", "get", "demo")).code, 1);
  const stats = JSON.parse((await dsyncCli(0, "--json", "cache", "stats")).out) as { nodeId: string; store: string; lines: Record<string, number> };
  assert.equal(stats.nodeId, "node_0");
  assert.equal(stats.store, "redis");
});

test("cache - writes go straight to the key's home once a reply names it; the route is dropped when that node is the connected one", { timeout: 60_000 }, async () => {
  const a = actors[0]!;
  // A key whose home is another node: its first write is forwarded by node_0, and the reply names the home.
  let key = "";
  let home: string | null = null;
  for (let i = 0; i < 200 && key === ""; i++) {
    const s = await a.cache.state(`route-${i}`);
    if (s.home !== null && s.home !== "node_0") [key, home] = [`route-${i}`, s.home];
  }
  assert.ok(home !== null, "some key has its home on node_1 or node_2");
  assert.equal(a.cache.routeOf(key), null);
  await a.cache.set(key, "one");
  const homeAddr = cluster.clientAddrs[Number(home.slice("node_".length))]!;
  assert.equal(a.cache.routeOf(key), homeAddr, "the write's reply named the home");
  // Sent straight to the home now; every node still reads what it wrote.
  await a.cache.set(key, "two");
  await a.cache.delete(key);
  await a.cache.set(key, "three");
  for (const b of actors) assert.equal(await b.cache.getString(key), "three", `${b.name} reads the routed write`);
  // A key homed on the connected node keeps no route.
  let local = "";
  for (let i = 0; i < 200 && local === ""; i++) if ((await a.cache.state(`local-${i}`)).home === "node_0") local = `local-${i}`;
  assert.notEqual(local, "");
  await a.cache.set(local, "x");
  assert.equal(a.cache.routeOf(local), null);
});

test("cache - a key only Redis holds is read from it with its expiry; a key Redis lacks reads as absent", { timeout: 60_000 }, async () => {
  const a = actors[2]!; // plain client: each get below reaches node_1's copies or the key's home
  await r.set(REDIS_KEY_PREFIX + "seeded", "from redis");
  // Shorter than a copy's lease (about a second): the read after the expiry finds the copy still leased.
  const expiresAt = Date.now() + 800;
  await r.set(REDIS_KEY_PREFIX + "seeded-ttl", "short-lived", "PXAT", expiresAt);
  assert.equal(await a.cache.getString("seeded"), "from redis");
  assert.equal(await a.cache.getString("never-anywhere"), null);
  const value = await a.cache.getString("seeded-ttl");
  // Read before the expiry, it is the value; a machine stalled past it must see it gone instead.
  assert.equal(value, Date.now() < expiresAt ? "short-lived" : null);
  // The leased copy carries Redis's expiry: once past it, the copy serves absence, not the value
  // (with the expiry lost, this read is served from the copy and fails).
  await new Promise((res) => setTimeout(res, Math.max(0, expiresAt - Date.now()) + 50));
  assert.equal(await a.cache.getString("seeded-ttl"), null);
});

test("cache - capacity and LRU order on a node; write-back reaches Redis within the delay bound", { timeout: 60_000 }, async () => {
  const a = actors[0]!; // no near-cache: every get reaches node_0's copies
  const bound = WRITE_BACK_MS + 2000;
  const t0 = performance.now();
  await a.cache.set("wb", "written back");
  await waitFor(async () => (await r.get(REDIS_KEY_PREFIX + "wb")) === "written back", "the write-back to reach Redis", bound);
  assert.ok(performance.now() - t0 < bound);

  for (let i = 1; i <= CAPACITY + 1; i++) await a.cache.set(`lru-${i}`, `v${i}`);
  // Reads bring copies to node_0; leases last about a second, so the checks follow at once.
  for (let i = 1; i <= CAPACITY; i++) assert.equal(await a.cache.getString(`lru-${i}`), `v${i}`);
  assert.equal(await a.cache.getString("lru-1"), "v1"); // a hit: lru-1 becomes most recently used
  assert.equal(await a.cache.getString(`lru-${CAPACITY + 1}`), `v${CAPACITY + 1}`);
  const copies = await Promise.all(Array.from({ length: CAPACITY + 1 }, (_, i) => a.cache.state(`lru-${i + 1}`)));
  const held = (i: number): boolean => copies[i - 1]!.copies.find((c) => c.node === "node_0")!.state === "S";
  assert.equal(held(2), false, "the least recently used copy was evicted");
  const stats = await a.cache.stats();
  assert.ok(stats.lines <= CAPACITY, `${stats.lines} copies on node_0, capacity ${CAPACITY}`);
  assert.ok(stats.evictions > 0);
  // Evicted is not lost: the value is in the partition's log and in Redis.
  await waitFor(async () => (await r.get(REDIS_KEY_PREFIX + "lru-2")) === "v2", "lru-2's write-back", bound);
  assert.equal(await actors[3]!.cache.getString("lru-2"), "v2");
});

test("cache - a node SIGKILLed while holding copies: the others keep serving, acknowledged writes survive, no stale read, it rejoins", { timeout: 90_000 }, async () => {
  const survivors = actors.filter((a) => a.node !== 2);
  const victims = actors.filter((a) => a.node === 2);
  for (let i = 0; i < 15; i++) await step(actors);
  for (const k of HOT_KEYS) for (const a of victims) await doOp(a, "read", k);
  const held = (await Promise.all(HOT_KEYS.map((k) => actors[0]!.cache.state(k)))).filter((s) => s.copies.some((c) => c.node === "node_2" && c.state === "S"));
  assert.ok(held.length > 0, "node_2 holds copies before it is killed");
  // The last acknowledged value of each key, written through the survivors.
  const lastWritten = new Map<string, string>();
  for (const k of HOT_KEYS) {
    const op = await doOp(survivors[0]!, "write", k);
    assert.ok(op.ok);
    lastWritten.set(k, op.value!);
  }
  await cluster.nodes[2]!.kill("SIGKILL");
  // Acknowledged writes survive the kill of any one node, whichever partitions it led.
  for (const [k, v] of lastWritten) {
    let got: string | null = null;
    await waitFor(async () => (got = await survivors[1]!.cache.getString(k).catch(() => "(error)")) !== "(error)", `${k} to be readable`, 20_000);
    assert.equal(got, v, `${k} after node_2's kill`);
  }

  const afterKill: Op[] = [];
  for (let i = 0; i < 30; i++) {
    afterKill.push(...(await step(survivors)));
    await checkCoherence(survivors[i % survivors.length]!.cache, HOT_KEYS);
  }
  const last = afterKill.slice(-survivors.length * 10);
  assert.ok(last.filter((o) => o.ok).length >= last.length * 0.9, `the cluster keeps serving: ${JSON.stringify(last.filter((o) => !o.ok))}`);

  await cluster.nodes[2]!.start();
  for (const a of victims) await waitFor(async () => (await doOp(a, "read", HOT_KEYS[0]!)).ok, `${a.name} to serve again`, 20_000);
  for (let i = 0; i < 15; i++) {
    await step(actors);
    await checkCoherence(actors[i % actors.length]!.cache, HOT_KEYS);
  }
  const { reads } = checkHistory(history);
  assert.ok(reads > 100, `checked ${reads} reads`);
});

test("cache - a write waits out the lease of a holder it cannot reach (a paused node), and the holder never serves the old value after", { timeout: 90_000 }, async () => {
  const key = "paused-holder";
  const writer = actors.find((a) => a.node === 0 && a.name.startsWith("plain"))!;
  const paused = actors.find((a) => a.node === 2 && a.name.startsWith("plain"))!;
  await waitFor(async () => (await doOp(paused, "read", HOT_KEYS[0]!)).ok, `${paused.name} to serve`, 20_000);
  await writer.cache.set(key, "before");
  assert.equal(await paused.cache.getString(key), "before");
  const s = await writer.cache.state(key);
  assert.equal(s.copies.find((c) => c.node === "node_2")?.state, "S", "node_2 holds a copy");
  await cluster.nodes[2]!.kill("SIGSTOP");
  try {
    const t0 = performance.now();
    // node_2 cannot confirm the invalidation: the write completes once its lease has run out
    // (about 1 s; longer when node_2 led the key's partition and a new home must be elected).
    await waitFor(async () => (await doOp(writer, "write", key)).ok, "the write to complete", 30_000);
    const tookMs = performance.now() - t0;
    assert.ok(tookMs >= 500, `the write waited for the unreachable copy's lease (${tookMs.toFixed(0)} ms)`);
  } finally {
    await cluster.nodes[2]!.kill("SIGCONT");
  }
  const written = history.filter((o) => o.key === key && o.kind === "write" && o.ok).at(-1)!.value;
  await waitFor(async () => (await doOp(paused, "read", key)).ok, `${paused.name} to serve again`, 20_000);
  assert.equal(await paused.cache.getString(key), written, "the resumed node does not serve its old copy");
  checkHistory(history);
});
