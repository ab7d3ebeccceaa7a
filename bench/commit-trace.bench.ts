/**
 * Where the time of a C=1 put goes. A 3-node cluster (fsync on) runs with DSYNC_COMMIT_TRACE,
 * so each node logs when each entry of group 0 is proposed, sent, received, made durable,
 * answered and applied, on the machine's monotonic clock (shared by every process); one client
 * puts sequentially through the leader and logs when each put left and when its answer came
 * back. Each put's steps are matched by its log index (the put's revision), and the report gives
 * the median and p90 of each step:
 *
 *   client → leader      put sent by the client → proposed at the leader (loopback, decode, one turn)
 *   leader: to the wire  proposed → the append to the followers handed to the socket
 *   wire → follower      append sent → received by the follower that answered first
 *   follower: durable    received → written and fdatasynced by that follower
 *   follower: answer     durable → its answer handed to the socket
 *   wire → leader        answer sent → received by the leader
 *   leader: durable      append sent → written and fdatasynced by the leader (runs beside the above)
 *   commit → applied     the later of (first answer, leader durable) → applied at the leader
 *   leader → client      applied → the answer received by the client
 *
 *   npm run bench:commit-trace                     # 2,000 puts after 10 s of puts at C=16 and 300 at C=1
 *   npm run bench:commit-trace -- --puts 5000 --json out.json
 */
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Op, type KvWriteReply } from "../protocol/index.ts";
import { DsyncClient } from "../src/client/client.ts";
import { systemWarmupSeconds, warmUpSystem } from "./lib/closed-loop.ts";
import { DsyncCluster } from "./lib/dsync-cluster.ts";
import { installCleanupHandlers, onInterrupt } from "./lib/proc.ts";
import { gitRev, positive } from "./lib/run-info.ts";
import { markdownTable } from "./lib/table.ts";

const { values: args } = parseArgs({
  options: {
    puts: { type: "string" },
    warmup: { type: "string" },
    "system-warmup": { type: "string" },
    json: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  process.stdout.write("Usage: npm run bench:commit-trace -- [--puts 2000] [--warmup 300] [--system-warmup 10] [--json file]\n");
  process.exit(0);
}
const puts = positive("puts", args.puts, 2000);
const warmup = positive("warmup", args.warmup, 300);
const systemWarmup = systemWarmupSeconds(args["system-warmup"], false);

/** One traced step: monotonic ns, node, step, group, entry index. */
interface Step {
  readonly t: number;
  readonly node: string;
  readonly step: string;
  readonly index: number;
}

installCleanupHandlers();
const traceDir = await mkdtemp(path.join(os.tmpdir(), "dsync-commit-trace-"));
onInterrupt(() => rm(traceDir, { recursive: true, force: true }));
const cluster = await DsyncCluster.start(3, { DSYNC_COMMIT_TRACE: path.join(traceDir, "trace") });
onInterrupt(() => cluster.destroy());
const sent: { t0: number; t1: number; index: number }[] = [];
let leaderId = "";
try {
  process.stderr.write(`${await cluster.settleLeaders()}\n`);
  const client = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 10_000 });
  const value = new Uint8Array(128).fill(7);
  await warmUpSystem(systemWarmup, (p) => client.call(Op.KV_PUT, { key: `warm-${p}`, value }));
  for (let i = 0; i < warmup; i++) await client.call(Op.KV_PUT, { key: "trace", value });
  const status = (await client.call(Op.STATUS, {})) as { leader: string | null };
  leaderId = status.leader ?? "";
  for (let i = 0; i < puts; i++) {
    const t0 = Number(process.hrtime.bigint());
    const r = (await client.call(Op.KV_PUT, { key: "trace", value })) as KvWriteReply;
    sent.push({ t0, t1: Number(process.hrtime.bigint()), index: r.revision });
  }
  await client.close();
  // The nodes write their steps every second.
  await new Promise((r) => setTimeout(r, 1500));
} finally {
  await cluster.destroy();
}

