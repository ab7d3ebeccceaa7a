/**
 * Lock benchmark: dsync's lock service vs etcd 3.4's, both 3 members on loopback, fsync on.
 *
 * Workload: acquire + release cycles (exclusive), closed loop, C = 1, 16, 64 simulated clients,
 * each with its own session / lease, in two shapes:
 *   - uncontended: every client locks its own resource;
 *   - contended:   all clients lock one resource (queued hand-off).
 * Peers, interleaved per cell (shape × C) in the same run, each cell with fresh resource names:
 *   - dsync:        LockClient.acquire(waitMs -1) + release; one LockClient (session) per client,
 *                   one DsyncClient (TCP connection) per 16 clients.
 *   - etcd v3lock:  etcd's server-side Lock service (`v3lockpb.Lock`, what `etcdctl lock` uses) over
 *                   gRPC: Lock(name, lease) then Unlock(key); one lease per client (TTL 10 s, kept
 *                   alive by the `etcd3` client), one gRPC channel per 16 clients, round robin over
 *                   the 3 members (as etcd's Go client balances over its endpoints).
 *   - etcd3 npm:    the `etcd3` client's `lock(name).acquire()` / `release()` as users meet it: a
 *                   try-lock (grant lease, one create-if-absent txn, revoke). When the try fails the
 *                   client retries after a small random backoff until it gets the lock (bounded by
 *                   the end of the cell); the failed tries are counted and shown.
 *
 *   npm run bench:lock                         # 10 s per cell, 2 s warm-up, all peers
 *   npm run bench:lock -- --quick              # 3 s per cell, 0.5 s warm-up
 *   npm run bench:lock -- --seconds 30 --json out.json
 *   npm run bench:lock -- --peers dsync,v3lock --shapes contended --concurrency 16
 *
 * See /work/shared/BENCHMARKS.md for the fairness rules followed here.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { makeCerts } from "../scripts/lib/certs.ts";
import { parseArgs } from "node:util";
import { Etcd3, EtcdLockFailedError, type Lease } from "etcd3";
import { DsyncClient } from "../src/client/client.ts";
import { LockClient, type Lock } from "../src/client/locks.ts";
import { SYSTEM_WARMUP_CONCURRENCY, describeError, runClosedLoop, systemWarmupSeconds, warmUpSystem, type CellResult } from "./lib/closed-loop.ts";
import { DsyncCluster } from "./lib/dsync-cluster.ts";
import { V3LockChannel } from "./lib/etcd-lock.ts";
import { ETCD_BIN, EtcdCluster, etcdVersion } from "./lib/etcd-cluster.ts";
import { concurrencyList, ensureEtcd, gitRev, positive } from "./lib/run-info.ts";
import { installCleanupHandlers, interruptSignal, onInterrupt, sleep } from "./lib/proc.ts";
import { fmtInt, fmtMs, fmtPct, fmtRatio, markdownTable } from "./lib/table.ts";

const PEER_NAMES = ["dsync", "dsync-tls", "v3lock", "etcd3"] as const;
type PeerName = (typeof PEER_NAMES)[number];
const SHAPES = ["uncontended", "contended"] as const;
type Shape = (typeof SHAPES)[number];

/** Session / lease TTL of every simulated client, all peers. */
const TTL_SECONDS = 10;
/** Per-RPC deadline for etcd calls (a queued v3lock Lock included). */
const ETCD_RPC_TIMEOUT_MS = 30_000;
/** etcd3 npm try-lock: random backoff between failed tries. */
const RETRY_BACKOFF_MIN_MS = 2;
const RETRY_BACKOFF_MAX_MS = 20;

