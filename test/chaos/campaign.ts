/**
 * One fault-campaign run: a real cluster, workloads, the nemesis, heal, settle, final reads,
 * checks, and a report. Used by `npm run chaos` and by the bounded run in the test suite.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Prng } from "../sim/prng.ts";
import { ChaosCluster } from "./cluster.ts";
import { Nemesis, type FaultKind } from "./nemesis.ts";
import { kvWorkload } from "./workloads/kv.ts";
import { backupWorkload } from "./workloads/backup.ts";
import { longestGapMs, setIdleGaps, sleep, type Workload, type WorkloadContext } from "./workloads/workload.ts";
import { lockWorkload } from "./workloads/locks.ts";
import { queueWorkload } from "./workloads/queue.ts";
import { RegisterWorkload } from "./workloads/register.ts";
import { cacheWorkload } from "./workloads/cache.ts";
import { waitFor } from "../helpers/daemon.ts";
import { diskFaultSupport } from "./disk.ts";
import { startRedis } from "../../scripts/lib/redis-server.ts";
import { makeCerts } from "../../scripts/lib/certs.ts";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { SignJWT } from "jose";
import { Op, type AdminRebalanceReply, type AdminShardsReply } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";

export const WORKLOADS = ["kv", "locks", "queue", "cache", "backup"] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export interface CampaignOptions {
  readonly workloads: readonly WorkloadName[];
  readonly seconds: number;
  readonly seed: number;
  readonly nodes: 3 | 5;
  readonly faults: readonly FaultKind[];
  /** Keep the run folder even when the run passed. */
  readonly keep: boolean;
  /** Run folder; default a new one under the system's temp folder. */
  readonly dir?: string;
  readonly log?: (line: string) => void;
  /** Fault order and timing; see NemesisOptions. */
  readonly order?: "random" | "cycle";
  readonly quietMs?: readonly [number, number];
  readonly faultMs?: readonly [number, number];
  /** The cache's backing store: the embedded default, or a private redis-server the run starts. */
  readonly cacheStore?: "embedded" | "redis";
  readonly cacheWritePolicy?: "write-back" | "write-through";
  /** TLS on every port (mutual TLS between nodes, through the link proxies), JWT roles for the clients. */
  readonly tls?: boolean;
  /** [periodMs, gapMs]: no client operation in the same gapMs of every periodMs (see setIdleGaps), so groups go quiet under faults too. */
  readonly idleGaps?: readonly [number, number];
}

export interface WorkloadResult {
  readonly name: string;
  readonly outcomes: Record<"ok" | "fail" | "unknown", number>;
  readonly ok: boolean;
  readonly violations: number;
  readonly lines: readonly string[];
  readonly longestGapMs: number;
}

export interface CampaignResult {
  readonly ok: boolean;
  readonly dir: string;
  readonly faults: Record<string, number>;
  readonly problems: readonly string[];
  readonly workloads: readonly WorkloadResult[];
  readonly report: string;
}

function build(name: WorkloadName): Workload {
  switch (name) {
    case "kv":
      return kvWorkload();
    case "locks":
      return lockWorkload();
    case "queue":
      return queueWorkload();
    case "cache":
      return cacheWorkload();
    case "backup":
      return backupWorkload();
  }
}

/**
 * A secured cluster: certificates from a private CA (peers use mutual TLS through the link
 * proxies, which pass the bytes through), a roles file, and a signed token for the workloads
 * whose role grants exactly the services they use.
 */
async function secureSetup(dir: string, nodes: number): Promise<{ env: Record<string, string>; nodeEnv: (id: string) => Record<string, string>; auth: { tls: { ca: Buffer }; token: string } }> {
  const ids = Array.from({ length: nodes }, (_, i) => `node_${i}`);
  const certs = makeCerts(path.join(dir, "certs"), { nodes: ids });
  const secret = randomBytes(48).toString("base64");
  await writeFile(path.join(dir, "certs", "jwt-secret"), secret);
  await writeFile(path.join(dir, "certs", "roles.json"), JSON.stringify({ roles: { workload: { allow: ["kv:*", "lock:*", "queue:*", "cache:*", "admin:backup", "admin:membership", "status"] } } }));
  const token = await new SignJWT({ roles: ["workload"] }).setProtectedHeader({ alg: "HS256" }).setSubject("chaos").setExpirationTime(Math.floor(Date.now() / 1000) + 24 * 3600).sign(new TextEncoder().encode(secret));
  return {
    env: { TLS_CA: certs.ca, AUTH_JWT_SECRET_FILE: path.join(dir, "certs", "jwt-secret"), AUTH_ROLES_FILE: path.join(dir, "certs", "roles.json") },
    nodeEnv: (id) => ({ TLS_CERT: certs.node(id).cert, TLS_KEY: certs.node(id).key, AUDIT_LOG: path.join(dir, `audit-${id}.log`) }),
    auth: { tls: { ca: readFileSync(certs.ca) }, token },
  };
}

