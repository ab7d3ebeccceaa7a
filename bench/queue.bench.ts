/**
 * Queue benchmark (issue #5): dsync's durable queue vs BullMQ on a local Redis, end to end
 * (enqueue → consume → ack).
 *
 * Workload: P producers, each a closed loop that enqueues one small message carrying its send
 * time and awaits the enqueue's acknowledgement before the next; C = P consumers take messages
 * and ack each. Per cell: warm-up, then a measured window: end-to-end messages/s (acks confirmed
 * in the window), enqueue-to-delivery latency p50/p99 (send time → consumer code, one clock), the
 * producers' enqueue p99, client and server CPU. Systems, interleaved per C (order rotated):
 *   - dsync:           3 nodes on loopback, fsync on; consumers `QueueClient.subscribe` with a prefetch.
 *   - dsync-poll:      same cluster; consumers long-poll `consume` (max = prefetch) + one batched `ack`.
 *   - bullmq-always:   BullMQ `Queue.add` + one `Worker` (concurrency C), redis-server appendfsync always.
 *   - bullmq-everysec: the same on a second redis-server with appendfsync everysec.
 * Each cell uses a queue of its own; servers are started fresh for the run and stopped by PID.
 * When consumers are slower than producers the queue grows through the cell and the delivery
 * latency with it; the report flags such rows ("consumers fell behind"), and `--loop acked`
 * (each producer also waits for its message's ack) gives steady-state latencies instead.
 *
 *   npm run bench:queue                        # 8 s per cell, 2 s warm-up, C = 1, 16, 64
 *   npm run bench:queue -- --quick             # 2 s per cell, 0.5 s warm-up (sanity run)
 *   npm run bench:queue -- --loop acked        # at most C messages in flight
 *   npm run bench:queue -- --systems dsync,bullmq-always --concurrency 16 --json out.json
 *
 * See /work/shared/BENCHMARKS.md for the fairness rules followed here.
 */
import { parseArgs } from "node:util";
import { hasRedisServer } from "../scripts/lib/redis-server.ts";
import { SYSTEM_WARMUP_CONCURRENCY, describeError, systemWarmupSeconds } from "./lib/closed-loop.ts";
import { CpuWindow } from "./lib/cpu.ts";
import { bullmqVersion, startBullmqPeer } from "./lib/bullmq-peer.ts";
import { DsyncCluster } from "./lib/dsync-cluster.ts";
import { dsyncQueuePeers } from "./lib/dsync-queue-peer.ts";
import { COMMON_OPTIONS, exitIfInterrupted, fsyncProbe, loadavg, machineLine, machineMeta, printReport } from "./lib/machine.ts";
import { installCleanupHandlers, interruptSignal, onInterrupt, sleep } from "./lib/proc.ts";
import { runQueueCell, type QueueCellResult, type QueuePeer } from "./lib/queue-workload.ts";
import { concurrencyList, positive } from "./lib/run-info.ts";
import { fmtInt, fmtMs, fmtPct, fmtRatio, markdownTable } from "./lib/table.ts";

const SYSTEMS = ["dsync", "dsync-poll", "bullmq-always", "bullmq-everysec"] as const;
type System = (typeof SYSTEMS)[number];
/** The peer every dsync row is divided by: durable against durable (BENCHMARKS.md). */
const BASELINE: System = "bullmq-always";
/** Issue #5's target, at these concurrencies: ≥ 2× BullMQ(always) msgs/s and ≤ 0.5× its p99. */
const TARGET_CONCURRENCIES = [16, 64];