// ---- options ------------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string" },
    warmup: { type: "string" },
    "system-warmup": { type: "string" },
    quick: { type: "boolean", default: false },
    peers: { type: "string", default: "dsync,v3lock,etcd3" },
    tls: { type: "boolean", default: false },
    shapes: { type: "string", default: SHAPES.join(",") },
    concurrency: { type: "string", default: "1,16,64" },
    "max-ops": { type: "string" },
    "per-client": { type: "string" },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write(`Usage: npm run bench:lock -- [options]

  --seconds N         measured seconds per cell (default 10; 3 with --quick)
  --warmup S          warm-up seconds per cell (default 2; 0.5 with --quick)
  --system-warmup S   unrecorded seconds of uncontended cycles at C=16 on each peer before its first cell (default 10; 2 with --quick)
  --quick             shorter run: 3 s per cell, 0.5 s warm-up
  --peers LIST        dsync,v3lock,etcd3 (default), and dsync-tls
                        dsync-tls = a second dsync cluster with TLS on every port (mutual TLS between nodes)
  --tls               add dsync-tls to the peers and report dsync-tls ÷ dsync per cell
                        v3lock = etcd's server-side Lock service, one lease per client
                        etcd3  = the etcd3 npm client's lock() (try-lock, retried with backoff)
  --shapes LIST       uncontended,contended (default both)
  --concurrency LIST  simulated lock clients (default 1,16,64)
  --per-client N      lock clients sharing one connection / channel (default 16)
  --max-ops N         absolute cap on cycles per cell, warm-up included (default 100k × cell seconds)
  --json FILE         also write the raw figures as JSON
Env: ETCD_BIN (default /usr/bin/etcd); CI=true makes a missing etcd an error.
`);
  process.exit(0);
}


const seconds = positive("seconds", args.seconds, args.quick ? 3 : 10);
const warmupSeconds = positive("warmup", args.warmup, args.quick ? 0.5 : 2);
const systemWarmup = systemWarmupSeconds(args["system-warmup"], args.quick);
const concurrencies = concurrencyList(args.concurrency);
const PER_CONNECTION = Math.floor(positive("per-client", args["per-client"], 16));
const maxOps = Math.floor(positive("max-ops", args["max-ops"], 100_000 * (seconds + warmupSeconds)));
const listArg = <T extends string>(flag: string, raw: string, all: readonly T[]): T[] => {
  const req = raw.split(",").map((p) => p.trim()).filter(Boolean);
  for (const p of req) if (!all.includes(p as T)) throw new Error(`--${flag}: unknown ${JSON.stringify(p)} (${all.join(", ")})`);
  const out = all.filter((p) => req.includes(p));
  if (out.length === 0) throw new Error(`--${flag} selects nothing`);
  return out;
};
let peers = listArg("peers", args.tls && !args.peers.includes("dsync-tls") ? `${args.peers},dsync-tls` : args.peers, PEER_NAMES);
const shapes = listArg("shapes", args.shapes, SHAPES);
const usesEtcd = (): boolean => peers.some((p) => p === "v3lock" || p === "etcd3");

const notes: string[] = [];
if (usesEtcd() && !ensureEtcd("bench:lock")) {
  notes.push(`etcd missing at ${ETCD_BIN}: dsync only, no ratios`);
  peers = peers.filter((p) => p === "dsync" || p === "dsync-tls");
  if (peers.length === 0) process.exit(2);
}

// ---- per-cell bookkeeping ----------------------------------------------------------------------

/** Counters one cell's cycle functions update; `inWindow` says whether now is inside the measured window. */
class CellStats {
  /** etcd3 npm: failed try-lock attempts inside the measured window. */
  failedTries = 0;
  /** etcd3 npm: failed tries over the whole cell (warm-up and drain included). */
  failedTriesTotal = 0;
  /** etcd3 npm: cycles given up at the end of the cell without ever getting the lock. */
  abandoned = 0;
  /** Safety check: a client got the lock while another client of this process still held it. */
  overlaps = 0;
  /** Fencing tokens (dsync) that did not increase on a resource. */
  tokenRegressions = 0;
  readonly #inside = new Map<string, number>();
  readonly #lastToken = new Map<string, number>();
  windowStart = Number.POSITIVE_INFINITY;
  windowEnd = Number.POSITIVE_INFINITY;
  /** After this the etcd3 npm retry loop gives up (past the window: never recorded as a cycle). */
  giveUpAt = Number.POSITIVE_INFINITY;

