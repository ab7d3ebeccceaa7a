/**
 * Replicated-write benchmark: dsync vs etcd 3.4, both 3 members on loopback, fsync on.
 *
 * Workload: `put` of a 100-byte value, closed loop, C = 1, 16, 64 proposers (each an async loop
 * issuing one put after another), warm-up then a fixed measured window per cell. Peers are
 * interleaved per C (etcd C=1, dsync C=1, etcd C=16, …) so machine noise hits both alike.
 *
 *   npm run bench:raft                         # 10 s per cell, 2 s warm-up, etcd + dsync
 *   npm run bench:raft -- --quick              # 2 s per cell, 0.5 s warm-up (smoke run)
 *   npm run bench:raft -- --seconds 30 --json out.json
 *   npm run bench:raft -- --peers dsync --dsync-op ping   # harness check without KV_PUT
 *
 * See /work/shared/BENCHMARKS.md for the fairness rules followed here.
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { Etcd3 } from "etcd3";
import { Op } from "../protocol/index.ts";
import { DsyncClient } from "../src/client/client.ts";
import { SYSTEM_WARMUP_CONCURRENCY, runClosedLoop, systemWarmupSeconds, warmUpSystem, type CellResult } from "./lib/closed-loop.ts";
import { DsyncCluster } from "./lib/dsync-cluster.ts";
import { ETCD_BIN, EtcdCluster, etcdVersion } from "./lib/etcd-cluster.ts";
import { concurrencyList, ensureEtcd, gitRev, positive } from "./lib/run-info.ts";
import { installCleanupHandlers, interruptSignal, onInterrupt } from "./lib/proc.ts";
import { fmtInt, fmtMs, fmtPct, fmtRatio, markdownTable } from "./lib/table.ts";

type PeerName = "etcd" | "dsync";
const VALUE_BYTES = 100;

// ---- options ------------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string" },
    warmup: { type: "string" },
    "system-warmup": { type: "string" },
    quick: { type: "boolean", default: false },
    peers: { type: "string", default: "etcd,dsync" },
    "dsync-op": { type: "string", default: "put" },
    concurrency: { type: "string", default: "1,16,64" },
    "max-ops": { type: "string" },
    "per-client": { type: "string" },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write(`Usage: npm run bench:raft -- [options]

  --seconds N         measured seconds per cell (default 10; 2 with --quick)
  --warmup S          warm-up seconds per cell (default 2; 0.5 with --quick)
  --system-warmup S   unrecorded seconds at C=16 on each system before its first cell (default 10; 2 with --quick)
  --quick             smoke run: 2 s per cell, 0.5 s warm-up
  --peers LIST        etcd,dsync (default both)
  --dsync-op OP       put (Op.KV_PUT, default) or ping (Op.PING: not replicated, harness check only)
  --concurrency LIST  proposer counts (default 1,16,64)
  --per-client N      proposers sharing one client instance (default 16: C=64 uses 4 clients)
  --max-ops N         absolute cap on ops per cell, warm-up included (default 200k × cell seconds)
  --json FILE         also write the raw figures as JSON
Env: ETCD_BIN (default /usr/bin/etcd); CI=true makes a missing etcd an error.
`);
  process.exit(0);
}


const seconds = positive("seconds", args.seconds, args.quick ? 2 : 10);
const warmupSeconds = positive("warmup", args.warmup, args.quick ? 0.5 : 2);
const systemWarmup = systemWarmupSeconds(args["system-warmup"], args.quick);
const concurrencies = concurrencyList(args.concurrency);
const PROPOSERS_PER_CLIENT = Math.floor(positive("per-client", args["per-client"], 16));
const maxOps = Math.floor(positive("max-ops", args["max-ops"], 200_000 * (seconds + warmupSeconds)));
const dsyncOpName = args["dsync-op"];
if (dsyncOpName !== "put" && dsyncOpName !== "ping") throw new Error(`--dsync-op must be put or ping, got ${JSON.stringify(dsyncOpName)}`);
const requested = args.peers.split(",").map((p) => p.trim()).filter(Boolean);
for (const p of requested) if (p !== "etcd" && p !== "dsync") throw new Error(`--peers: unknown peer ${JSON.stringify(p)} (etcd, dsync)`);
let peers = (["etcd", "dsync"] as const).filter((p) => requested.includes(p));
if (peers.length === 0) throw new Error("--peers selects nothing");

const notes: string[] = [];
if (peers.includes("etcd") && !ensureEtcd("bench:raft")) {
  notes.push(`etcd missing at ${ETCD_BIN}: dsync only, no ratios`);
  peers = peers.filter((p) => p !== "etcd");
  if (peers.length === 0) process.exit(2);
}

// ---- peers -------------------------------------------------------------------------------------

/** One peer under test: a started cluster, and per cell a set of client connections. */
interface Peer {
  readonly name: PeerName;
  readonly pids: number[];
  /** Opens `n` client instances and returns the op for proposer p, plus a closer. */
  openClients(n: number): Promise<{ op: (p: number) => Promise<unknown>; close: () => Promise<void> }>;
  destroy(): Promise<void>;
}

