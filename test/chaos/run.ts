/**
 * `npm run chaos -- --workload kv|locks|queue|cache|all --seconds N --seed S --nodes 3|5
 *   [--faults kill,pause,partition,delay,disk,clock,restart,move] [--keep] [--dir D]
 *   [--cache-store embedded|redis] [--cache-write-policy write-back|write-through] [--tls] [--idle-gaps]`
 *
 * Starts real dsyncd processes on loopback, drives the workloads, injects faults, heals, checks
 * the histories and prints a report. Exit status 1 on any violation, 2 on bad arguments.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { WORKLOADS, cleanUp, runCampaign, type WorkloadName } from "./campaign.ts";
import { ALL_FAULT_KINDS, type FaultKind } from "./nemesis.ts";

function list<T extends string>(allowed: readonly T[], what: string, allName: string | null) {
  return (v: string): T[] => {
    if (allName !== null && v === allName) return [...allowed];
    const items = v.split(",").map((s) => s.trim()).filter(Boolean);
    if (v === "none") return [];
    for (const i of items) if (!(allowed as readonly string[]).includes(i)) throw new InvalidArgumentError(`unknown ${what} "${i}"; choose from ${allowed.join(", ")}${allName ? ` or ${allName}` : ""}`);
    return items as T[];
  };
}

function int(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer in [${min}, ${max}]`);
    return n;
  };
}

const program = new Command("chaos")
  .description("fault campaign against a real local dsync cluster: faults, workloads, history checks")
  .addOption(new Option("--workload <names>", "kv, locks, queue, cache, backup, a comma list, or all").default(["kv", "locks", "queue", "cache", "backup"], "all").argParser(list(WORKLOADS, "workload", "all")))
  .option("--seconds <n>", "how long faults are injected", int(1, 24 * 3600), 60)
  .option("--seed <n>", "seed of the fault schedule and the workloads (printed; replays the same choices)", int(0, 2 ** 31 - 1))
  .addOption(new Option("--nodes <n>", "cluster size").choices(["3", "5"]).default("3"))
  .addOption(new Option("--faults <kinds>", `comma list of ${ALL_FAULT_KINDS.join(", ")}, or none (move: replica moves between nodes; needs --nodes 5, as 3 nodes hold every partition)`).default([...ALL_FAULT_KINDS], "all").argParser(list(ALL_FAULT_KINDS, "fault", "all")))
  .addOption(new Option("--cache-store <store>", "the cache's backing store: embedded, or redis (a private redis-server, appendfsync always)").choices(["embedded", "redis"]).default("embedded"))
  .addOption(new Option("--cache-write-policy <policy>", "the nodes' CACHE_WRITE_POLICY").choices(["write-back", "write-through"]).default("write-through"))
  .option("--tls", "TLS on every port (mutual TLS between nodes), clients authenticated by a signed token with a role", false)
  .option("--idle-gaps", "no client operation for 600 ms of every 3 s, so the Raft groups go quiet and faults also hit quiet groups", false)
  .option("--keep", "keep the run folder (history, timeline, logs) even when the run passes", false)
  .option("--dir <path>", "run folder (default: a new one under the temp folder)")
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

program.parse();
const o = program.opts<{ workload: WorkloadName[]; seconds: number; seed?: number; nodes: string; faults: FaultKind[]; keep: boolean; tls: boolean; idleGaps: boolean; dir?: string; cacheStore: "embedded" | "redis"; cacheWritePolicy: "write-back" | "write-through" }>();
const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
const result = await runCampaign({ workloads: o.workload, seconds: o.seconds, seed, nodes: o.nodes === "5" ? 5 : 3, faults: o.faults, keep: o.keep, cacheStore: o.cacheStore, cacheWritePolicy: o.cacheWritePolicy, tls: o.tls, ...(o.idleGaps && { idleGaps: [3000, 600] as const }), ...(o.dir !== undefined && { dir: o.dir }) });
await cleanUp(result, o.keep);
if (result.ok && !o.keep) process.stdout.write(`(run folder removed; --keep keeps it)\n`);
process.exit(result.ok ? 0 : 1);