  inWindow(): boolean {
    const now = performance.now();
    return now >= this.windowStart && now <= this.windowEnd;
  }

  enter(resource: string, token?: number): void {
    const n = (this.#inside.get(resource) ?? 0) + 1;
    this.#inside.set(resource, n);
    if (n > 1) this.overlaps++;
    if (token !== undefined) {
      const last = this.#lastToken.get(resource);
      if (last !== undefined && token <= last) this.tokenRegressions++;
      this.#lastToken.set(resource, token);
    }
  }

  leave(resource: string): void {
    this.#inside.set(resource, (this.#inside.get(resource) ?? 1) - 1);
  }
}

// ---- peers -------------------------------------------------------------------------------------

interface OpenCell {
  /** One acquire + release cycle of simulated client `p`. */
  cycle(p: number): Promise<void>;
  close(): Promise<void>;
}

interface Peer {
  readonly name: PeerName;
  readonly pids: readonly number[];
  /** Opens `c` simulated lock clients (sessions / leases / connections set up and warmed before the clock starts). */
  open(c: number, resourceOf: (p: number) => string, cellTag: string, stats: CellStats): Promise<OpenCell>;
}

const groups = (c: number): number => Math.ceil(c / PER_CONNECTION);
const groupOf = (p: number): number => Math.floor(p / PER_CONNECTION);

/** Resolves with `p`, or rejects after `ms` (so a close never hangs the run). */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

function dsyncPeer(cluster: DsyncCluster, name: "dsync" | "dsync-tls" = "dsync", tls?: { ca: Buffer }): Peer {
  return {
    name,
    pids: cluster.pids,
    async open(c, resourceOf, cellTag, stats) {
      const conns = Array.from({ length: groups(c) }, (_, g) => new DsyncClient({ nodes: cluster.clientAddrs, clientName: `bench-lock-${cellTag}-${g}`, ...(tls && { tls }) }));
      const locks: LockClient[] = [];
      const close = async (): Promise<void> => {
        await Promise.allSettled(locks.map((l) => bounded(l.close(), 5000, "LockClient.close")));
        await Promise.allSettled(conns.map((cn) => bounded(cn.close(), 5000, "DsyncClient.close")));
      };
      try {
        // Each LockClient adds a "push" and a "connect" listener to its connection: 16 per
        // connection trips Node's default limit of 10 (a warning only, not a leak).
        for (const cn of conns) cn.setMaxListeners(PER_CONNECTION + 10);
        await Promise.all(conns.map((cn) => cn.ready()));
        for (let p = 0; p < c; p++) locks.push(new LockClient(conns[groupOf(p)]!, { sessionTtlMs: TTL_SECONDS * 1000, clientId: `bench-${cellTag}-${p}` }));
        // Open each session (and warm the path) with one cycle on a private resource.
        await Promise.all(
          locks.map(async (l, p) => {
            const lk = await l.acquire(`bench/warm/${cellTag}/${p}`, { mode: "exclusive", waitMs: -1 });
            await l.release(lk);
          }),
        );
      } catch (err) {
        await close();
        throw err;
      }
      return {
        async cycle(p) {
          const resource = resourceOf(p);
          const l: Lock = await locks[p]!.acquire(resource, { mode: "exclusive", waitMs: -1 });
          stats.enter(resource, l.token);
          stats.leave(resource);
          await locks[p]!.release(l);
        },
        close,
      };
    },
  };
}

function v3lockPeer(cluster: EtcdCluster): Peer {
  return {
    name: "v3lock",
    pids: cluster.pids,
    async open(c, resourceOf, cellTag, stats) {
      const n = groups(c);
      const etcds = Array.from({ length: n }, () => new Etcd3({ hosts: cluster.hosts, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 10_000 }) }));
      const channels = Array.from({ length: n }, () => new V3LockChannel(cluster.hosts));
      const leases: Lease[] = [];
      const close = async (): Promise<void> => {
        await Promise.allSettled(leases.map((l) => bounded(l.revoke(), 10_000, "lease revoke")));
        channels.forEach((ch) => ch.close());
        etcds.forEach((e) => e.close());
      };
      const ids: string[] = [];
      try {
        await Promise.all(channels.map((ch) => ch.ready()));
        for (let p = 0; p < c; p++) leases.push(etcds[groupOf(p)]!.lease(TTL_SECONDS));
        ids.push(...(await Promise.all(leases.map((l) => l.grant()))));
        await Promise.all(
          ids.map(async (id, p) => {
            const key = await channels[groupOf(p)]!.lock(`bench/v3lock/warm/${cellTag}/${p}`, id, ETCD_RPC_TIMEOUT_MS);
            await channels[groupOf(p)]!.unlock(key, ETCD_RPC_TIMEOUT_MS);
          }),
        );
      } catch (err) {
        await close();
        throw err;
      }
      return {
        async cycle(p) {
          const resource = resourceOf(p);
          const ch = channels[groupOf(p)]!;
          const key = await ch.lock(resource, ids[p]!, ETCD_RPC_TIMEOUT_MS);
          stats.enter(resource);
          stats.leave(resource);
          await ch.unlock(key, ETCD_RPC_TIMEOUT_MS);
        },
        close,
      };
    },
  };
}