const value = new Uint8Array(VALUE_BYTES);
for (let i = 0; i < VALUE_BYTES; i++) value[i] = 32 + ((i * 7919) % 95);
const valueBuf = Buffer.from(value);
const key = (p: number): string => `bench/p${p}`;

async function startEtcd(): Promise<Peer> {
  const cluster = await EtcdCluster.start(3);
  return {
    name: "etcd",
    pids: cluster.pids,
    async openClients(n) {
      const clients = Array.from(
        { length: n },
        () => new Etcd3({ hosts: cluster.hosts, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 10_000 }) }),
      );
      // Connect (and warm the gRPC channels) before the clock starts.
      await Promise.all(clients.map((c, i) => c.put(`bench/connect/${i}`).value("x")));
      return {
        op: (p) => clients[Math.floor(p / PROPOSERS_PER_CLIENT)]!.put(key(p)).value(valueBuf).exec(),
        close: async () => clients.forEach((c) => c.close()),
      };
    },
    destroy: () => cluster.destroy(),
  };
}

async function startDsync(): Promise<Peer> {
  const cluster = await DsyncCluster.start(3);
  // Measure the steady state: a fresh cluster hands partition leaders over for a few seconds.
  process.stderr.write(`${await cluster.settleLeaders()}\n`);
  const op = dsyncOpName === "put" ? Op.KV_PUT : Op.PING;
  return {
    name: "dsync",
    pids: cluster.pids,
    async openClients(n) {
      const clients = Array.from({ length: n }, (_, i) => new DsyncClient({ nodes: cluster.clientAddrs, clientName: `bench-${i}` }));
      await Promise.all(clients.map((c) => c.ready()));
      return {
        op: (p) => clients[Math.floor(p / PROPOSERS_PER_CLIENT)]!.call(op, op === Op.KV_PUT ? { key: key(p), value } : {}),
        close: async () => {
          await Promise.all(clients.map((c) => c.close()));
        },
      };
    },
    destroy: () => cluster.destroy(),
  };
}

// ---- run ---------------------------------------------------------------------------------------


installCleanupHandlers();

const meta = {
  date: new Date().toISOString(),
  node: process.version,
  etcd: peers.includes("etcd") ? etcdVersion() : null,
  dsyncRev: gitRev(),
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? "unknown",
  loadavgStart: os.loadavg().map((l) => Number(l.toFixed(2))),
  loadavgEnd: [] as number[],
  seconds,
  warmupSeconds,
  systemWarmup,
  maxOps,
  valueBytes: VALUE_BYTES,
  members: 3,
  fsync: "on (etcd always fsyncs its WAL; dsync FSYNC=true)",
  dsyncOp: dsyncOpName,
  proposersPerClient: PROPOSERS_PER_CLIENT,
  notes,
};

