/**
 * Election and failover benchmark: fresh 3-node dsync clusters on loopback, one per trial.
 *
 * Per trial (fresh cluster, temp data dirs, fsync on, ELECTION_TIMEOUT_MS=150, HEARTBEAT_INTERVAL_MS=50,
 * IDLE_BEAT_INTERVAL_MS=500, the defaults):
 *   1. election  — from the moment all three nodes are listening (their /health answers at all,
 *      any status code) to the moment all three agree on one leader (STATUS polled every 5 ms);
 *   2. failover  — a client writes continuously (closed loop, one KV_PUT after another) through
 *      the two nodes that will survive; the leader is SIGKILLed; measured from the kill to
 *        "new leader":    both survivors agree on a new leader (STATUS polled every 5 ms), and
 *        "writes resume": completion of the first KV_PUT *issued after the kill* that succeeds.
 *
 *   npm run bench:failover                      # 20 trials
 *   npm run bench:failover -- --trials 5 --json out.json
 *   (or: npx tsx bench/failover.bench.ts --trials 20)
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import os from "node:os";
import { parseArgs } from "node:util";
import { Op, type NodeStatus } from "../protocol/index.ts";
import { DsyncClient } from "../src/client/client.ts";
import { describeError } from "./lib/closed-loop.ts";
import { IDLE_BEAT_INTERVAL_MS_DEFAULT } from "../src/config/node-config.ts";
import { DsyncCluster } from "./lib/dsync-cluster.ts";
import { gitRev } from "./lib/run-info.ts";
import { ROOT, installCleanupHandlers, interruptSignal, onInterrupt, sleep } from "./lib/proc.ts";
import { fmtMs, markdownTable } from "./lib/table.ts";

// ---- options ------------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    trials: { type: "string", default: "20" },
    "idle-kill": { type: "boolean", default: false },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write(`Usage: npm run bench:failover -- [options]

  --trials N    trials, each on a fresh 3-node cluster (default 20)
  --idle-kill   the writer pauses before the kill until every group is quiet (no heartbeats, only
                node liveness beats), so the kill is detected the way an idle cluster detects it
  --json FILE   also write the per-trial figures and the summary as JSON
`);
  process.exit(0);
}

const trials = Number(args.trials);
if (!Number.isInteger(trials) || trials < 1 || trials > 1000) throw new Error(`--trials must be an integer in 1..1000, got ${JSON.stringify(args.trials)}`);

const NODES = 3;
const ELECTION_TIMEOUT_MS = 150;
const HEARTBEAT_INTERVAL_MS = 50;
const IDLE_BEAT_INTERVAL_MS = IDLE_BEAT_INTERVAL_MS_DEFAULT;
const POLL_MS = 5;
const TRIAL_TIMEOUT_MS = 30_000;
/** Before the kill: at least this long of writing, and this many successful writes in a row. */
const WARMUP_MS = 300;
const WARMUP_OK_IN_A_ROW = 20;
/** Pause after a failed write before the next one (no hot spin on a node without a leader; same granularity as the polling). */
const ERROR_PAUSE_MS = 5;
const VALUE_BYTES = 100;
/** Client retry policy: one attempt per call, ~1 ms pause inside the client after a failure. */
const TIGHT_BACKOFF = { baseMs: 2, maxMs: 2, factor: 1 } as const;

const value = new Uint8Array(VALUE_BYTES);
for (let i = 0; i < VALUE_BYTES; i++) value[i] = 32 + ((i * 7919) % 95);

// ---- small helpers ------------------------------------------------------------------------------

/** Rejects with the signal's reason as soon as it aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e as Error);
      },
    );
  });
}

function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason as Error;
}

/** A client bound to one node, no redirects, one attempt: that node's own view. */
function directClient(addr: string): DsyncClient {
  return new DsyncClient({ nodes: [addr], preferLeader: false, maxAttempts: 1, requestTimeoutMs: 1000, connectTimeoutMs: 1000, backoff: TIGHT_BACKOFF, clientName: "bench-status" });
}

async function statusOrNull(c: DsyncClient): Promise<NodeStatus | null> {
  try {
    return await c.status();
  } catch {
    return null;
  }
}