function etcd3Peer(cluster: EtcdCluster): Peer {
  return {
    name: "etcd3",
    pids: cluster.pids,
    async open(c, resourceOf, cellTag, stats) {
      const etcds = Array.from({ length: groups(c) }, () => new Etcd3({ hosts: cluster.hosts, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 10_000 }) }));
      const close = async (): Promise<void> => etcds.forEach((e) => e.close());
      try {
        // Connect (and warm the gRPC channels) with one lock cycle per simulated client.
        await Promise.all(
          Array.from({ length: c }, async (_, p) => {
            const l = etcds[groupOf(p)]!.lock(`bench/etcd3/warm/${cellTag}/${p}`).ttl(TTL_SECONDS);
            await l.acquire();
            await l.release();
          }),
        );
      } catch (err) {
        await close();
        throw err;
      }
      return {
        async cycle(p) {
          const resource = resourceOf(p);
          const etcd = etcds[groupOf(p)]!;
          for (let attempt = 0; ; attempt++) {
            const l = etcd.lock(resource).ttl(TTL_SECONDS);
            try {
              await l.acquire();
            } catch (err) {
              if (!(err instanceof EtcdLockFailedError)) throw err;
              stats.failedTriesTotal++;
              if (stats.inWindow()) stats.failedTries++;
              if (performance.now() >= stats.giveUpAt || interruptSignal.aborted || attempt >= 100_000) {
                stats.abandoned++;
                return; // past the measured window: not recorded as a cycle
              }
              await sleep(RETRY_BACKOFF_MIN_MS + Math.random() * (RETRY_BACKOFF_MAX_MS - RETRY_BACKOFF_MIN_MS));
              continue;
            }
            stats.enter(resource);
            stats.leave(resource);
            await l.release();
            return;
          }
        },
        close,
      };
    },
  };
}

// ---- run ---------------------------------------------------------------------------------------


installCleanupHandlers();

const meta = {
  date: new Date().toISOString(),
  node: process.version,
  etcd: usesEtcd() ? etcdVersion() : null,
  dsyncRev: gitRev(),
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? "unknown",
  loadavgStart: os.loadavg().map((l) => Number(l.toFixed(2))),
  loadavgEnd: [] as number[],
  seconds,
  warmupSeconds,
  systemWarmup,
  maxOps,
  members: 3,
  ttlSeconds: TTL_SECONDS,
  fsync: "on for all peers (etcd always fsyncs its WAL; dsync FSYNC=true)",
  clientsPerConnection: PER_CONNECTION,
  etcd3RetryBackoffMs: [RETRY_BACKOFF_MIN_MS, RETRY_BACKOFF_MAX_MS],
  notes,
};