process.stdout.write(
  `# raft bench: replicated put, ${VALUE_BYTES} B value, 3 members on 127.0.0.1, fsync on\n\n` +
    `${meta.date} · node ${meta.node} · ${meta.cpus}× ${meta.cpuModel} · load ${meta.loadavgStart.join(" ")} · dsync ${meta.dsyncRev}` +
    `${meta.etcd ? ` · ${meta.etcd}` : ""}\n` +
    `closed loop, ${seconds} s per cell after ${warmupSeconds} s warm-up (each system first ran ${systemWarmup} s at C=${SYSTEM_WARMUP_CONCURRENCY}, unrecorded), C = ${concurrencies.join(", ")}; one client instance per ${PROPOSERS_PER_CLIENT} proposers; peers interleaved per C\n` +
    `fsync: on (etcd always fsyncs its WAL; dsync nodes started with FSYNC=true)\n` +
    (dsyncOpName === "ping" ? `NOTE: --dsync-op ping: dsync runs PING (answered by one node, not replicated, no fsync): NOT comparable to etcd put.\n` : "") +
    "\n",
);

const started = new Map<PeerName, Peer>();
const results: Record<PeerName, CellResult[]> = { etcd: [], dsync: [] };
const failed = new Map<PeerName, string>();
let openCloser: (() => Promise<void>) | null = null;

const stopAll = async (): Promise<void> => {
  await openCloser?.().catch(() => {});
  await Promise.allSettled([...started.values()].map((p) => p.destroy()));
  started.clear();
};
onInterrupt(stopAll);