/** Runs one campaign; never throws for a violation (see `ok`), only for a harness failure. */
export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const log = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const dir = o.dir ?? path.join(os.tmpdir(), `dsync-chaos-${new Date().toISOString().replace(/[:.]/g, "-")}-seed${o.seed}`);
  await mkdir(dir, { recursive: true });
  const rng = new Prng(o.seed);
  const disk = diskFaultSupport(o.faults.includes("disk"));
  const cacheSetup = o.workloads.includes("cache") ? `; cache store ${o.cacheStore ?? "embedded"}, ${o.cacheWritePolicy ?? "write-through"}` : "";
  const gaps = o.idleGaps ? `; idle ${o.idleGaps[1]} ms of every ${o.idleGaps[0]} ms` : "";
  log(`chaos: seed ${o.seed}, ${o.nodes} nodes, replication factor 3, ${o.seconds} s of faults (${o.faults.join(",") || "none"}), workloads ${o.workloads.join(",")}${cacheSetup}${gaps}${o.tls ? "; TLS and roles" : ""}; folder ${dir}`);
  const redis = o.cacheStore === "redis" ? await startRedis({ appendfsync: "always" }) : null;
  const secured = o.tls ? await secureSetup(dir, o.nodes) : null;
  const cluster = await ChaosCluster.create(o.nodes, dir, {
    ...secured?.env,
    // Small enough that snapshots and log compaction happen during a run.
    SNAPSHOT_THRESHOLD: "500",
    REPLICATION_FACTOR: "3",
    ...disk.clusterEnv,
    ...(redis && { REDIS_URL: redis.url }),
    ...(o.cacheWritePolicy && { CACHE_WRITE_POLICY: o.cacheWritePolicy }),
    ...(o.cacheWritePolicy === "write-back" && { CACHE_WRITE_BACK_MS: String(WRITE_BACK_MS) }),
  }, secured?.nodeEnv).catch(async (err: unknown) => {
    await redis?.stop();
    throw err;
  });
  const problems: string[] = [];
  const workloads = o.workloads.map(build);
  let adminClient: DsyncClient | null = null;
  let nemesis: Nemesis | null;
  try {
    await verifyFaultLayer(cluster);
    const ctx: WorkloadContext = { addrs: cluster.clientAddrs, rng: rng.fork(), dir, ...(secured && { auth: secured.auth }) };
    const admin = new DsyncClient({ nodes: cluster.clientAddrs, clientName: "chaos-admin", requestTimeoutMs: 5000, maxAttempts: 3, ...secured?.auth });
    adminClient = admin;
    setIdleGaps(o.idleGaps ?? null);
    for (const w of workloads) await w.start(ctx);
    const t0 = performance.now();
    const faultEnd = t0 + o.seconds * 1000;
    nemesis = new Nemesis(cluster, rng.fork(), {
      kinds: o.faults,
      log,
      targets: async () => (await Promise.all(workloads.map((w) => w.targets?.() ?? Promise.resolve([])))).flat(),
      ...disk.nemesis,
      move: (r) => startMove(admin, r),
      ...(o.order && { order: o.order }),
      ...(o.quietMs && { quietMs: o.quietMs }),
      ...(o.faultMs && { faultMs: o.faultMs }),
    });
    await nemesis.run(faultEnd, () => false);
    await nemesis.healAll();
    const healedAt = performance.now();
    log(`+${((healedAt - t0) / 1000).toFixed(1)}s healed; load goes on for 5 s`);
    // Recovery phase: the workloads keep running on a healed cluster.
    await sleep(5000);
    for (const w of workloads) await w.stop();
    setIdleGaps(null);
    const stoppedAt = performance.now();
    await settle(cluster);
    const stuck = await movesFinished(admin);
    if (stuck) problems.push(stuck);
    for (const w of workloads) await w.final(ctx);
    for (const e of nemesis.timeline) if (e.problem) problems.push(e.problem);
    for (const n of cluster.nodes) {
      const bad = n.exits.filter((x) => x.signal === null && x.code !== 0 && x.code !== null);
      for (const x of bad) if (!nemesis.timeline.some((e) => e.kind === "disk" && e.nodes.includes(n.spec.id))) problems.push(`${n.spec.id} exited with status ${x.code} without a disk fault`);
    }
    if (o.cacheWritePolicy === "write-back") {
      const cache = workloads.find((w): w is RegisterWorkload => w instanceof RegisterWorkload && w.name === "cache");
      if (cache) log(await allowWriteBackLosses(cache, cluster, nemesis));
    }
    const results: WorkloadResult[] = workloads.map((w) => {
      const c = w.check();
      return { name: w.name, outcomes: w.outcomes(), ok: c.ok, violations: c.violations, lines: c.lines, longestGapMs: longestGapMs(w.okTimes(), t0, stoppedAt).gapMs };
    });
    const ok = problems.length === 0 && results.every((r) => r.ok);
    const report = formatReport(o, nemesis, results, problems, ok, dir);
    for (const l of report.split("\n")) log(l);
    await writeFile(path.join(dir, "timeline.json"), JSON.stringify(nemesis.timeline, null, 1));
    for (const w of workloads) await writeFile(path.join(dir, `${w.name}.history.json`), JSON.stringify(w.history()));
    await writeFile(path.join(dir, "report.txt"), report + "\n");
    await writeFile(path.join(dir, "link-bytes.json"), JSON.stringify(cluster.linkBytes(), null, 1));
    return { ok, dir, faults: nemesis.counts(), problems, workloads: results, report };
  } finally {
    setIdleGaps(null);
    await adminClient?.close();
    for (const w of workloads) await w.close().catch(() => {});
    await cluster.destroy();
    await redis?.stop();
  }
}