const steps: Step[] = [];
for (const f of await readdir(traceDir)) {
  for (const line of (await readFile(path.join(traceDir, f), "utf8")).split("\n")) {
    const [t, node, step, group, index] = line.split(" ");
    if (group !== "0" || t === undefined || node === undefined || step === undefined || index === undefined) continue;
    steps.push({ t: Number(t), node, step, index: Number(index) });
  }
}
await rm(traceDir, { recursive: true, force: true });

/** The first `step` on `node` at or after `after` covering entry `index` (steps name the last entry of their batch). */
const byKey = new Map<string, Step[]>();
for (const s of steps.sort((a, b) => a.t - b.t)) {
  const k = `${s.node} ${s.step}`;
  const list = byKey.get(k);
  if (list) list.push(s);
  else byKey.set(k, [s]);
}
function first(node: string, step: string, index: number, after: number): Step | undefined {
  const list = byKey.get(`${node} ${step}`) ?? [];
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.t < after) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < list.length; i++) if (list[i]!.index >= index) return list[i];
  return undefined;
}

const SEGMENTS = ["client → leader", "leader: to the wire", "wire → follower", "follower: durable", "follower: answer", "wire → leader", "leader: durable (beside)", "commit → applied", "leader → client", "total"] as const;
const samples = new Map<string, number[]>(SEGMENTS.map((s) => [s, []]));
const followers = cluster.specs.map((s) => s.id).filter((id) => id !== leaderId);
let matched = 0;
for (const p of sent) {
  const propose = first(leaderId, "propose", p.index, p.t0);
  const sendApp = propose && first(leaderId, "send-app", p.index, propose.t);
  const leaderDurable = sendApp && first(leaderId, "persisted", p.index, propose.t);
  const applied = propose && first(leaderId, "applied", p.index, propose.t);
  if (!propose || !sendApp || !leaderDurable || !applied) continue;
  // The follower whose answer reached the leader first.
  const answers = followers
    .map((f) => {
      const recv = first(f, "recv-app", p.index, sendApp.t);
      const durable = recv && first(f, "persisted", p.index, recv.t);
      const resp = durable && first(f, "send-resp", p.index, durable.t);
      const back = resp && first(leaderId, "recv-resp", p.index, resp.t);
      return recv && durable && resp && back ? { recv, durable, resp, back } : null;
    })
    .filter((a) => a !== null)
    .sort((a, b) => a.back.t - b.back.t);
  const a = answers[0];
  if (!a || applied.t > p.t1) continue;
  matched++;
  const add = (seg: (typeof SEGMENTS)[number], ns: number): void => void samples.get(seg)!.push(ns / 1000);
  add("client → leader", propose.t - p.t0);
  add("leader: to the wire", sendApp.t - propose.t);
  add("wire → follower", a.recv.t - sendApp.t);
  add("follower: durable", a.durable.t - a.recv.t);
  add("follower: answer", a.resp.t - a.durable.t);
  add("wire → leader", a.back.t - a.resp.t);
  add("leader: durable (beside)", leaderDurable.t - sendApp.t);
  add("commit → applied", applied.t - Math.max(a.back.t, leaderDurable.t));
  add("leader → client", p.t1 - applied.t);
  add("total", p.t1 - p.t0);
}

const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const rows = SEGMENTS.map((seg) => {
  const xs = samples.get(seg)!;
  return [seg, pct(xs, 0.5).toFixed(0), pct(xs, 0.9).toFixed(0)];
});
process.stdout.write(
  `\n## Where a C=1 put's time goes (3 nodes, fsync on; ${matched} of ${puts} puts traced end to end, after ${systemWarmup} s of puts at C=16 and ${warmup} at C=1; ${gitRev()})\n\n` +
    `${markdownTable(["step", "p50 µs", "p90 µs"], rows)}\n\n` +
    `Steps are medians of their own (they do not add up to the total's median). "leader: durable" runs beside the follower's round trip; the commit waits for the later of the two.\n` +
    `${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}\n`,
);
if (args.json) writeFileSync(args.json, JSON.stringify({ rev: gitRev(), puts, matched, samples: Object.fromEntries(samples) }, null, 2));