/** The leader every given status agrees on (exactly one says "leader", all name it), else null. */
function agreedLeader(sts: readonly (NodeStatus | null)[], notId?: string): NodeStatus | null {
  if (sts.some((s) => s === null)) return null;
  const leaders = sts.filter((s) => s!.role === "leader");
  if (leaders.length !== 1) return null;
  const l = leaders[0]!;
  if (l.nodeId === notId) return null;
  return sts.every((s) => s!.leader === l.nodeId) ? l : null;
}

/** Polls STATUS on `clients` every POLL_MS until they agree on a leader; `at` is when that round's replies were in. */
async function pollAgreement(clients: readonly DsyncClient[], signal: AbortSignal, notId?: string): Promise<{ at: number; leader: NodeStatus; rounds: number }> {
  for (let rounds = 1; ; rounds++) {
    checkAborted(signal);
    const t0 = performance.now();
    const sts = await Promise.all(clients.map(statusOrNull));
    const at = performance.now();
    const leader = agreedLeader(sts, notId);
    if (leader) return { at, leader, rounds };
    const wait = t0 + POLL_MS - performance.now();
    if (wait > 0) await sleep(wait);
  }
}

/** Polls GET /health every POLL_MS until it answers at all; returns when the answer came. */
async function waitListening(cluster: DsyncCluster, i: number, signal: AbortSignal): Promise<number> {
  const url = `http://127.0.0.1:${cluster.specs[i]!.httpPort}/health`;
  for (;;) {
    checkAborted(signal);
    cluster.nodes[i]!.assertAlive();
    const t0 = performance.now();
    try {
      const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(1000)]) });
      const at = performance.now();
      await res.body?.cancel();
      return at;
    } catch {
      /* not listening yet */
    }
    const wait = t0 + POLL_MS - performance.now();
    if (wait > 0) await sleep(wait);
  }
}

interface WriteOp {
  readonly start: number;
  readonly end: number;
  readonly ok: boolean;
  readonly error?: string;
}

/** One closed-loop KV_PUT writer on one client, recording every operation. */
class Writer {
  readonly client: DsyncClient;
  readonly ops: WriteOp[] = [];
  okInARow = 0;
  #stop = false;
  #loop: Promise<void>;
  #killAt: number | null = null;
  #paused: Promise<void> | null = null;
  #unpause: (() => void) | null = null;
  #resumed: ((at: number) => void) | null = null;
  /** Resolves with the completion time of the first write issued at/after `markKill()` that succeeded. */
  readonly resumed: Promise<number>;