try {
  for (const name of peers) {
    if (interruptSignal.aborted) break;
    const t0 = performance.now();
    try {
      const peer = name === "etcd" ? await startEtcd() : await startDsync();
      started.set(name, peer);
      process.stderr.write(`started ${name} (pids ${peer.pids.join(", ")}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    } catch (err) {
      failed.set(name, `cluster did not start: ${(err as Error).message}`);
      process.stderr.write(`${name}: cluster did not start: ${(err as Error).message}\n`);
    }
  }

  for (const name of peers) {
    const peer = started.get(name);
    if (!peer || systemWarmup === 0 || interruptSignal.aborted) continue;
    process.stderr.write(`${name}: ${systemWarmup} s warm-up at C=${SYSTEM_WARMUP_CONCURRENCY}\n`);
    const clients = await peer.openClients(Math.ceil(SYSTEM_WARMUP_CONCURRENCY / PROPOSERS_PER_CLIENT));
    openCloser = clients.close;
    await warmUpSystem(systemWarmup, (p) => clients.op(p), interruptSignal);
    await clients.close();
    openCloser = null;
  }

  for (const c of concurrencies) {
    for (const name of peers) {
      if (interruptSignal.aborted) break;
      const peer = started.get(name);
      if (!peer || failed.has(name)) continue;
      const nClients = Math.ceil(c / PROPOSERS_PER_CLIENT);
      let clients: Awaited<ReturnType<Peer["openClients"]>>;
      try {
        clients = await peer.openClients(nClients);
      } catch (err) {
        failed.set(name, `C=${c}: clients could not connect: ${(err as Error).message}`);
        process.stderr.write(`${name} C=${c}: clients could not connect: ${(err as Error).message}\n`);
        continue;
      }
      openCloser = clients.close;
      process.stderr.write(`${name} C=${c} (${nClients} client${nClients > 1 ? "s" : ""}) … `);
      const r = await runClosedLoop(
        { concurrency: c, warmupMs: warmupSeconds * 1000, durationMs: seconds * 1000, maxOps, maxErrors: 50, serverPids: peer.pids, signal: interruptSignal },
        (p) => clients.op(p),
      );
      await clients.close();
      openCloser = null;
      results[name].push(r);
      process.stderr.write(
        `${fmtInt(r.opsPerSec)} ops/s, p99 ${fmtMs(r.latency.p99Ms)} ms, client CPU ${fmtPct(r.clientCpuPct)}` +
          `${r.errors ? `, ${r.errors} errors (first: ${r.firstError})` : ""}${r.endedBy !== "duration" ? `, ended by ${r.endedBy}` : ""}\n`,
      );
      if (r.endedBy === "errors") {
        const hint = /UNKNOWN_TYPE/.test(r.firstError ?? "") && name === "dsync" ? " (KV_PUT not implemented on this build? try --dsync-op ping to check the harness)" : "";
        failed.set(name, `C=${c}: aborted after ${r.errors} errors; first: ${r.firstError}${hint}`);
      }
    }
  }
} finally {
  await stopAll();
}
// On SIGINT the cleanup handler exits the process; never print a partial report as if complete.
if (interruptSignal.aborted) {
  await new Promise((r) => setTimeout(r, 10_000));
  process.exit(130);
}
meta.loadavgEnd = os.loadavg().map((l) => Number(l.toFixed(2)));

// ---- report ------------------------------------------------------------------------------------

const header = ["C", "ops/s", "p50 ms", "p99 ms", "p999 ms", "max ms", "client CPU", "server CPU (3 procs)", "errors"];
const lat = (r: CellResult, ms: number): string => (r.latency.count > 0 ? fmtMs(ms) : "–");
const row = (r: CellResult): string[] => [
  String(r.concurrency),
  fmtInt(r.opsPerSec),
  lat(r, r.latency.p50Ms),
  lat(r, r.latency.p99Ms),
  lat(r, r.latency.p999Ms),
  lat(r, r.latency.maxMs),
  fmtPct(r.clientCpuPct),
  fmtPct(r.serverCpuPct),
  r.errors ? `${r.errors}${r.endedBy === "errors" ? " (aborted)" : ""}` : r.endedBy === "op-cap" ? "0 (op cap)" : "0",
];

const labels: Record<PeerName, string> = {
  etcd: `${meta.etcd?.replace(/^etcd Version: /, "etcd ") ?? "etcd"} put (etcd3 npm client, random member per request)`,
  dsync: dsyncOpName === "put" ? "dsync KV_PUT (DsyncClient, seeds = all nodes)" : "dsync PING (NOT replicated: harness check only)",
};
let out = "";
for (const name of peers) {
  out += `## ${labels[name]}\n\n`;
  out += results[name].length ? markdownTable(header, results[name].map(row)) + "\n" : "(no results)\n";
  if (failed.has(name)) out += `\n**${name} failed:** ${failed.get(name)}\n`;
  out += "\n";
}

const ratios: { concurrency: number; opsRatio: number; p99Ratio: number }[] = [];
if (peers.includes("etcd") && peers.includes("dsync")) {
  for (const d of results.dsync) {
    const e = results.etcd.find((x) => x.concurrency === d.concurrency);
    if (!e || d.endedBy === "errors" || e.endedBy === "errors") continue;
    ratios.push({ concurrency: d.concurrency, opsRatio: d.opsPerSec / e.opsPerSec, p99Ratio: d.latency.p99Ms / e.latency.p99Ms });
  }
  out += `## dsync ÷ etcd${dsyncOpName === "ping" ? " (dsync ran PING, not put: NOT a fair comparison)" : ""}\n\n`;
  out += ratios.length
    ? markdownTable(["C", "ops/s ratio (higher is better)", "p99 ratio (lower is better)"], ratios.map((r) => [String(r.concurrency), fmtRatio(r.opsRatio), fmtRatio(r.p99Ratio)])) + "\n"
    : "(no comparable cells)\n";
  out += "\n";
}
out += `load average ${meta.loadavgStart.join(" ")} → ${meta.loadavgEnd.join(" ")} (figures are noisy on a shared machine; compare ratios within one run)\n`;
process.stdout.write(out);

if (args.json) {
  writeFileSync(args.json, JSON.stringify({ meta: { ...meta, failed: Object.fromEntries(failed) }, results, ratios }, null, 2) + "\n");
  process.stdout.write(`raw figures written to ${args.json}\n`);
}

process.exit(failed.size > 0 ? 1 : 0);
