/**
 * What every benchmark script shares around its measurements: the common command-line options,
 * the facts about the machine and the run printed beside the figures, the end-of-run step after
 * an interrupt, and the report's last lines with the optional JSON file. (bench/lock, raft and
 * failover still spell these out inline; they can move here.)
 */
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { interruptSignal } from "./proc.ts";
import { gitRev } from "./run-info.ts";

/** `parseArgs` options every benchmark takes; spread them into its own. */
export const COMMON_OPTIONS = {
  warmup: { type: "string" },
  quick: { type: "boolean", default: false },
  concurrency: { type: "string", default: "1,16,64" },
  "max-ops": { type: "string" },
  json: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

export interface MachineMeta {
  readonly date: string;
  readonly node: string;
  readonly dsyncRev: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly loadavgStart: number[];
  /** Filled in with {@link loadavg} once the measurements are over. */
  loadavgEnd: number[];
  /** {@link fsyncProbe} before the run, and (filled in by the caller) after it. */
  readonly fsyncStart: string;
  fsyncEnd: string;
}

/** The 1, 5 and 15 minute load averages, two decimals. */
export const loadavg = (): number[] => os.loadavg().map((l) => Number(l.toFixed(2)));

export function machineMeta(): MachineMeta {
  return {
    date: new Date().toISOString(),
    node: process.version,
    dsyncRev: gitRev(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    loadavgStart: loadavg(),
    loadavgEnd: [],
    fsyncStart: fsyncProbe(),
    fsyncEnd: "",
  };
}

/**
 * The disk right now: 128-byte appends each followed by fdatasync, in the temp dir the servers
 * use, for up to 200 appends or 1 s. Other work on a shared machine shows here first (the quiet
 * machine does 6,000–8,600/s, /work/shared/BENCHMARKS.md).
 */
export function fsyncProbe(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "dsync-bench-fsync-"));
  try {
    const fd = openSync(path.join(dir, "probe"), "a");
    const buf = Buffer.alloc(128, 7);
    const lat: number[] = [];
    const t0 = performance.now();
    while (lat.length < 200 && performance.now() - t0 < 1000) {
      const a = performance.now();
      writeSync(fd, buf);
      fdatasyncSync(fd);
      lat.push(performance.now() - a);
    }
    const elapsedMs = performance.now() - t0;
    closeSync(fd);
    lat.sort((a, b) => a - b);
    const at = (q: number): string => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!.toFixed(2);
    return `${Math.round((lat.length / elapsedMs) * 1000)}/s (p50 ${at(0.5)} ms, p99 ${at(0.99)} ms)`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** "date · node · CPUs · load at start · dsync revision", for a report's header. */
export function machineLine(m: MachineMeta): string {
  return `${m.date} · node ${m.node} · ${m.cpus}× ${m.cpuModel} · load ${m.loadavgStart.join(" ")} · dsync ${m.dsyncRev}`;
}

/**
 * Call once the run's servers are stopped. After SIGINT/SIGTERM the cleanup handler (proc.ts) is
 * already exiting the process: wait for it, so a partial report is never printed as if complete.
 */
export async function exitIfInterrupted(): Promise<void> {
  if (!interruptSignal.aborted) return;
  await new Promise((r) => setTimeout(r, 10_000));
  process.exit(130);
}

/** Prints `report` with the machine-load footer, and writes `raw` to `jsonFile` when one is given. */
export function printReport(report: string, meta: MachineMeta, jsonFile: string | undefined, raw: unknown): void {
  process.stdout.write(
    `${report}load average ${meta.loadavgStart.join(" ")} → ${meta.loadavgEnd.join(" ")}; ` +
      `128 B append + fdatasync ${meta.fsyncStart} → ${meta.fsyncEnd || "–"} (figures are noisy on a shared machine; compare ratios within one run)\n`,
  );
  if (jsonFile === undefined) return;
  writeFileSync(jsonFile, JSON.stringify(raw, null, 2) + "\n");
  process.stdout.write(`raw figures written to ${jsonFile}\n`);
}
