/**
 * Idle cost: a 3-node dsync cluster with its default partitions and no client, beside a 3-member
 * etcd cluster, both fsync on, and beside the floor under both: three bare Node processes that only
 * send each other a small frame every 500 ms, dsync's idle beat (bench/lib/beat-floor.ts). After a settling period, each process's CPU time (from
 * /proc/<pid>/stat) is sampled over a window and reported as % of one core, with its RSS.
 * Then dsync's loaded memory: `--fill-mib` MiB of queue payload (256 KiB messages, over 12
 * queues so every partition gets some) is enqueued and left unconsumed, and each node's RSS is
 * reported beside the bytes it stores (every node holds a replica of every partition with 3
 * nodes): the amplification is RSS growth ÷ payload bytes.
 *
 *   npm run bench:idle                          # 10 s settle, 60 s window, 128 MiB fill
 *   npm run bench:idle -- --seconds 20 --settle 5 --fill-mib 256 --json out.json
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DsyncClient } from "../src/client/client.ts";
import { QueueClient } from "../src/client/queues.ts";
import { startBeatFloor } from "./lib/beat-floor.ts";
import { IDLE_BEAT_INTERVAL_MS_DEFAULT } from "../src/config/node-config.ts";
import { DsyncCluster } from "./lib/dsync-cluster.ts";
import { EtcdCluster, etcdAvailable, etcdVersion } from "./lib/etcd-cluster.ts";
import { exitIfInterrupted, fsyncProbe, loadavg, machineLine, machineMeta, printReport } from "./lib/machine.ts";
import { installCleanupHandlers, procCpuSeconds, sleep } from "./lib/proc.ts";
import { markdownTable } from "./lib/table.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    settle: { type: "string", default: "10" },
    "fill-mib": { type: "string", default: "128" },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (args.help) {
  process.stdout.write("npm run bench:idle -- [--seconds 60] [--settle 10] [--fill-mib 128] [--json FILE]\n");
  process.exit(0);
}
const seconds = Number(args.seconds);
const settle = Number(args.settle);
const fillMiB = Number(args["fill-mib"]);
if (!(seconds > 0) || !(settle >= 0) || !(fillMiB >= 0)) {
  process.stderr.write("bench:idle: --seconds must be > 0, --settle and --fill-mib ≥ 0\n");
  process.exit(2);
}

/** Resident set size of `pid` in MiB, from /proc; NaN when unavailable. */
function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

interface Row {
  readonly system: string;
  readonly member: string;
  readonly cpuPercent: number;
  readonly rssMiB: number;
}

/** CPU % of one core per process over the window, and RSS at its end. */
async function measure(system: string, pids: readonly number[]): Promise<Row[]> {
  await sleep(settle * 1000);
  const start = pids.map(procCpuSeconds);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  return pids.map((pid, i) => ({ system, member: String(i), cpuPercent: ((procCpuSeconds(pid) - start[i]!) / elapsed) * 100, rssMiB: rssMiB(pid) }));
}

interface LoadedRow {
  readonly member: string;
  readonly idleMiB: number;
  readonly loadedMiB: number;
}

const MESSAGE_BYTES = 256 * 1024;

/** Enqueues `fillMiB` of payload (unconsumed), lets the nodes settle, and reads their RSS. */
async function fill(cluster: DsyncCluster, idle: readonly Row[]): Promise<LoadedRow[]> {
  const client = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 30_000 });
  const queues = new QueueClient(client);
  try {
    const payload = new Uint8Array(MESSAGE_BYTES).fill(97);
    const count = Math.ceil((fillMiB * 1024 * 1024) / MESSAGE_BYTES);
    // Four enqueues in flight at a time: a steady fill, not a burst the nodes must buffer.
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < count) {
          const i = next++;
          await queues.enqueue(`fill-${i % 12}`, payload);
        }
      }),
    );
    await sleep(5000);
    return cluster.pids.map((pid, i) => ({ member: String(i), idleMiB: idle[i]!.rssMiB, loadedMiB: rssMiB(pid) }));
  } finally {
    await client.close();
  }
}

installCleanupHandlers();
const meta = machineMeta();
const rows: Row[] = [];
const dsync = await DsyncCluster.start(3);
let loaded: LoadedRow[] = [];
try {
  const idle = await measure("dsync", dsync.pids);
  rows.push(...idle);
  if (fillMiB > 0) loaded = await fill(dsync, idle);
} finally {
  await dsync.destroy();
}
// The floor: what three bare Node processes pay to beat each other at the interval an idle dsync
// node beats at (IDLE_BEAT_INTERVAL_MS's default).
const FLOOR_INTERVAL_MS = IDLE_BEAT_INTERVAL_MS_DEFAULT;
const floor = await startBeatFloor(FLOOR_INTERVAL_MS);
try {
  rows.push(...(await measure(`node beat floor (${FLOOR_INTERVAL_MS} ms)`, floor.pids)));
} finally {
  await floor.stop();
}
let etcdNote = "";
if (etcdAvailable()) {
  const etcd = await EtcdCluster.start(3);
  try {
    rows.push(...(await measure(etcdVersion(), etcd.pids)));
  } finally {
    await etcd.destroy();
  }
} else {
  etcdNote = "etcd is not installed (apt-get install -y etcd-server): dsync measured alone\n\n";
}
await exitIfInterrupted();
meta.loadavgEnd = loadavg();
meta.fsyncEnd = fsyncProbe();

const fmt = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : "–");
let report = `# Idle cost (no client; ${settle} s to settle, then ${seconds} s measured)\n\n${machineLine(meta)}\n\n${etcdNote}`;
report += markdownTable(
  ["system", "member", "CPU, % of one core", "RSS, MiB"],
  rows.map((r) => [r.system, r.member, fmt(r.cpuPercent, 2), fmt(r.rssMiB, 0)]),
);
const per = (sys: string): number[] => rows.filter((r) => r.system.startsWith(sys)).map((r) => r.cpuPercent);
const worst = Math.max(...per("dsync"));
const floorWorst = Math.max(...per("node beat floor"));
report += `\n\ndsync: the busiest node used ${fmt(worst, 2)}% of a core (target: ≤ 1% per node); three bare Node processes that only beat each other every ${FLOOR_INTERVAL_MS} ms used up to ${fmt(floorWorst, 2)}%\n\n`;
if (loaded.length > 0) {
  const payloadMiB = (Math.ceil((fillMiB * 1024 * 1024) / MESSAGE_BYTES) * MESSAGE_BYTES) / (1024 * 1024);
  report += `## dsync with ${fmt(payloadMiB, 0)} MiB of unconsumed queue payload (256 KiB messages; each node stores all of it)\n\n`;
  report += markdownTable(
    ["member", "RSS idle, MiB", "RSS loaded, MiB", "growth ÷ payload", "RSS ÷ payload"],
    loaded.map((r) => [r.member, fmt(r.idleMiB, 0), fmt(r.loadedMiB, 0), `${fmt((r.loadedMiB - r.idleMiB) / payloadMiB, 2)}×`, `${fmt(r.loadedMiB / payloadMiB, 2)}×`]),
  );
  report += "\n\n";
}
printReport(report, meta, args.json, { meta, seconds, settle, rows, fillMiB, loaded });