process.stdout.write(
  `# lock bench: exclusive acquire + release cycles, 3 members on 127.0.0.1, fsync on\n\n` +
    `${meta.date} · node ${meta.node} · ${meta.cpus}× ${meta.cpuModel} · load ${meta.loadavgStart.join(" ")} · dsync ${meta.dsyncRev}` +
    `${meta.etcd ? ` · ${meta.etcd}` : ""}\n` +
    `closed loop, ${seconds} s per cell after ${warmupSeconds} s warm-up (each peer first ran ${systemWarmup} s of uncontended cycles at C=${SYSTEM_WARMUP_CONCURRENCY}, unrecorded), C = ${concurrencies.join(", ")} clients, shapes: ${shapes.join(", ")}; ` +
    `peers interleaved per cell (order rotated cell to cell), fresh resource names per cell\n` +
    `each client: own session / lease (TTL ${TTL_SECONDS} s); one connection / gRPC channel per ${PER_CONNECTION} clients\n` +
    `fsync: on for all peers (etcd always fsyncs its WAL; dsync nodes started with FSYNC=true)\n\n`,
);

interface PeerCell {
  readonly shape: Shape;
  readonly result: CellResult;
  readonly failedTries: number;
  readonly failedTriesTotal: number;
  readonly abandoned: number;
  readonly overlaps: number;
  readonly tokenRegressions: number;
  readonly loadavg1: number;
}

const started = new Map<PeerName, Peer>();
const destroyers: (() => Promise<void>)[] = [];
const results: Record<PeerName, PeerCell[]> = { dsync: [], "dsync-tls": [], v3lock: [], etcd3: [] };
const failed = new Map<PeerName, string>();
const errorsSeen: Record<PeerName, string[]> = { dsync: [], "dsync-tls": [], v3lock: [], etcd3: [] };
let openCloser: (() => Promise<void>) | null = null;

const stopAll = async (): Promise<void> => {
  await openCloser?.().catch(() => {});
  await Promise.allSettled(destroyers.map((d) => d()));
  destroyers.length = 0;
  started.clear();
};
onInterrupt(stopAll);