// ---- options ------------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    ...COMMON_OPTIONS,
    duration: { type: "string" },
    "system-warmup": { type: "string" },
    systems: { type: "string", default: SYSTEMS.join(",") },
    loop: { type: "string", default: "enqueued" },
    prefetch: { type: "string" },
    "per-connection": { type: "string" },
    "payload-bytes": { type: "string" },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write(`Usage: npm run bench:queue -- [options]

  --duration N         measured seconds per cell (default 8; 2 with --quick)
  --warmup S           warm-up seconds per cell (default 2; 0.5 with --quick)
  --system-warmup S    unrecorded seconds at C=16 on each system before its first cell (default 10; 2 with --quick)
  --quick              sanity run: 2 s per cell, 0.5 s warm-up
  --systems LIST       ${SYSTEMS.join(",")} (default all)
  --concurrency LIST   producers = consumers per cell (default 1,16,64)
  --loop WHAT          what a producer awaits before its next message: enqueued (the enqueue's
                       acknowledgement; default) or acked (its message acked by a consumer)
  --prefetch N         dsync: subscribe prefetch / consume batch per consumer (default 32)
  --per-connection N   producers (and, separately, consumers) sharing one connection (default 8)
  --payload-bytes N    message size (default 64; the first 16 bytes carry the send stamp)
  --max-ops N          absolute cap on enqueues per cell, warm-up included (default 100k × cell seconds)
  --json FILE          also write the raw figures as JSON
`);
  process.exit(0);
}

const seconds = positive("duration", args.duration, args.quick ? 2 : 8);
const warmupSeconds = positive("warmup", args.warmup, args.quick ? 0.5 : 2);
const systemWarmup = systemWarmupSeconds(args["system-warmup"], args.quick);
const concurrencies = concurrencyList(args.concurrency);
const loop = args.loop;
if (loop !== "enqueued" && loop !== "acked") throw new Error(`--loop must be enqueued or acked, got ${JSON.stringify(loop)}`);
const prefetch = Math.floor(positive("prefetch", args.prefetch, 32));
const perConnection = Math.floor(positive("per-connection", args["per-connection"], 8));
const payloadBytes = Math.floor(positive("payload-bytes", args["payload-bytes"], 64));
const maxOps = Math.floor(positive("max-ops", args["max-ops"], 100_000 * (seconds + warmupSeconds)));
const requested = args.systems.split(",").map((s) => s.trim()).filter(Boolean);
for (const s of requested) if (!(SYSTEMS as readonly string[]).includes(s)) throw new Error(`--systems: unknown ${JSON.stringify(s)} (${SYSTEMS.join(", ")})`);
const systems = SYSTEMS.filter((s) => requested.includes(s));
if (systems.length === 0) throw new Error("--systems selects nothing");
const usesRedis = systems.some((s) => s.startsWith("bullmq"));
if (usesRedis && !hasRedisServer()) {
  process.stderr.write("bench:queue: redis-server not found: apt-get install -y redis-server (or run --systems dsync,dsync-poll)\n");
  process.exit(2);
}

// ---- run ---------------------------------------------------------------------------------------

installCleanupHandlers();

const meta = {
  ...machineMeta(),
  redis: null as string | null,
  bullmq: usesRedis ? bullmqVersion() : null,
  seconds,
  warmupSeconds,
  systemWarmup,
  loop,
  maxOps,
  prefetch,
  perConnection,
  payloadBytes,
  durability: {
    dsync: "3 nodes, fsync on (FSYNC=true)",
    "bullmq-always": "1 redis-server, appendonly yes, appendfsync always",
    "bullmq-everysec": "1 redis-server, appendonly yes, appendfsync everysec",
  },
  /** Per dsync cell: the queue's partition leader and the nodes the connections ended on. */
  dsyncPlacement: [] as string[],
  /** Server CPU (% of one core) of each system with no load, measured once after start. */
  idleServerCpuPct: {} as Partial<Record<System, number>>,
};

const peers = new Map<System, QueuePeer>();
const stoppers: (() => Promise<void>)[] = [];
const failed = new Map<System, string>();
const results: Record<System, QueueCellResult[]> = { dsync: [], "dsync-poll": [], "bullmq-always": [], "bullmq-everysec": [] };
const stopAll = async (): Promise<void> => {
  await Promise.allSettled(stoppers.splice(0).map((s) => s()));
};
onInterrupt(stopAll);