/** The campaign's CACHE_WRITE_BACK_MS with write-back. */
const WRITE_BACK_MS = 100;
/**
 * How long before a crash an acknowledged write may still be out of the log: the window, plus a
 * batch's commit, which takes 5–30 ms on a quiet 2-core VM and several hundred ms under faults.
 */
const LOSS_BEFORE_MS = WRITE_BACK_MS + 500;
/** How long after a crash a node may still serve a copy of a lost write: a lease (1 s) × 1.1 + 20 ms, rounded up. */
const LOSS_READS_AFTER_MS = 1500;

/**
 * Cache write-back: a home's crash may lose what it acknowledged in its last window, and the next
 * home says so in its log ("… are lost"). Each such loss names the home; every crash of that home
 * (a kill or a disk fault) gets a loss window in which the checker treats writes and reads as of
 * unknown outcome. Everything outside those windows is checked as usual.
 */
async function allowWriteBackLosses(cache: RegisterWorkload, cluster: ChaosCluster, nemesis: Nemesis): Promise<string> {
  const homes: string[] = [];
  for (const n of cluster.nodes) {
    const text = await readFile(n.spec.logFile, "utf8").catch(() => "");
    for (const line of text.split("\n")) {
      if (!line.includes("write-back: the previous home restarted")) continue;
      const home = (JSON.parse(line) as { home?: string }).home;
      if (home) homes.push(home);
    }
  }
  const crashes = nemesis.timeline.filter((e) => (e.kind === "kill" || e.kind === "disk") && e.nodes.some((id) => homes.includes(id)));
  const windows = crashes.map((e) => {
    const at = nemesis.t0 + e.startMs;
    return { fromMs: at - LOSS_BEFORE_MS, atMs: at, readsToMs: at + LOSS_READS_AFTER_MS };
  });
  const n = cache.allowLosses(windows);
  return `cache write-back: ${homes.length} home restart(s) before a handoff (possible losses, from the node logs) over ${crashes.length} crash(es) of those homes; ${n.writes} writes and ${n.reads} reads within ${LOSS_BEFORE_MS} ms before / ${LOSS_READS_AFTER_MS} ms after those crashes checked as of unknown outcome`;
}

