/**
 * The simulator as a test: many seeds with every fault enabled, replay determinism, and proof
 * that the checkers can fail (a deliberately broken node must be caught, by invariant name).
 * The value layer's own sabotage tests are in values.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SimViolation } from "./checkers.ts";
import { runSeed, type RunOptions } from "./simulate.ts";
import { Summary } from "./summary.ts";

// Every node runs the real KV, lock and queue machines and their values are checked, so a seed
// costs ~1.2–1.4× what it did with the hash chain alone: 350 × 2,000 steps keeps the ~27 s on one
// core that 500 seeds took then (`npm run sim -- --seeds 500 --all-faults` runs seeds 351–500 too).
// SIM_SEEDS/SIM_STEPS scale it for deeper runs.
const SEEDS = Number(process.env.SIM_SEEDS ?? 350);
const STEPS = Number(process.env.SIM_STEPS ?? 2000);

test("sim - seeds × steps with every fault enabled stay safe and live", () => {
  const summary = new Summary();
  const failures: SimViolation[] = [];
  const started = Date.now();
  // Run every seed even after a failure: the full list (grouped by invariant) is what a core
  // engineer needs, and it keeps the runtime measurement honest.
  for (let seed = 1; seed <= SEEDS; seed++) {
    try {
      summary.add(runSeed({ seed, steps: STEPS, allFaults: true }));
    } catch (err) {
      if (!(err instanceof SimViolation)) throw err;
      failures.push(err);
    }
  }
  console.log(summary.format(STEPS, (Date.now() - started) / 1000));
  const byInvariant = new Map<string, number[]>();
  for (const f of failures) byInvariant.set(f.invariant, [...(byInvariant.get(f.invariant) ?? []), f.seed]);
  const report = [...byInvariant].map(([inv, seeds]) => `${inv}: seeds ${seeds.join(",")}`).join("\n");
  assert.equal(failures.length, 0, `${failures.length}/${SEEDS} seeds failed\n${report}\nfirst: ${failures[0]?.message ?? ""}`);
  // The faults must actually have happened, or "clean" means nothing.
  assert.ok(summary.crashes > 0 && summary.partitions > 0 && summary.snapshotsInstalled > 0);
  assert.ok(summary.transfers > 0 && summary.confChangesProposed > 0 && summary.readsChecked > 0);
  // And the services did real work whose values were checked.
  assert.ok(summary.valueReads > 0 && summary.digestsCompared > 0);
  assert.ok(summary.lockGrants > 0 && summary.sessionExpiries > 0 && summary.queueRedelivered > 0 && summary.deadLettered > 0);
});

test("sim - a seed replays exactly", () => {
  const a = runSeed({ seed: 4242, steps: 500, allFaults: true });
  const b = runSeed({ seed: 4242, steps: 500, allFaults: true });
  assert.deepEqual(a, b);
});

/**
 * The environment for the sabotage tests: in-order links without duplication, whole-snapshot
 * chunks and no membership changes, so that core issues found on those paths (snapshot-chunk
 * message storms, re-added learners stuck on a snapshot) cannot throw first and hide whether the
 * checker under test fires.
 */
const QUIET_PATHS = { fifoLinks: true, dupRate: 0, snapshotChunkBytes: 1 << 16, confChangeRate: 0 } as const;

/** Run seeds until one throws; return the violation (or undefined if none did). */
function firstViolation(opts: Omit<RunOptions, "seed">, seeds: number): SimViolation | undefined {
  for (let seed = 1; seed <= seeds; seed++) {
    try {
      runSeed({ ...opts, seed });
    } catch (err) {
      if (err instanceof SimViolation) return err;
      throw err;
    }
  }
  return undefined;
}

test("sim - checkers catch a node that grants a second vote in the same term", () => {
  const v = firstViolation({ steps: STEPS, allFaults: true, overrides: { ...QUIET_PATHS, preVote: false }, sabotage: { forgeVotesFrom: "n1" } }, 50);
  assert.ok(v, "a double-voting node went unnoticed for 50 seeds");
  console.log(`caught: ${v.message}`);
  assert.equal(v.invariant, "ElectionSafety");
  assert.match(v.message, /invariant=ElectionSafety/);
  assert.match(v.message, /SEED=\d+ step=\d+/);
});

test("sim - checkers catch a node that applies a corrupted entry", () => {
  const v = firstViolation({ steps: 300, overrides: QUIET_PATHS, sabotage: { corruptApply: { node: "n2", index: 5 } } }, 20);
  assert.ok(v, "a corrupted apply went unnoticed for 20 seeds");
  console.log(`caught: ${v.message}`);
  assert.equal(v.invariant, "StateMachineSafety");
  assert.match(v.message, /invariant=StateMachineSafety nodes=\[.*n2.*\]/);
});

test("sim - checkers catch a disk that corrupts a durable entry", () => {
  const v = firstViolation({ steps: 300, overrides: QUIET_PATHS, sabotage: { corruptDisk: { node: "n3", index: 4 } } }, 20);
  assert.ok(v, "a corrupted durable entry went unnoticed for 20 seeds");
  console.log(`caught: ${v.message}`);
  assert.equal(v.invariant, "LogMatching");
  assert.match(v.message, /invariant=LogMatching nodes=\[.*n3.*\]/);
});

test("sim - checkers catch followers serving reads from their local commit index", () => {
  const v = firstViolation({ steps: STEPS, allFaults: true, overrides: { ...QUIET_PATHS, readRate: 0.2 }, sabotage: { localReads: true } }, 50);
  assert.ok(v, "stale follower reads went unnoticed for 50 seeds");
  console.log(`caught: ${v.message}`);
  assert.equal(v.invariant, "Linearizability");
});