try {
  if (peers.includes("dsync") && !interruptSignal.aborted) {
    const t0 = performance.now();
    try {
      const cluster = await DsyncCluster.start(3);
      destroyers.push(() => cluster.destroy());
      started.set("dsync", dsyncPeer(cluster));
      process.stderr.write(`started dsync (pids ${cluster.pids.join(", ")}) in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${await cluster.settleLeaders()}\n`);
    } catch (err) {
      failed.set("dsync", `cluster did not start: ${(err as Error).message}`);
      process.stderr.write(`dsync: cluster did not start: ${(err as Error).message}\n`);
    }
  }
  if (peers.includes("dsync-tls") && !interruptSignal.aborted) {
    const t0 = performance.now();
    try {
      const certDir = mkdtempSync(path.join(os.tmpdir(), "dsync-bench-certs-"));
      destroyers.push(async () => rmSync(certDir, { recursive: true, force: true }));
      const certs = makeCerts(certDir, { nodes: ["node_0", "node_1", "node_2"] });
      const perNode = (i: number): Record<string, string> => ({ TLS_CERT: certs.node(`node_${i}`).cert, TLS_KEY: certs.node(`node_${i}`).key });
      const cluster = await DsyncCluster.start(3, { TLS_CA: certs.ca }, 30_000, perNode);
      destroyers.push(() => cluster.destroy());
      started.set("dsync-tls", dsyncPeer(cluster, "dsync-tls", { ca: readFileSync(certs.ca) }));
      process.stderr.write(`started dsync-tls (pids ${cluster.pids.join(", ")}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    } catch (err) {
      failed.set("dsync-tls", `cluster did not start: ${(err as Error).message}`);
      process.stderr.write(`dsync-tls: cluster did not start: ${(err as Error).message}\n`);
    }
  }
  if (usesEtcd() && !interruptSignal.aborted) {
    // One fresh etcd cluster serves both etcd peers (distinct key prefixes).
    const t0 = performance.now();
    try {
      const cluster = await EtcdCluster.start(3);
      destroyers.push(() => cluster.destroy());
      if (peers.includes("v3lock")) started.set("v3lock", v3lockPeer(cluster));
      if (peers.includes("etcd3")) started.set("etcd3", etcd3Peer(cluster));
      process.stderr.write(`started etcd (pids ${cluster.pids.join(", ")}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    } catch (err) {
      for (const p of peers) if (p !== "dsync") failed.set(p, `etcd cluster did not start: ${(err as Error).message}`);
      process.stderr.write(`etcd: cluster did not start: ${(err as Error).message}\n`);
    }
  }

  for (const name of peers) {
    const peer = started.get(name);
    if (!peer || failed.has(name) || systemWarmup === 0 || interruptSignal.aborted) continue;
    process.stderr.write(`${name}: ${systemWarmup} s warm-up at C=${SYSTEM_WARMUP_CONCURRENCY}\n`);
    const tag = `warm-${name}`;
    try {
      const stats = new CellStats();
      stats.giveUpAt = performance.now() + (systemWarmup + 30) * 1000;
      const cell = await peer.open(SYSTEM_WARMUP_CONCURRENCY, (p) => `bench/${tag}/${p}`, tag, stats);
      openCloser = cell.close;
      await warmUpSystem(systemWarmup, (p) => cell.cycle(p), interruptSignal);
      await cell.close();
      openCloser = null;
      if (stats.overlaps || stats.tokenRegressions) errorsSeen[name].push(`warm-up: SAFETY: ${stats.overlaps} overlapping holders, ${stats.tokenRegressions} non-increasing tokens`);
    } catch (err) {
      const msg = `warm-up: ${describeError(err)}`;
      failed.set(name, msg);
      errorsSeen[name].push(msg);
    }
  }

  let cellNo = 0;
  for (const shape of shapes) {
    for (const c of concurrencies) {
      const order = peers.map((_, i) => peers[(i + cellNo) % peers.length]!);
      for (const name of order) {
        if (interruptSignal.aborted) break;
        const peer = started.get(name);
        if (!peer || failed.has(name)) continue;
        const cellTag = `${cellNo}-${name}`;
        const prefix = name === "dsync" ? "bench/dsync" : `bench/${name}`;
        const resourceOf = shape === "contended" ? () => `${prefix}/c/${cellTag}` : (p: number) => `${prefix}/u/${cellTag}/${p}`;
        const stats = new CellStats();
        let cell: OpenCell;
        try {
          cell = await peer.open(c, resourceOf, cellTag, stats);
        } catch (err) {
          const msg = `${shape} C=${c}: clients could not start: ${describeError(err)}`;
          failed.set(name, msg);
          errorsSeen[name].push(msg);
          process.stderr.write(`${name} ${msg}\n`);
          continue;
        }
        openCloser = cell.close;
        process.stderr.write(`${name} ${shape} C=${c} … `);
        const t0 = performance.now();
        stats.windowStart = t0 + warmupSeconds * 1000;
        stats.windowEnd = stats.windowStart + seconds * 1000;
        stats.giveUpAt = stats.windowEnd + 1000;
        const r = await runClosedLoop(
          { concurrency: c, warmupMs: warmupSeconds * 1000, durationMs: seconds * 1000, maxOps, maxErrors: 50, serverPids: peer.pids, signal: interruptSignal },
          (p) => cell.cycle(p),
        );
        stats.windowEnd = Math.min(stats.windowEnd, performance.now());
        await cell.close().catch((err) => errorsSeen[name].push(`${shape} C=${c}: close: ${describeError(err)}`));
        openCloser = null;
        const pc: PeerCell = {
          shape,
          result: r,
          failedTries: stats.failedTries,
          failedTriesTotal: stats.failedTriesTotal,
          abandoned: stats.abandoned,
          overlaps: stats.overlaps,
          tokenRegressions: stats.tokenRegressions,
          loadavg1: Number(os.loadavg()[0]!.toFixed(2)),
        };
        results[name].push(pc);
        if (r.firstError) errorsSeen[name].push(`${shape} C=${c}: ${r.errors} error(s), first: ${r.firstError}`);
        if (r.stuck) errorsSeen[name].push(`${shape} C=${c}: ${r.stuck} cycle(s) still unfinished 15 s after the window`);
        if (stats.overlaps || stats.tokenRegressions) errorsSeen[name].push(`${shape} C=${c}: SAFETY: ${stats.overlaps} overlapping holders, ${stats.tokenRegressions} non-increasing tokens`);
        process.stderr.write(
          `${fmtInt(r.opsPerSec)} cycles/s, p99 ${fmtMs(r.latency.p99Ms)} ms, client CPU ${fmtPct(r.clientCpuPct)}` +
            `${name === "etcd3" ? `, ${fmtInt((stats.failedTries / r.windowMs) * 1000)} failed tries/s` : ""}` +
            `${r.errors ? `, ${r.errors} errors (first: ${r.firstError})` : ""}${r.stuck ? `, ${r.stuck} stuck` : ""}${r.endedBy !== "duration" ? `, ended by ${r.endedBy}` : ""}\n`,
        );
        if (r.endedBy === "errors") failed.set(name, `${shape} C=${c}: aborted after ${r.errors} errors; first: ${r.firstError}`);
      }
      cellNo++;
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

const lat = (r: CellResult, ms: number): string => (r.latency.count > 0 ? fmtMs(ms) : "–");
const header = (name: PeerName): string[] => [
  "shape",
  "C",
  "cycles/s",
  "p50 ms",
  "p99 ms",
  "p999 ms",
  "max ms",
  ...(name === "etcd3" ? ["failed tries/s", "gave up"] : []),
  "client CPU",
  "server CPU (3 procs)",
  "errors",
  "overlaps",
  "load 1m",
];
const row = (name: PeerName, x: PeerCell): string[] => {
  const r = x.result;
  return [
    x.shape,
    String(r.concurrency),
    fmtInt(r.opsPerSec),
    lat(r, r.latency.p50Ms),
    lat(r, r.latency.p99Ms),
    lat(r, r.latency.p999Ms),
    lat(r, r.latency.maxMs),
    ...(name === "etcd3" ? [fmtInt((x.failedTries / r.windowMs) * 1000), String(x.abandoned)] : []),
    fmtPct(r.clientCpuPct),
    fmtPct(r.serverCpuPct),
    (r.errors ? `${r.errors}${r.endedBy === "errors" ? " (aborted)" : ""}` : r.endedBy === "op-cap" ? "0 (op cap)" : "0") + (r.stuck ? `, ${r.stuck} stuck` : ""),
    String(x.overlaps + x.tokenRegressions),
    x.loadavg1.toFixed(2),
  ];
};

const etcdName = meta.etcd?.replace(/^etcd Version: /, "etcd ") ?? "etcd";
const labels: Record<PeerName, string> = {
  dsync: "dsync lock service (LockClient: acquire waitMs -1 + release; one session per client)",
  "dsync-tls": "dsync lock service over TLS 1.3 (client and peer ports; mutual TLS between nodes), same clients",
  v3lock: `${etcdName} lock service (v3lockpb.Lock: Lock + Unlock over gRPC; one lease per client, round robin over the members)`,
  etcd3: `${etcdName} via the etcd3 npm client's lock() (try-lock: lease grant + txn + revoke; retried after ${RETRY_BACKOFF_MIN_MS}–${RETRY_BACKOFF_MAX_MS} ms when taken)`,
};
let out = "";
for (const name of peers) {
  out += `## ${labels[name]}\n\n`;
  out += results[name].length ? markdownTable(header(name), results[name].map((x) => row(name, x))) + "\n" : "(no results)\n";
  if (failed.has(name)) out += `\n**${name} failed:** ${failed.get(name)}\n`;
  out += "\n";
}
out +=
  "cycles/s and latencies count completed acquire + release cycles inside the window; latency is one whole cycle (for etcd3: from the first try to the release, retries included). " +
  "\"overlaps\" = a client of this process got the lock while another still held it, or (dsync) a fencing token that did not increase: must be 0. " +
  (peers.includes("etcd3") ? "\"gave up\" = etcd3 clients still retrying when the cell ended (not counted as cycles). " : "") +
  "\n\n";

interface Ratio {
  shape: Shape;
  concurrency: number;
  vsV3lock: { cycles: number; p99: number } | null;
  vsEtcd3: { cycles: number; p99: number } | null;
}
const ratios: Ratio[] = [];
if (peers.includes("dsync") && peers.length > 1) {
  const usable = (x: PeerCell | undefined): x is PeerCell => !!x && x.result.endedBy !== "errors" && x.result.opsPerSec > 0;
  for (const d of results.dsync) {
    if (!usable(d)) continue;
    const find = (n: PeerName): PeerCell | undefined => results[n].find((x) => x.shape === d.shape && x.result.concurrency === d.result.concurrency);
    const vs = (e: PeerCell | undefined): Ratio["vsV3lock"] =>
      usable(e) ? { cycles: d.result.opsPerSec / e.result.opsPerSec, p99: d.result.latency.p99Ms / e.result.latency.p99Ms } : null;
    ratios.push({ shape: d.shape, concurrency: d.result.concurrency, vsV3lock: vs(find("v3lock")), vsEtcd3: vs(find("etcd3")) });
  }
  const hasV3 = peers.includes("v3lock");
  const hasE3 = peers.includes("etcd3");
  out += `## dsync ÷ etcd (target: ≥ 3× etcd lock service cycles/s and ≤ 0.5× its p99)\n\n`;
  const meets = (r: Ratio["vsV3lock"]): string => (r ? (r.cycles >= 3 && r.p99 <= 0.5 ? "yes" : "no") : "–");
  out += ratios.length
    ? markdownTable(
        [
          "shape",
          "C",
          ...(hasV3 ? ["cycles/s ÷ v3lock (higher is better)", "p99 ÷ v3lock (lower is better)", "target met"] : []),
          ...(hasE3 ? ["cycles/s ÷ etcd3 npm", "p99 ÷ etcd3 npm"] : []),
        ],
        ratios.map((r) => [
          r.shape,
          String(r.concurrency),
          ...(hasV3 ? [fmtRatio(r.vsV3lock?.cycles ?? Number.NaN), fmtRatio(r.vsV3lock?.p99 ?? Number.NaN), meets(r.vsV3lock)] : []),
          ...(hasE3 ? [fmtRatio(r.vsEtcd3?.cycles ?? Number.NaN), fmtRatio(r.vsEtcd3?.p99 ?? Number.NaN)] : []),
        ]),
      ) + "\n"
    : "(no comparable cells)\n";
  out += "\n";
}
if (peers.includes("dsync") && peers.includes("dsync-tls")) {
  const rows: string[][] = [];
  for (const d of results.dsync) {
    const t = results["dsync-tls"].find((x) => x.shape === d.shape && x.result.concurrency === d.result.concurrency);
    if (!t || d.result.opsPerSec <= 0) continue;
    rows.push([d.shape, String(d.result.concurrency), fmtRatio(t.result.opsPerSec / d.result.opsPerSec), fmtRatio(t.result.latency.p99Ms / d.result.latency.p99Ms)]);
  }
  out += `## TLS cost: dsync-tls ÷ dsync (target: cycles/s ≥ 0.8× at C=16 and 64)\n\n`;
  out += rows.length ? markdownTable(["shape", "C", "cycles/s ÷ plain", "p99 ÷ plain"], rows) + "\n\n" : "(no comparable cells)\n\n";
}
const problems = peers.filter((n) => errorsSeen[n].length > 0);
if (problems.length) {
  out += `## errors\n\n`;
  for (const n of problems) for (const e of errorsSeen[n]) out += `- ${n}: ${e}\n`;
  out += "\n";
}
out += `fsync on for all peers · load average ${meta.loadavgStart.join(" ")} → ${meta.loadavgEnd.join(" ")} (figures are noisy on a shared machine; compare ratios within one run)\n`;
process.stdout.write(out);

if (args.json) {
  writeFileSync(args.json, JSON.stringify({ meta: { ...meta, failed: Object.fromEntries(failed), errors: errorsSeen }, results, ratios }, null, 2) + "\n");
  process.stdout.write(`raw figures written to ${args.json}\n`);
}

process.exit(failed.size > 0 ? 1 : 0);