/** Fails the run unless peer traffic really crosses the proxies (else partitions would be fake). */
async function verifyFaultLayer(cluster: ChaosCluster): Promise<void> {
  await waitFor(() => cluster.leader(), "a group-0 leader", 30_000);
  const ids = cluster.nodes.map((n) => n.spec.id);
  await waitFor(
    () => {
      // One connection per pair, dialed by the smaller id: that direction's proxy carries it.
      for (const a of ids) for (const b of ids) if (a < b && (cluster.links.find((l) => l.from === a && l.to === b)?.proxy.bytes ?? 0) === 0) return false;
      return true;
    },
    "peer traffic through every link proxy",
    20_000,
  );
}

/** Waits (bounded) until every node is up and agrees on one group-0 leader. */
/**
 * The `move` fault: one replica of a random partition (with no move running) from one of its
 * nodes to a node without it. Returns what it queued, or null when every node holds every partition.
 */
async function startMove(admin: DsyncClient, rng: Prng): Promise<string | null> {
  const s = (await admin.call(Op.ADMIN_SHARDS, {}, { idempotent: true })) as AdminShardsReply;
  const active = s.nodes.filter((n) => n.state === "active").map((n) => n.id);
  const candidates = s.partitions.filter((p) => p.state !== "moving" && active.some((id) => !p.replicas.includes(id)));
  if (candidates.length === 0) return null;
  const p = candidates[rng.nextInt(candidates.length)]!;
  const from = p.replicas[rng.nextInt(p.replicas.length)]!;
  const outside = active.filter((id) => !p.replicas.includes(id));
  const to = outside[rng.nextInt(outside.length)]!;
  const r = (await admin.call(Op.ADMIN_REBALANCE, { move: { partition: p.partition, from, to } })) as AdminRebalanceReply;
  return `replica of partition ${p.partition} from ${from} to ${to} (job ${r.jobs.map((j) => j.id).join(",")}), left running`;
}

/** After the heal every replica move must finish (done, or cancelled cleanly) within 90 s; else a problem. */
async function movesFinished(admin: DsyncClient): Promise<string | null> {
  let last: AdminShardsReply | null = null;
  const deadline = performance.now() + 90_000;
  while (performance.now() < deadline) {
    last = (await admin.call(Op.ADMIN_SHARDS, {}, { idempotent: true }).catch(() => null)) as AdminShardsReply | null;
    if (last && last.jobs.every((j) => j.step === "done" || j.step === "cancelled") && last.partitions.every((p) => p.voters.length >= last!.replicationFactor)) return null;
    await sleep(500);
  }
  const running = last?.jobs.filter((j) => j.step !== "done" && j.step !== "cancelled").map((j) => `job ${j.id} (partition ${j.partition} ${j.from}→${j.to}) at ${j.step}`) ?? ["no shard map"];
  return `replica moves unfinished 90 s after the heal: ${running.join("; ")}`;
}

async function settle(cluster: ChaosCluster): Promise<void> {
  await waitFor(
    async () => {
      const views = await Promise.all(cluster.nodes.map((n) => n.health(1000)));
      const leader = views[0]?.leader;
      return views.every((v) => v !== null && v.leader !== null && v.leader === leader);
    },
    "every node to agree on a leader after the heal",
    60_000,
    200,
  );
}

function formatReport(o: CampaignOptions, n: Nemesis, results: readonly WorkloadResult[], problems: readonly string[], ok: boolean, dir: string): string {
  const lines: string[] = [];
  const faults = Object.entries(n.counts()).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  lines.push(`== chaos report: seed ${o.seed}, ${o.nodes} nodes, ${o.seconds} s ==`);
  lines.push(`faults injected: ${faults}`);
  for (const r of results) {
    const c = r.outcomes;
    lines.push(`${r.name}: ${c.ok + c.fail + c.unknown} ops (ok ${c.ok}, failed ${c.fail}, unknown ${c.unknown}); longest stretch without a successful op ${(r.longestGapMs / 1000).toFixed(2)} s; ${r.ok ? "PASS" : `FAIL (${r.violations} violations)`}`);
    for (const l of r.lines) lines.push(`  ${l}`);
  }
  for (const p of problems) lines.push(`problem: ${p}`);
  lines.push(`verdict: ${ok ? "PASS" : "FAIL"}; replay with --seed ${o.seed}; history, fault timeline and node logs in ${dir}`);
  return lines.join("\n");
}

/** Removes a passing run's folder unless asked to keep it. */
export async function cleanUp(result: CampaignResult, keep: boolean): Promise<void> {
  if (result.ok && !keep) await rm(result.dir, { recursive: true, force: true });
}
