/**
 * The deterministic cluster simulator: the Raft core under crashes, partitions, loss, reordering
 * and membership changes, with every node applying its committed log to the real KV register,
 * lock manager and queue machines; clients read KV values through ReadIndex, and the checkers
 * compare values (not only indexes) with a reference model of the committed log.
 *
 * CLI: `npm run sim -- --seeds N [--from S] [--steps M] [--nodes 3|5]` runs seeds `[S, S + N)`;
 * `--tolerate-storms` treats a full link buffer as loss instead of a violation.
 * `--all-faults` never draws a zero rate for a fault kind.
 * `--full-checks` runs the lock/queue invariants and the queue model check on every node after
 * every apply (by default: on the node applying an entry first, at checkpoints and after restores).
 * `npm run sim -- --seed S` (or `SEED=S npm run sim`) replays one seed and prints its scenario.
 * `--keep-going` runs every seed and ends with the failing seeds grouped by invariant.
 * Exit code 1 on a violation (the first, unless --keep-going); its message names seed, step,
 * invariant and nodes, and the exact replay command.
 */
import { parseArgs } from "node:util";
import { SimViolation } from "./checkers.ts";
import { drawScenario, formatScenario, type ScenarioOverrides } from "./scenario.ts";
import { runSeed, type RunResult } from "./simulate.ts";
import { Summary } from "./summary.ts";

const { values } = parseArgs({
  options: {
    seeds: { type: "string" },
    from: { type: "string" },
    seed: { type: "string" },
    steps: { type: "string" },
    nodes: { type: "string" },
    verbose: { type: "boolean", short: "v" },
    "all-faults": { type: "boolean" },
    "full-checks": { type: "boolean" },
    "tolerate-storms": { type: "boolean" },
    "keep-going": { type: "boolean" },
  },
});

function int(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) {
    console.error(`--${name} must be an integer, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

const steps = int("steps", values.steps, 2000);
const overrides: ScenarioOverrides = {};
if (values.nodes !== undefined) {
  const nodes = int("nodes", values.nodes, 3);
  if (nodes !== 3 && nodes !== 5) {
    console.error("--nodes must be 3 or 5");
    process.exit(2);
  }
  Object.assign(overrides, { nodes });
}
if (values["tolerate-storms"] === true) Object.assign(overrides, { tolerateStorms: true });
const single = values.seed ?? process.env.SEED;
const seeds: number[] = single !== undefined
  ? [int("seed", single, 0)]
  : Array.from({ length: int("seeds", values.seeds, 100) }, (_, i) => int("from", values.from, 1) + i);
const allFaults = values["all-faults"] === true;
const fullChecks = values["full-checks"] === true;
const verbose = values.verbose === true || single !== undefined;

const keepGoing = values["keep-going"] === true;

const summary = new Summary();
const failures = new Map<string, number[]>();
const started = Date.now();
let lastProgress = started;
for (const [i, seed] of seeds.entries()) {
  let res: RunResult | undefined;
  try {
    res = runSeed({ seed, steps, overrides, allFaults, fullChecks });
  } catch (err) {
    if (!(err instanceof SimViolation)) throw err;
    console.error(`\nFAIL ${err.message}`);
    // Drawing is pure, so re-drawing gives exactly the failing run's options.
    console.error(`SEED=${seed} ${formatScenario(drawScenario(seed, overrides, { allFaults }))}`);
    if (!keepGoing) process.exit(1);
    const list = failures.get(err.invariant) ?? [];
    list.push(seed);
    failures.set(err.invariant, list);
  }
  if (res) {
    summary.add(res);
    if (verbose) {
      console.log(`SEED=${seed} ${formatScenario(res.scenario)}`);
      console.log(`  ok: elections=${res.elections} commit=${res.commitIndex} crashes=${res.stats.crashes} snapshotsInstalled=${res.stats.snapshotsInstalled} liveness=${res.livenessSteps} steps`);
      const sv = res.services;
      console.log(`  values: reads=${res.stats.valueReads} commands(kv/lock/queue)=${res.stats.kvCommands}/${res.stats.lockCommands}/${res.stats.queueCommands} expires=${res.stats.expiresProposed} ` +
        `lock(grants/deadlocks/sessionExpiries)=${sv.grants}/${sv.deadlocks}/${sv.sessionExpiries} queue(delivered/acked/redelivered/deadLettered)=${sv.delivered}/${sv.acked}/${sv.redelivered}/${sv.deadLettered} digestsCompared=${res.digestsCompared}`);
    }
  }
  const now = Date.now();
  if (!verbose && (now - lastProgress > 2000 || i === seeds.length - 1)) {
    lastProgress = now;
    const failed = [...failures.values()].reduce((a, l) => a + l.length, 0);
    console.log(`[${i + 1}/${seeds.length}] SEED=${seed} ok=${summary.seeds} failed=${failed}  ${((now - started) / 1000).toFixed(1)}s`);
  }
}
console.log(`${summary.format(steps, (Date.now() - started) / 1000)} (clean seeds only)`);
if (failures.size > 0) {
  for (const [inv, list] of failures) {
    console.log(`FAILED ${inv}: ${list.length} seeds: ${list.slice(0, 30).join(",")}${list.length > 30 ? ",…" : ""}`);
  }
  process.exit(1);
}
