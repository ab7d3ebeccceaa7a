/**
 * Idle cost: a 3-node dsync cluster with its default partitions and no client, beside a 3-member
 * etcd cluster, both fsync on. After a settling period, each process's CPU time (from
 * /proc/<pid>/stat) is sampled over a window and reported as % of one core, with its RSS.
 *
 *   npm run bench:idle                          # 10 s settle, 60 s window
 *   npm run bench:idle -- --seconds 20 --settle 5 --json out.json
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DsyncCluster } from "./lib/dsync-cluster.ts";
import { EtcdCluster, etcdAvailable, etcdVersion } from "./lib/etcd-cluster.ts";
import { exitIfInterrupted, fsyncProbe, loadavg, machineLine, machineMeta, printReport } from "./lib/machine.ts";
import { installCleanupHandlers, procCpuSeconds, sleep } from "./lib/proc.ts";
import { markdownTable } from "./lib/table.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    settle: { type: "string", default: "10" },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (args.help) {
  process.stdout.write("npm run bench:idle -- [--seconds 60] [--settle 10] [--json FILE]\n");
  process.exit(0);
}
const seconds = Number(args.seconds);
const settle = Number(args.settle);
if (!(seconds > 0) || !(settle >= 0)) {
  process.stderr.write("bench:idle: --seconds must be > 0 and --settle ≥ 0\n");
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

installCleanupHandlers();
const meta = machineMeta();
const rows: Row[] = [];
const dsync = await DsyncCluster.start(3);
try {
  rows.push(...(await measure("dsync", dsync.pids)));
} finally {
  await dsync.destroy();
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
report += `\n\ndsync: the busiest node used ${fmt(worst, 2)}% of a core (target: ≤ 1% per node)\n\n`;
printReport(report, meta, args.json, { meta, seconds, settle, rows });