let dsyncPlacement = null as (() => string) | null;
const startSystems = async (): Promise<void> => {
  if (systems.some((s) => s.startsWith("dsync"))) {
    try {
      const cluster = await DsyncCluster.start(3);
      stoppers.push(() => cluster.destroy());
      const dsync = dsyncQueuePeers(cluster, { perConnection, prefetch, payloadBytes });
      dsyncPlacement = dsync.lastPlacement;
      if (systems.includes("dsync")) peers.set("dsync", dsync.subscribe);
      if (systems.includes("dsync-poll")) peers.set("dsync-poll", dsync.poll);
      process.stderr.write(`started dsync (pids ${cluster.pids.join(", ")}); ${await cluster.settleLeaders()}\n`);
    } catch (err) {
      for (const s of systems) if (s.startsWith("dsync")) failed.set(s, `cluster did not start: ${describeError(err)}`);
    }
  }
  for (const s of systems) {
    if (!s.startsWith("bullmq") || interruptSignal.aborted) continue;
    try {
      const peer = await startBullmqPeer(s === "bullmq-always" ? "always" : "everysec", perConnection, payloadBytes);
      stoppers.push(() => peer.stop());
      meta.redis = peer.redis.version;
      peers.set(s, peer);
      process.stderr.write(`started redis-server ${peer.redis.version} appendfsync ${peer.redis.appendfsync} (pid ${peer.pids.join(", ")})\n`);
    } catch (err) {
      failed.set(s, `redis-server did not start: ${describeError(err)}`);
    }
  }
};

try {
  await startSystems();
  // Idle servers still use CPU (Raft heartbeats, timers): measured so the server CPU column can be read.
  const idle = [...peers].map(([s, p]) => [s, new CpuWindow(p.pids)] as const);
  await sleep(1000);
  for (const [s, w] of idle) meta.idleServerCpuPct[s] = Math.round(w.read().serverPct);
  for (const [s, peer] of peers) {
    if (systemWarmup === 0 || interruptSignal.aborted) break;
    process.stderr.write(`${s}: ${systemWarmup} s warm-up at C=${SYSTEM_WARMUP_CONCURRENCY}\n`);
    try {
      await runQueueCell(peer, `warm-${s}`, { concurrency: SYSTEM_WARMUP_CONCURRENCY, warmupMs: 0, durationMs: systemWarmup * 1000, maxOps, maxErrors: 50, drainMs: 10_000, loop, signal: interruptSignal });
    } catch (err) {
      failed.set(s, `warm-up: ${describeError(err)}`);
    }
  }
  let cellNo = 0;
  for (const c of concurrencies) {
    // Rotate the order cell to cell so a noisy moment does not always hit the same system.
    const order = systems.map((_, i) => systems[(i + cellNo) % systems.length]!);
    for (const s of order) {
      const peer = peers.get(s);
      if (!peer || failed.has(s) || interruptSignal.aborted) continue;
      process.stderr.write(`${s} C=${c} … `);
      try {
        const r = await runQueueCell(peer, `${cellNo}-${s}`, {
          concurrency: c,
          warmupMs: warmupSeconds * 1000,
          durationMs: seconds * 1000,
          maxOps,
          maxErrors: 50,
          drainMs: 10_000,
          loop,
          signal: interruptSignal,
        });
        results[s].push(r);
        if (s.startsWith("dsync") && dsyncPlacement) meta.dsyncPlacement.push(`${s} C=${c}: ${dsyncPlacement()}`);
        process.stderr.write(`${fmtInt(r.msgsPerSec)} msgs/s, p99 ${fmtMs(r.delivery.p99Ms)} ms, client CPU ${fmtPct(r.producers.clientCpuPct)}${problems(r) ? `, ${problems(r)}` : ""}\n`);
        if (r.producers.endedBy === "errors") failed.set(s, `C=${c}: aborted after ${r.producers.errors} enqueue errors; first: ${r.producers.firstError}`);
      } catch (err) {
        failed.set(s, `C=${c}: ${describeError(err)}`);
        process.stderr.write(`failed: ${describeError(err)}\n`);
      }
    }
    cellNo++;
  }
} finally {
  await stopAll();
}
await exitIfInterrupted();
meta.loadavgEnd = loadavg();
meta.fsyncEnd = fsyncProbe();