  constructor(addrs: readonly string[], trial: number) {
    this.client = new DsyncClient({ nodes: addrs, preferLeader: false, maxAttempts: 1, requestTimeoutMs: 5000, connectTimeoutMs: 1000, backoff: TIGHT_BACKOFF, clientName: `bench-writer-${trial}` });
    this.resumed = new Promise((r) => (this.#resumed = r));
    this.#loop = this.#run(trial);
  }

  async #run(trial: number): Promise<void> {
    for (let seq = 0; !this.#stop; seq++) {
      if (this.#paused) await this.#paused;
      const start = performance.now();
      try {
        await this.client.call(Op.KV_PUT, { key: `failover/t${trial}/k${seq % 256}`, value });
        const end = performance.now();
        this.ops.push({ start, end, ok: true });
        this.okInARow++;
        if (this.#killAt !== null && start >= this.#killAt) {
          this.#resumed?.(end);
          this.#resumed = null;
        }
      } catch (err) {
        this.ops.push({ start, end: performance.now(), ok: false, error: describeError(err) });
        this.okInARow = 0;
        if (!this.#stop) await sleep(ERROR_PAUSE_MS);
      }
    }
  }

  markKill(at: number): void {
    this.#killAt = at;
  }

  /** Stops issuing writes after the one in flight (resolves once it is done). */
  async pause(): Promise<void> {
    this.#paused = new Promise((r) => (this.#unpause = r));
    const before = this.ops.length;
    while (this.ops.length === before && !this.#stop) await sleep(1);
  }

  unpause(): void {
    this.#paused = null;
    this.#unpause?.();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.client.close(); // fails an in-flight call at once
    await Promise.race([this.#loop, sleep(6000)]);
  }
}

/** Resolves once every node reports every group quiet (dsync_raft_quiesced 1 on /metrics). */
async function allQuiet(c: DsyncCluster, signal: AbortSignal): Promise<void> {
  for (;;) {
    checkAborted(signal);
    const pages = await Promise.all(c.specs.map(async (s) => (await fetch(`http://127.0.0.1:${s.httpPort}/metrics`, { signal: AbortSignal.timeout(1000) })).text()));
    const flags = pages.flatMap((t) => t.split("\n").filter((l) => l.startsWith("dsync_raft_quiesced{")));
    if (flags.length > 0 && flags.every((l) => l.endsWith(" 1"))) return;
    await sleep(20);
  }
}

// ---- one trial ----------------------------------------------------------------------------------

interface TrialResult {
  readonly trial: number;
  ok: boolean;
  error?: string;
  readonly loadavg1: number;
  /** Last node listening − first node listening. */
  listenSpreadMs?: number;
  electionMs?: number;
  /** Informational: the same end point, measured from the first node listening. */
  electionFromFirstListenMs?: number;
  electionPollRounds?: number;
  leader?: string;
  term?: number;
  writesBeforeKill?: number;
  writerNode?: string;
  /** The write in flight when the leader was killed (null: none). */
  inFlightAtKill?: { ok: boolean; error?: string; endAfterKillMs: number } | null;
  newLeaderMs?: number;
  writesResumeMs?: number;
  newLeader?: string;
  newTerm?: number;
  writerNodeBecameLeader?: boolean;
  /** Failed writes between the kill and the first successful write issued after it, by error. */
  failedWritesDuringFailover?: number;
  failoverErrors?: Record<string, number>;
}

let current: { cluster: DsyncCluster | null; cleanup: () => Promise<void> } | null = null;

async function runTrial(trial: number): Promise<TrialResult> {
  const r: TrialResult = { trial, ok: false, loadavg1: Number(os.loadavg()[0]!.toFixed(2)) };
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`trial timed out after ${TRIAL_TIMEOUT_MS / 1000} s`)), TRIAL_TIMEOUT_MS);
  const onInt = (): void => ac.abort(new Error("interrupted"));
  interruptSignal.addEventListener("abort", onInt, { once: true });
  const signal = ac.signal;
  let cluster: DsyncCluster | null = null;
  const statusClients: DsyncClient[] = [];
  let writer: Writer | null = null;
  const cleanup = async (): Promise<void> => {
    await writer?.stop().catch(() => {});
    await Promise.allSettled(statusClients.map((c) => c.close()));
    await cluster?.destroy();
  };
  current = { cluster: null, cleanup };
  try {
    cluster = await DsyncCluster.spawn(NODES, {
      ELECTION_TIMEOUT_MS: String(ELECTION_TIMEOUT_MS),
      HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS),
      IDLE_BEAT_INTERVAL_MS: String(IDLE_BEAT_INTERVAL_MS),
      FSYNC: "true",
    });
    current.cluster = cluster;
    const c = cluster;
    const addrs = c.clientAddrs;

    // 1. Election. Each node's STATUS client connects as soon as that node listens (the client port
    //    opens before the HTTP port), so the handshake is not part of the measured window.
    const listenAt = await abortable(
      Promise.all(
        addrs.map(async (addr, i) => {
          const at = await waitListening(c, i, signal);
          const sc = directClient(addr);
          statusClients[i] = sc;
          await sc.ready().catch(() => {});
          return at;
        }),
      ),
      signal,
    );
    const allListening = Math.max(...listenAt);
    const firstListening = Math.min(...listenAt);
    const elected = await abortable(pollAgreement(statusClients, signal), signal);
    r.listenSpreadMs = allListening - firstListening;
    r.electionMs = Math.max(0, elected.at - allListening);
    r.electionFromFirstListenMs = elected.at - firstListening;
    r.electionPollRounds = elected.rounds;
    r.leader = elected.leader.nodeId;
    r.term = elected.leader.term;

    // 2. Failover: write through the two nodes that will survive.
    const leaderIdx = c.specs.findIndex((s) => s.id === elected.leader.nodeId);
    if (leaderIdx < 0) throw new Error(`unknown leader ${elected.leader.nodeId}`);
    const survivorIdx = c.specs.map((_, i) => i).filter((i) => i !== leaderIdx);
    const survivorAddrs = survivorIdx.map((i) => addrs[i]!);
    const leaderAddr = addrs[leaderIdx]!;

    const warmupDeadline = performance.now() + 10_000;
    for (;;) {
      checkAborted(signal);
      writer = new Writer(survivorAddrs, trial);
      const t0 = performance.now();
      while (performance.now() - t0 < WARMUP_MS || writer.okInARow < WARMUP_OK_IN_A_ROW) {
        checkAborted(signal);
        if (performance.now() > warmupDeadline) {
          const last = writer.ops.at(-1);
          throw new Error(`writes did not settle before the kill (${writer.okInARow} ok in a row; last: ${last?.error ?? "ok"})`);
        }
        await sleep(10);
      }
      // A NOT_LEADER redirect may have moved the writer to the leader: start over on a survivor.
      const to = writer.client.connectedTo;
      if (to !== null && to !== leaderAddr) break;
      await writer.stop();
      writer = null;
    }
    const w: Writer = writer;
    r.writerNode = c.specs[addrs.indexOf(w.client.connectedTo!)]!.id;
    const survivorClients = survivorIdx.map((i) => statusClients[i]!);

    const leaderNode = c.nodes[leaderIdx]!;
    if (args["idle-kill"]) {
      await w.pause();
      await abortable(allQuiet(c, signal), signal);
    }
    const killAt = performance.now();
    w.markKill(killAt);
    w.unpause();
    const opsBeforeKill = w.ops.length;
    const exited = leaderNode.stop(0); // SIGKILL by PID, sent synchronously
    const [newLeader, resumedAt] = await abortable(Promise.all([pollAgreement(survivorClients, signal, elected.leader.nodeId), w.resumed]), signal);
    await exited;
    r.newLeaderMs = newLeader.at - killAt;
    r.writesResumeMs = resumedAt - killAt;
    r.newLeader = newLeader.leader.nodeId;
    r.newTerm = newLeader.leader.term;
    r.writerNodeBecameLeader = newLeader.leader.nodeId === r.writerNode;

    // Write accounting (the writer keeps going a little; only look up to the first resumed write).
    const ops = w.ops.slice();
    r.writesBeforeKill = ops.slice(0, opsBeforeKill).filter((o) => o.ok && o.end < killAt).length;
    const inFlight = ops.find((o) => o.start < killAt && o.end >= killAt);
    r.inFlightAtKill = inFlight ? { ok: inFlight.ok, ...(inFlight.error !== undefined && { error: inFlight.error }), endAfterKillMs: inFlight.end - killAt } : null;
    const during = ops.filter((o) => o.start >= killAt && o.end <= resumedAt && !o.ok);
    r.failedWritesDuringFailover = during.length;
    const kinds: Record<string, number> = {};
    for (const o of during) {
      const k = (o.error ?? "?").replace(/:.*$/, "");
      kinds[k] = (kinds[k] ?? 0) + 1;
    }
    r.failoverErrors = kinds;
    r.ok = true;
  } catch (err) {
    const logs = cluster ? cluster.nodes.map((n) => `--- ${n.name} ---\n${n.output.slice(-1500)}`).join("\n") : "";
    r.error = `${(err as Error).message}${logs ? `\n${logs}` : ""}`;
  } finally {
    clearTimeout(timer);
    interruptSignal.removeEventListener("abort", onInt);
    ac.abort(new Error("trial over"));
    await cleanup();
    current = null;
  }
  return r;
}

// ---- run ----------------------------------------------------------------------------------------


/**
 * A fingerprint of the uncommitted daemon code (modified and untracked files under src/ and
 * protocol/): each trial spawns the daemons from the working tree, so edits made during the run
 * (a shared checkout) would mix builds. Compared at start and end.
 */
function sourceFingerprint(): string {
  try {
    const files = execFileSync("git", ["ls-files", "--modified", "--others", "--exclude-standard", "--", "src", "protocol"], { cwd: ROOT, encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .sort();
    const h = createHash("sha1");
    for (const f of files) {
      h.update(f);
      try {
        h.update(readFileSync(path.join(ROOT, f)));
      } catch {
        h.update("(deleted)");
      }
    }
    return `${files.length} dirty file(s), ${h.digest("hex").slice(0, 10)}`;
  } catch {
    return "unknown";
  }
}

installCleanupHandlers();
onInterrupt(async () => {
  await current?.cleanup();
});

const meta = {
  date: new Date().toISOString(),
  node: process.version,
  dsyncRev: gitRev(),
  sourceStart: sourceFingerprint(),
  sourceEnd: "",
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? "unknown",
  loadavgStart: os.loadavg().map((l) => Number(l.toFixed(2))),
  loadavgEnd: [] as number[],
  trials,
  nodes: NODES,
  electionTimeoutMs: ELECTION_TIMEOUT_MS,
  heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
  idleBeatIntervalMs: IDLE_BEAT_INTERVAL_MS,
  pollMs: POLL_MS,
  trialTimeoutMs: TRIAL_TIMEOUT_MS,
  warmupMs: WARMUP_MS,
  warmupOkInARow: WARMUP_OK_IN_A_ROW,
  errorPauseMs: ERROR_PAUSE_MS,
  valueBytes: VALUE_BYTES,
  fsync: true,
};

process.stdout.write(
  `# failover bench: ${NODES} dsyncd nodes on 127.0.0.1, fresh cluster per trial, fsync on\n\n` +
    `${meta.date} · node ${meta.node} · ${meta.cpus}× ${meta.cpuModel} · dsync ${meta.dsyncRev}\n` +
    `load average at start: ${meta.loadavgStart.join(" ")} · uncommitted src/ + protocol/: ${meta.sourceStart}\n` +
    `${trials} trials · ELECTION_TIMEOUT_MS=${ELECTION_TIMEOUT_MS} HEARTBEAT_INTERVAL_MS=${HEARTBEAT_INTERVAL_MS} IDLE_BEAT_INTERVAL_MS=${IDLE_BEAT_INTERVAL_MS} · STATUS and /health polled every ${POLL_MS} ms · ` +
    `per-trial timeout ${TRIAL_TIMEOUT_MS / 1000} s\n\n`,
);

const results: TrialResult[] = [];
for (let t = 1; t <= trials; t++) {
  if (interruptSignal.aborted) break;
  const r = await runTrial(t);
  if (interruptSignal.aborted) break;
  results.push(r);
  process.stderr.write(
    r.ok
      ? `trial ${String(t).padStart(2)}: election ${fmtMs(r.electionMs!)} ms (listen spread ${fmtMs(r.listenSpreadMs!)} ms, ${r.leader} term ${r.term}) · ` +
          `kill ${r.leader} → new leader ${r.newLeader} term ${r.newTerm} in ${fmtMs(r.newLeaderMs!)} ms, writes resume ${fmtMs(r.writesResumeMs!)} ms ` +
          `(writer on ${r.writerNode}${r.writerNodeBecameLeader ? ", became leader" : ""}; ${r.failedWritesDuringFailover} failed writes) · load ${r.loadavg1}\n`
      : `trial ${String(t).padStart(2)}: FAILED: ${r.error}\n`,
  );
}
// On SIGINT the cleanup handler exits the process; never print a partial report as if complete.
if (interruptSignal.aborted) {
  await new Promise((r) => setTimeout(r, 10_000));
  process.exit(130);
}
meta.loadavgEnd = os.loadavg().map((l) => Number(l.toFixed(2)));
meta.sourceEnd = sourceFingerprint();

// ---- report -------------------------------------------------------------------------------------

/** Linear interpolation between closest ranks (numpy's default). */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const x = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(x);
  const hi = Math.ceil(x);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (x - lo);
}

interface Summary {
  readonly n: number;
  readonly medianMs: number;
  readonly p90Ms: number;
  readonly minMs: number;
  readonly maxMs: number;
}

function summarize(xs: readonly number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, medianMs: percentile(s, 50), p90Ms: percentile(s, 90), minMs: s[0] ?? Number.NaN, maxMs: s.at(-1) ?? Number.NaN };
}

const ok = results.filter((r) => r.ok);
const failed = results.filter((r) => !r.ok);
const pick = (f: (r: TrialResult) => number | undefined): number[] => ok.map(f).filter((x): x is number => x !== undefined);
const summary = {
  election: summarize(pick((r) => r.electionMs)),
  failoverNewLeader: summarize(pick((r) => r.newLeaderMs)),
  failoverWritesResume: summarize(pick((r) => r.writesResumeMs)),
  electionFromFirstListen: summarize(pick((r) => r.electionFromFirstListenMs)),
  listenSpread: summarize(pick((r) => r.listenSpreadMs)),
};
const row = (label: string, s: Summary): string[] => [label, String(s.n), fmtMs(s.medianMs), fmtMs(s.p90Ms), fmtMs(s.minMs), fmtMs(s.maxMs)];

let out = `## Results (${ok.length}/${results.length} trials ok)\n\n`;
out +=
  markdownTable(
    ["metric (ms)", "n", "median", "p90", "min", "max"],
    [
      row("election (all 3 listening → all 3 agree on a leader)", summary.election),
      row("failover: new leader (SIGKILL → both survivors agree)", summary.failoverNewLeader),
      row("failover: writes resume (SIGKILL → first ok write issued after it)", summary.failoverWritesResume),
      row("(info) election from the first node listening", summary.electionFromFirstListen),
      row("(info) listen spread (last − first node listening)", summary.listenSpread),
    ],
  ) + "\n\n";
const failedWrites = summarize(pick((r) => r.failedWritesDuringFailover));
const inFlightOk = ok.filter((r) => r.inFlightAtKill?.ok === true).length;
const inFlightFailed = ok.filter((r) => r.inFlightAtKill?.ok === false).length;
const becameLeader = ok.filter((r) => r.writerNodeBecameLeader).length;
const errorKinds: Record<string, number> = {};
for (const r of ok) for (const [k, v] of Object.entries(r.failoverErrors ?? {})) errorKinds[k] = (errorKinds[k] ?? 0) + v;
out +=
  `Writes during failover: median ${fmtMs(failedWrites.medianMs)} failed writes per trial (max ${fmtMs(failedWrites.maxMs)}), by error: ` +
  `${Object.entries(errorKinds).map(([k, v]) => `${k} ×${v}`).join(", ") || "none"}; ` +
  `write in flight at the kill: ${inFlightOk} succeeded, ${inFlightFailed} failed, ${ok.length - inFlightOk - inFlightFailed} none; ` +
  `the writer's node became the new leader in ${becameLeader}/${ok.length} trials.\n\n`;
out +=
  `Notes:\n` +
  `- Detection of a dead leader is bounded below by the election timeout: a follower campaigns only after a randomized ` +
  `${ELECTION_TIMEOUT_MS}–${2 * ELECTION_TIMEOUT_MS} ms without hearing from the leader (counted from its last heartbeat, sent every ` +
  `${HEARTBEAT_INTERVAL_MS} ms, so ≥ ${ELECTION_TIMEOUT_MS - HEARTBEAT_INTERVAL_MS} ms after the kill), then a pre-vote and a vote round; raft ticks are 10 ms.\n` +
  (args["idle-kill"]
    ? `- --idle-kill: quiet groups send no heartbeats and nodes beat every ${IDLE_BEAT_INTERVAL_MS} ms; the survivors learn of the death when the ` +
      `killed node's connection closes, and then count its leader as gone an election timeout after they last heard from it.\n`
    : "") +
  `- Polling granularity is ${POLL_MS} ms (STATUS rounds and /health probes start every ${POLL_MS} ms; an end point is the time the deciding ` +
  `round's replies arrived), so "new leader" and "election" are late by up to ~${POLL_MS} ms plus a loopback round trip.\n` +
  `- The writer is one DsyncClient seeded with the two survivors (preferLeader off, so followers forward to the leader), one attempt per call ` +
  `(its internal backoff set to ~1 ms) and the bench retries a failed write after ${ERROR_PAUSE_MS} ms: "writes resume" measures the cluster, not ` +
  `the client library's default retry policy (8 attempts, 25–2000 ms backoff). Only writes issued after the kill count, so a write acknowledged ` +
  `by the old leader just before it died cannot pass for a resumed one.\n` +
  `- Election time starts when all three /health ports answer; two nodes may already have elected a leader before the third is up ` +
  `(see the listen-spread row), which makes that figure short. The "from the first node listening" row includes start-up skew.\n` +
  `- Percentiles: linear interpolation between closest ranks over the ok trials.\n` +
  `- Shared machine (${meta.cpus} CPUs): figures are noisy. Load average ${meta.loadavgStart.join(" ")} at start → ${meta.loadavgEnd.join(" ")} at end.\n`;
if (meta.sourceEnd !== meta.sourceStart) {
  out += `\n**WARNING: the daemon source changed during the run** (uncommitted src/ + protocol/: ${meta.sourceStart} → ${meta.sourceEnd}): trials may have run different code.\n`;
}
if (failed.length) {
  out += `\n**${failed.length} trial(s) failed:**\n`;
  for (const r of failed) out += `- trial ${r.trial}: ${(r.error ?? "").split("\n")[0]}\n`;
}
process.stdout.write(`\n${out}`);

if (args.json) {
  writeFileSync(args.json, JSON.stringify({ meta, summary, trials: results }, null, 2) + "\n");
  process.stdout.write(`raw figures written to ${args.json}\n`);
}

process.exit(failed.length > 0 ? 1 : 0);
