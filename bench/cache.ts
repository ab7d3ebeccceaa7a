/**
 * Cache benchmark: dsync's distributed cache vs Redis GET/SET through ioredis, same machine,
 * same run. dsync: 3 dsyncd on loopback (fsync on), backed by a private redis-server; Redis: that
 * same redis-server (appendfsync everysec, the usual setting for a cache) used directly. dsync runs
 * with CACHE_WRITE_POLICY=write-back by default (`--policy write-through` for the durable default):
 * a set is acknowledged from the home's memory and reaches the log within CACHE_WRITE_BACK_MS, set
 * here to 1000 ms (`--write-back-ms`): the same promise as Redis's everysec, where a crash may lose
 * the last second of acknowledged writes. (The daemon's own default is 100 ms.)
 *
 * Workloads, closed loop, C = 1, 16, 64 clients (one TCP connection per 16 clients, spread over
 * the three nodes for dsync):
 *   - get-hit:   random reads of 1,000 preloaded 100-byte keys the connected node holds (leased
 *                copies, renewed while in use);
 *   - get-miss:  reads of keys no node holds and the store lacks (a fresh key per read);
 *   - set:       100-byte writes, each client to its own 100 keys (at the key's home; with
 *                write-through each is a commit in the key's partition, with write-back a batch
 *                of them is);
 *   - set-shared: 100-byte writes to 100 keys shared by every client on every node (each write
 *                also drops copies on other nodes: the coherence cost);
 *   - near-hit:  dsync only: get-hit through the client library's near-cache (the loop yields to
 *                the event loop every 64 reads, which the latencies include).
 * Redis runs GET (present keys), GET (absent keys) and SET.
 *
 *   npm run bench:cache                  # 3 s per cell, 1 s warm-up, after 5 s for the cluster to settle
 *   npm run bench:cache -- --quick       # 1 s per cell, 0.3 s warm-up
 *   npm run bench:cache -- --seconds 10 --concurrency 1,16 --json out.json
 *   npm run bench:cache -- --policy write-through   # sets committed (and in Redis) before they return
 *   npm run bench:cache -- --workloads set,set-shared  # only these cells (and their Redis peers)
 *
 * See /work/shared/BENCHMARKS.md for the fairness rules followed here.
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { startRedis } from "../scripts/lib/redis-server.ts";
import { CacheClient } from "../src/client/cache.ts";
import { DsyncClient } from "../src/client/client.ts";
import { REDIS_KEY_PREFIX } from "../src/services/cache/store.ts";
import { SYSTEM_WARMUP_CONCURRENCY, runClosedLoop, systemWarmupSeconds, warmUpSystem, type CellResult } from "./lib/closed-loop.ts";
import { DsyncCluster } from "./lib/dsync-cluster.ts";
import { installCleanupHandlers, interruptSignal, onInterrupt } from "./lib/proc.ts";
import { concurrencyList, gitRev, positive } from "./lib/run-info.ts";
import { fmtInt, fmtMs, fmtPct, fmtRatio, markdownTable } from "./lib/table.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string" },
    warmup: { type: "string" },
    "system-warmup": { type: "string" },
    quick: { type: "boolean", default: false },
    concurrency: { type: "string", default: "1,16,64" },
    json: { type: "string" },
    policy: { type: "string", default: "write-back" },
    workloads: { type: "string" },
    "write-back-ms": { type: "string", default: "1000" },
    settle: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  process.stdout.write(`Usage: npm run bench:cache -- [--seconds N] [--warmup S] [--system-warmup S] [--quick] [--concurrency 1,16,64] [--policy write-back|write-through] [--write-back-ms 1000] [--workloads get-hit,set,...] [--settle S] [--json file]\n`);
  process.exit(0);
}
const seconds = positive("seconds", args.seconds, args.quick ? 1 : 3);
const warmupSeconds = positive("warmup", args.warmup, args.quick ? 0.3 : 1);
const systemWarmup = systemWarmupSeconds(args["system-warmup"], args.quick);
const concurrencies = concurrencyList(args.concurrency);
const settleSeconds = args.settle === undefined ? 5 : Number(args.settle);
if (!(settleSeconds >= 0)) throw new Error(`--settle must be ≥ 0 seconds, got ${args.settle}`);
const KEYS = 1000;
const VALUE = new Uint8Array(100).fill(120);
const PER_CONNECTION = 16;

type Workload = "get-hit" | "get-miss" | "set" | "set-shared" | "near-hit";
const ALL_WORKLOADS: Workload[] = ["get-hit", "get-miss", "set", "set-shared", "near-hit"];
const chosen = args.workloads === undefined ? ALL_WORKLOADS : args.workloads.split(",").map((w) => w.trim());
for (const w of chosen) if (!(ALL_WORKLOADS as string[]).includes(w)) throw new Error(`--workloads: unknown workload ${w} (known: ${ALL_WORKLOADS.join(", ")})`);
const DSYNC_WORKLOADS = ALL_WORKLOADS.filter((w) => chosen.includes(w));
const REDIS_WORKLOADS = (["get-hit", "get-miss", "set"] as Workload[]).filter((w) => chosen.includes(w) || (w === "set" && chosen.includes("set-shared")) || (w === "get-hit" && chosen.includes("near-hit")));

interface Row {
  readonly peer: "dsync" | "redis";
  readonly workload: Workload;
  readonly result: CellResult;
}

installCleanupHandlers();
const redis = await startRedis({ appendfsync: "everysec" });
onInterrupt(() => redis.stop());
if (args.policy !== "write-back" && args.policy !== "write-through") throw new Error(`--policy must be write-back or write-through, got ${args.policy}`);
const writeBackMs = positive("write-back-ms", args["write-back-ms"], 1000);
const cluster = await DsyncCluster.start(3, { REDIS_URL: redis.url, CACHE_CAPACITY: "1000000", CACHE_CAPACITY_BYTES: String(1024 * 1024 * 1024), CACHE_WRITE_POLICY: args.policy, CACHE_WRITE_BACK_MS: String(writeBackMs) });
onInterrupt(() => cluster.destroy());
// A fresh cluster moves partition leaders to their preferred nodes in its first seconds, and each
// new home waits out its election fence: measuring then would time the start, not the cache.
process.stderr.write(`${await cluster.settleLeaders()}\n`);
await new Promise((r) => setTimeout(r, settleSeconds * 1000));
await warmUp();
const rows: Row[] = [];
let run = 0;

try {
  process.stderr.write(`bench:cache ${gitRev()} — ${seconds} s per cell (${warmupSeconds} s warm-up; each system first ran ${systemWarmup} s at C=${SYSTEM_WARMUP_CONCURRENCY}, unrecorded), C = ${concurrencies.join(", ")}; redis ${redis.version}\n`);
  for (const c of concurrencies) {
    // Interleaved per concurrency, so machine noise spreads over both peers.
    for (const w of DSYNC_WORKLOADS) rows.push({ peer: "dsync", workload: w, result: await dsyncCell(w, c) });
    for (const w of REDIS_WORKLOADS) rows.push({ peer: "redis", workload: w, result: await redisCell(w, c) });
    if (interruptSignal.aborted) break;
  }
} finally {
  await cluster.destroy();
  await redis.stop();
}

const cell = (peer: Row["peer"], w: Workload, c: number): CellResult | undefined => rows.find((r) => r.peer === peer && r.workload === w && r.result.concurrency === c)?.result;
const fmtCell = (r: CellResult | undefined): string => (r ? `${fmtInt(r.opsPerSec)} (${fmtMs(r.latency.p50Ms)} / ${fmtMs(r.latency.p99Ms)})${r.errors > 0 ? ` ${r.errors} err` : ""}` : "–");
const header = ["workload", ...concurrencies.map((c) => `C=${c} ops/s (p50 / p99 ms)`)];
const dsyncTable = markdownTable(header, DSYNC_WORKLOADS.map((w) => [w, ...concurrencies.map((c) => fmtCell(cell("dsync", w, c)))]));
const redisTable = markdownTable(header, REDIS_WORKLOADS.map((w) => [w, ...concurrencies.map((c) => fmtCell(cell("redis", w, c)))]));
const ratioRows: string[][] = [
  ["get-hit / Redis GET", "get-hit", "get-hit"],
  ["near-hit / Redis GET", "near-hit", "get-hit"],
  ["get-miss / Redis GET (absent)", "get-miss", "get-miss"],
  ["set / Redis SET", "set", "set"],
  ["set-shared / Redis SET", "set-shared", "set"],
].map(([label, d, r]) => [label!, ...concurrencies.map((c) => fmtRatio((cell("dsync", d as Workload, c)?.opsPerSec ?? NaN) / (cell("redis", r as Workload, c)?.opsPerSec ?? NaN)))]);
// CPU per operation: at C=1 an operation's steps run one after another, so these add up to its latency's floor.
const perOpUs = (pct: number, r: CellResult): string => (r.opsPerSec > 0 ? ((pct / 100) * 1e6 / r.opsPerSec).toFixed(1) : "–");
const cpuRows = rows.map((r) => [`${r.peer} ${r.workload}`, `C=${r.result.concurrency}`, fmtPct(r.result.clientCpuPct), fmtPct(r.result.serverCpuPct), perOpUs(r.result.clientCpuPct, r.result), perOpUs(r.result.serverCpuPct, r.result)]);

process.stdout.write(`\n## dsync cache (3 nodes, fsync on, Redis backing store, CACHE_WRITE_POLICY=${args.policy}${args.policy === "write-back" ? `, CACHE_WRITE_BACK_MS=${writeBackMs}` : ""})\n\n${dsyncTable}\n\n## Redis ${redis.version} through ioredis (appendfsync everysec)\n\n${redisTable}\n\n## dsync ops/s ÷ Redis ops/s\n\n${markdownTable(["", ...concurrencies.map((c) => `C=${c}`)], ratioRows)}\n\n`);
process.stdout.write(`${markdownTable(["cell", "C", "client CPU", "server CPU", "client µs/op", "server µs/op"], cpuRows)}\n\nserver: dsync's three nodes (not counting its Redis backing store), or the redis-server.\n${os.cpus().length} CPUs, ${os.loadavg()[0]!.toFixed(2)} load; one run on a shared machine: read the ratios.\n`);
if (args.json) writeFileSync(args.json, JSON.stringify({ rev: gitRev(), seconds, warmupSeconds, rows }, null, 2));

/**
 * Sets and gets at C=16 for `--system-warmup` seconds before the first cell, through every dsync
 * node and then straight to Redis (see warmUpSystem: the daemons' hot paths, and the clients'
 * own JavaScript, are compiled under load before anything is timed).
 */