// ---- report ------------------------------------------------------------------------------------

/**
 * Whether consumers fell behind the producers: each producer has at most one message on its way
 * and consumers a few in hand, so a backlog of many times C means the queue kept growing, and the
 * delivery latency then grows with the cell's length instead of being a steady-state figure.
 */
function isLagging(r: QueueCellResult): boolean {
  return r.backlogAtStop > 4 * r.concurrency;
}

/** Errors, duplicates, losses, lag and early ends of a cell, or "" when there were none. */
function problems(r: QueueCellResult): string {
  const p = r.producers;
  const out: string[] = [];
  if (isLagging(r)) out.push("consumers fell behind (latency not steady)");
  if (p.errors) out.push(`${p.errors} enqueue errors (first: ${p.firstError})`);
  if (r.consumerErrors) out.push(`${r.consumerErrors} consumer errors (first: ${r.firstConsumerError})`);
  if (r.duplicates) out.push(`${r.duplicates} redelivered`);
  if (r.missing) out.push(`${r.missing} never delivered`);
  if (r.leftover) out.push(`queue not empty at the end: ${r.leftover}`);
  if (p.stuck) out.push(`${p.stuck} enqueues stuck`);
  if (p.endedBy !== "duration") out.push(`ended by ${p.endedBy}`);
  return out.join("; ");
}

const labels: Record<System, string> = {
  dsync: `dsync ${meta.dsyncRev}, 3 nodes, fsync on: subscribe (prefetch ${prefetch}) per consumer`,
  "dsync-poll": `dsync ${meta.dsyncRev}, 3 nodes, fsync on: long-poll consume (max ${prefetch}) + batched ack per consumer`,
  "bullmq-always": `BullMQ ${meta.bullmq} on redis-server ${meta.redis}, appendfsync always`,
  "bullmq-everysec": `BullMQ ${meta.bullmq} on redis-server ${meta.redis}, appendfsync everysec`,
};
const lat = (count: number, ms: number): string => (count > 0 ? fmtMs(ms) : "–");

let out =
  `# queue bench: enqueue → consume → ack, closed-loop producers, C producers = C consumers\n\n` +
  machineLine(meta) +
  `${meta.redis ? ` · redis-server ${meta.redis}` : ""}${meta.bullmq ? ` · bullmq ${meta.bullmq}` : ""}\n` +
  `producers await ${loop === "acked" ? "their message's ack by a consumer (--loop acked)" : "the enqueue's acknowledgement (--loop enqueued)"} before the next message\n` +
  `${seconds} s per cell after ${warmupSeconds} s warm-up (each system first ran ${systemWarmup} s at C=${SYSTEM_WARMUP_CONCURRENCY}, unrecorded), C = ${concurrencies.join(", ")}, ${payloadBytes} B messages; systems interleaved per C (order rotated); ` +
  `one connection per ${perConnection} producers (and per ${perConnection} consumers for dsync); one BullMQ Worker per cell\n` +
  `durability: dsync fsync on (3 nodes); Redis appendonly with appendfsync always / everysec (1 node, unreplicated)\n` +
  "\n";
