/**
 * What waking a process costs on this machine: the floor under every hop of a commit and under
 * an idle node's CPU. No dsync code runs here; two plain Node processes on loopback do.
 *
 * 1. Round trips: a client sends one byte to an echo process and waits for it back, 2,000 times,
 *    with the two processes pinned (taskset) to the same CPU or to different CPUs, and either
 *    back to back or with 1 ms of idleness before each send (a C=1 commit idles between its steps
 *    while disks sync). With different CPUs and idleness in between, the receiver's CPU has
 *    halted, and the send must wake it: the hop then shows what a wake-up costs.
 * 2. CPU per wake-up: a process that only runs an empty timer every 10 or 50 ms, its CPU time
 *    (user + system, from process.cpuUsage) over 10 s divided by its wake-ups.
 *
 * Needs taskset (Debian: util-linux) and 2 CPUs for the pinned cells.
 *
 *   npm run bench:wake
 *   npm run bench:wake -- --trips 5000 --json out.json
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import { parseArgs } from "node:util";
import { exitIfInterrupted, machineLine, machineMeta, fsyncProbe, loadavg, printReport } from "./lib/machine.ts";
import { Child, freePorts, installCleanupHandlers, waitFor } from "./lib/proc.ts";
import { positive } from "./lib/run-info.ts";
import { markdownTable } from "./lib/table.ts";

const { values: args } = parseArgs({
  options: {
    trips: { type: "string" },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (args.help) {
  process.stdout.write("npm run bench:wake -- [--trips 2000] [--json FILE]\n");
  process.exit(0);
}
const trips = Math.floor(positive("trips", args.trips, 2000));

/** The echo process: answers every chunk with the same bytes. argv: port. */
const ECHO = `
const net = require("node:net");
net.createServer((s) => { s.setNoDelay(true); s.on("data", (d) => s.write(d)); s.on("error", () => {}); })
  .listen(Number(process.argv[1]), "127.0.0.1", () => process.stdout.write("ready\\n"));
`;

/** The client: `trips` round trips after `gapMs` idle each; prints the sorted RTTs (µs) as JSON. argv: port, trips, gapMs. */
const CLIENT = `
const net = require("node:net");
const [port, trips, gapMs] = process.argv.slice(1).map(Number);
const s = net.connect(port, "127.0.0.1");
s.setNoDelay(true);
s.on("connect", async () => {
  const rtts = [];
  const one = Buffer.from("x");
  for (let i = 0; i < trips; i++) {
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    const t0 = process.hrtime.bigint();
    await new Promise((r) => { s.once("data", r); s.write(one); });
    rtts.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  s.destroy();
  process.stdout.write(JSON.stringify(rtts.sort((a, b) => a - b)));
});
`;

/** A process that only wakes every `periodMs` for `seconds`; prints its CPU µs per wake-up. argv: periodMs, seconds. */
const TICKER = `
const [periodMs, seconds] = process.argv.slice(1).map(Number);
let wakes = 0;
const c0 = process.cpuUsage();
const t = setInterval(() => { wakes++; }, periodMs);
setTimeout(() => {
  clearInterval(t);
  const c = process.cpuUsage(c0);
  process.stdout.write(JSON.stringify({ wakes, cpuUs: c.user + c.system }));
}, seconds * 1000);
`;

function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** `node -e script args`, pinned to `cpu` (or not): a tracked Child, stopped by PID on an interrupt. */
function nodeChild(name: string, script: string, argv: readonly string[], cpu: number | null): Child {
  const cmd = cpu === null ? process.execPath : "taskset";
  const args = cpu === null ? ["-e", script, ...argv] : ["-c", String(cpu), process.execPath, "-e", script, ...argv];
  return new Child(name, cmd, args, { env: { PATH: process.env.PATH ?? "" } });
}

/** Runs `child` to its end and returns what it printed. @throws when it fails. */
function outputOf(child: Child): Promise<string> {
  return new Promise((resolve, reject) => {
    child.proc.once("exit", (code) => (code === 0 ? resolve(child.output) : reject(new Error(`${child.name} exited with ${code}:\n${child.output}`))));
  });
}

interface TripCell {
  readonly placement: string;
  readonly gapMs: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

async function roundTrips(serverCpu: number | null, clientCpu: number | null, gapMs: number): Promise<Omit<TripCell, "placement">> {
  const [port] = await freePorts(1);
  const echo = nodeChild("echo", ECHO, [String(port)], serverCpu);
  try {
    await waitFor(() => echo.output.includes("ready") || (echo.assertAlive(), false), "the echo process to listen", 10_000);
    const client = nodeChild("round-trip client", CLIENT, [String(port), String(trips), String(gapMs)], clientCpu);
    const rtts = JSON.parse(await outputOf(client)) as number[];
    const at = (q: number): number => rtts[Math.min(rtts.length - 1, Math.floor(q * rtts.length))]!;
    return { gapMs, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
  } finally {
    await echo.stop(0);
  }
}

installCleanupHandlers();
const meta = machineMeta();
const pinned = hasTaskset() && os.cpus().length >= 2;
const placements: { name: string; server: number | null; client: number | null }[] = pinned
  ? [
      { name: "same CPU", server: 0, client: 0 },
      { name: "different CPUs", server: 1, client: 0 },
    ]
  : [{ name: "unpinned", server: null, client: null }];
if (!pinned) process.stderr.write("bench:wake: taskset (apt-get install -y util-linux) and 2 CPUs are needed to pin the processes; measuring unpinned only\n");

const cells: TripCell[] = [];
for (const p of placements) {
  for (const gapMs of [0, 1]) cells.push({ placement: p.name, ...(await roundTrips(p.server, p.client, gapMs)) });
}
const tickers: { periodMs: number; wakes: number; cpuUs: number }[] = [];
for (const periodMs of [10, 50]) {
  const r = JSON.parse(await outputOf(nodeChild("ticker", TICKER, [String(periodMs), "10"], null))) as { wakes: number; cpuUs: number };
  tickers.push({ periodMs, ...r });
}
meta.loadavgEnd = loadavg();
meta.fsyncEnd = fsyncProbe();
await exitIfInterrupted();

const us = (n: number): string => n.toFixed(0);
const report =
  `# Wake-up cost on this machine (loopback, two plain Node processes, ${trips} round trips a cell)\n\n${machineLine(meta)}\n\n` +
  markdownTable(
    ["processes", "before each send", "RTT p50 µs", "p90 µs", "p99 µs"],
    cells.map((c) => [c.placement, c.gapMs === 0 ? "nothing (back to back)" : `${c.gapMs} ms idle`, us(c.p50), us(c.p90), us(c.p99)]),
  ) +
  "\n\n" +
  markdownTable(
    ["empty timer every", "wake-ups", "CPU µs per wake-up", "% of a core"],
    tickers.map((t) => [`${t.periodMs} ms`, String(t.wakes), us(t.cpuUs / Math.max(1, t.wakes)), ((t.cpuUs / 10_000_000) * 100).toFixed(2)]),
  ) +
  "\n\nA round trip is two hops. The idle row with the processes on different CPUs is the closest to a C=1 commit, " +
  "whose processes sit idle while the disks sync (bench:commit-trace shows its hops).\n";
printReport(report, meta, args.json, { meta, trips, cells, tickers });