async function warmUp(): Promise<void> {
  const conns = cluster.clientAddrs.map((a) => new DsyncClient({ nodes: [a], preferLeader: false, requestTimeoutMs: 10_000 }));
  const caches = conns.map((conn) => new CacheClient(conn));
  try {
    await warmUpSystem(systemWarmup, (p, seq) => {
      const cache = caches[p % caches.length]!;
      return seq % 2 === 0 ? cache.set(`warm-${p}-${seq % 50}`, VALUE) : cache.get(`warm-${p}-${(seq - 1) % 50}`);
    });
  } finally {
    for (const conn of conns) await conn.close();
  }
  const r = new Redis(redis.url);
  const value = Buffer.from(VALUE);
  try {
    await warmUpSystem(systemWarmup, (p, seq) => (seq % 2 === 0 ? r.set(`${REDIS_KEY_PREFIX}warm-${p}-${seq % 50}`, value) : r.getBuffer(`${REDIS_KEY_PREFIX}warm-${p}-${(seq - 1) % 50}`)));
  } finally {
    r.disconnect();
  }
}

/** One dsync cell: `c` clients over ceil(c/16) connections, spread over the nodes. */
async function dsyncCell(w: Workload, c: number): Promise<CellResult> {
  const prefix = `r${++run}`;
  const conns = Array.from({ length: Math.ceil(c / PER_CONNECTION) }, (_, i) => new DsyncClient({ nodes: [cluster.clientAddrs[i % 3]!], preferLeader: false, requestTimeoutMs: 10_000 }));
  const caches = conns.map((conn) => new CacheClient(conn, { nearCache: w === "near-hit", nearCapacity: KEYS * 2 }));
  const cacheOf = (p: number): CacheClient => caches[Math.floor(p / PER_CONNECTION)]!;
  try {
    if (w === "get-hit" || w === "near-hit") {
      // Preload through one node, then read every key once through each connection so its node (and near-cache) holds it.
      for (let k = 0; k < KEYS; k++) await caches[0]!.set(`${prefix}-${k}`, VALUE);
      for (const cc of caches) for (let k = 0; k < KEYS; k++) await cc.get(`${prefix}-${k}`);
    }
    const keys = Array.from({ length: KEYS }, (_, k) => `${prefix}-${k}`);
    // Not async, and keys built once: the harness's own cost stays out of the measured op (the same for Redis).
    return await runClosedLoop(loopOptions(c), (p, seq) => {
      const cache = cacheOf(p);
      switch (w) {
        case "get-hit":
          return cache.get(keys[(p * 7919 + seq) % KEYS]!);
        case "near-hit":
          // A near-cache hit does no I/O: yield now and then so the harness's timers can run.
          if (seq % 64 === 63) return new Promise((r) => setImmediate(r)).then(() => cache.get(keys[(p * 7919 + seq) % KEYS]!));
          return cache.get(keys[(p * 7919 + seq) % KEYS]!);
        case "get-miss":
          return cache.get(`${prefix}-miss-${p}-${seq}`);
        case "set":
          return cache.set(`${prefix}-own-${p}-${seq % 100}`, VALUE);
        case "set-shared":
          return cache.set(`${prefix}-shared-${(p * 31 + seq) % 100}`, VALUE);
      }
    });
  } finally {
    for (const conn of conns) await conn.close();
  }
}