for (const s of systems) {
  out += `## ${labels[s]}\n\n`;
  out += results[s].length
    ? markdownTable(
        ["C", "msgs/s", "p50 ms", "p99 ms", "p999 ms", loop === "acked" ? "cycle p99 ms" : "enqueue p99 ms", "backlog at stop", "client CPU", "server CPU", "problems"],
        results[s].map((r) => [
          String(r.concurrency),
          fmtInt(r.msgsPerSec),
          lat(r.delivery.count, r.delivery.p50Ms),
          lat(r.delivery.count, r.delivery.p99Ms),
          lat(r.delivery.count, r.delivery.p999Ms),
          lat(r.producers.latency.count, r.producers.latency.p99Ms),
          fmtInt(r.backlogAtStop),
          fmtPct(r.producers.clientCpuPct),
          fmtPct(r.producers.serverCpuPct),
          problems(r) || "none",
        ]),
      ) + "\n"
    : "(no results)\n";
  if (failed.has(s)) out += `\n**${s} failed:** ${failed.get(s)}\n`;
  out += "\n";
}
out +=
  "msgs/s = acks confirmed inside the window per second (dsync subscribe: handlers returned, the subscription acks them); " +
  "p50/p99/p999 = enqueue call → message in consumer code, for deliveries inside the window; " +
  (loop === "acked" ? "cycle p99 = a producer's enqueue until its message was acked; " : "enqueue p99 = the producer's wait for the enqueue acknowledgement; ") +
  "backlog at stop = enqueued but not yet acked when the producers stopped (above 4 × C the consumers fell behind: compare with --loop acked); " +
  "client CPU = this one process (producers and consumers), % of one core; server CPU = sum over the server processes " +
  `(idle: ${Object.entries(meta.idleServerCpuPct).map(([s, v]) => `${s} ${fmtPct(v)}`).join(", ")}).\n\n`;

interface Ratio {
  readonly system: System;
  readonly concurrency: number;
  readonly msgs: number;
  readonly p99: number;
  /** Which of the two rows had consumers falling behind (its p99 then depends on the cell length). */
  readonly lagging: string[];
}
const ratios: Ratio[] = [];
for (const s of systems.filter((x) => x.startsWith("dsync"))) {
  for (const d of results[s]) {
    const b = results[BASELINE].find((x) => x.concurrency === d.concurrency);
    if (!b || b.msgsPerSec <= 0 || d.msgsPerSec <= 0) continue;
    const lagging = [...(isLagging(d) ? [s] : []), ...(isLagging(b) ? ["BullMQ"] : [])];
    ratios.push({ system: s, concurrency: d.concurrency, msgs: d.msgsPerSec / b.msgsPerSec, p99: d.delivery.p99Ms / b.delivery.p99Ms, lagging });
  }
}
if (ratios.length) {
  out += `## dsync ÷ BullMQ (appendfsync always) — target at C = ${TARGET_CONCURRENCIES.join(", ")}: msgs/s ≥ 2×, p99 ≤ 0.5×\n\n`;
  out += markdownTable(
    ["system", "C", "msgs/s ÷ BullMQ (higher is better)", "p99 ÷ BullMQ (lower is better)", "target met", "note"],
    ratios.map((r) => [
      r.system,
      String(r.concurrency),
      fmtRatio(r.msgs),
      fmtRatio(r.p99),
      TARGET_CONCURRENCIES.includes(r.concurrency) ? (r.msgs >= 2 && r.p99 <= 0.5 ? "yes" : "no") : "–",
      r.lagging.length ? `${r.lagging.join(" and ")} fell behind: p99 not steady` : "",
    ]),
  );
  out += "\n\n";
}
if (meta.dsyncPlacement.length) out += `dsync placement (each cell has its own queue):\n${meta.dsyncPlacement.map((p) => `- ${p}`).join("\n")}\n\n`;
printReport(out, meta, args.json, { meta: { ...meta, failed: Object.fromEntries(failed) }, results, ratios });
process.exit(failed.size > 0 ? 1 : 0);