async function redisCell(w: Workload, c: number): Promise<CellResult> {
  const prefix = `${REDIS_KEY_PREFIX}peer${++run}`;
  const conns = Array.from({ length: Math.ceil(c / PER_CONNECTION) }, () => new Redis(redis.url));
  const value = Buffer.from(VALUE);
  try {
    if (w === "get-hit") for (let k = 0; k < KEYS; k++) await conns[0]!.set(`${prefix}-${k}`, value);
    const keys = Array.from({ length: KEYS }, (_, k) => `${prefix}-${k}`);
    return await runClosedLoop(loopOptions(c, [redis.pid]), (p, seq) => {
      const r = conns[Math.floor(p / PER_CONNECTION)]!;
      switch (w) {
        case "get-hit":
          return r.getBuffer(keys[(p * 7919 + seq) % KEYS]!);
        case "get-miss":
          return r.getBuffer(`${prefix}-miss-${p}-${seq}`);
        default:
          return r.set(`${prefix}-own-${p}-${seq % 100}`, value);
      }
    });
  } finally {
    for (const r of conns) r.disconnect();
  }
}

/** `serverPids`: whose CPU the cell reports as the server's (the three nodes by default). */
function loopOptions(c: number, serverPids: readonly number[] = cluster.pids) {
  return {
    concurrency: c,
    warmupMs: warmupSeconds * 1000,
    durationMs: seconds * 1000,
    maxOps: Math.floor(2_000_000 * (seconds + warmupSeconds)),
    maxErrors: 100,
    serverPids,
    signal: interruptSignal,
  };
}
