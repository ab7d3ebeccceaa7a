/**
 * The simulator's value layer: every node runs the real KV register, lock manager and queue
 * machines on its committed log, clients read KV values through ReadIndex, and the checkers
 * compare what was read (and what every machine holds) with a reference model of the log. These
 * tests prove those checkers can fail: a broken read path and a machine that misses an entry must
 * be caught, by invariant name, within a bounded number of seeds — and the normal path passes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SimViolation } from "./checkers.ts";
import { runSeed, type RunOptions } from "./simulate.ts";

/** Seeds a sabotage may take to be caught. */
const SEEDS = 30;

/**
 * As in sim.test.ts: in-order links without duplication, whole-snapshot chunks and no membership
 * changes, so that core issues found on those paths cannot throw first and hide the checker under test.
 */
const QUIET_PATHS = { fifoLinks: true, dupRate: 0, snapshotChunkBytes: 1 << 16, confChangeRate: 0 } as const;

/** Run seeds 1.. until one throws; return the violation and how many seeds ran. */
function firstViolation(opts: Omit<RunOptions, "seed">, seeds: number): { v: SimViolation | undefined; ran: number } {
  for (let seed = 1; seed <= seeds; seed++) {
    try {
      runSeed({ ...opts, seed });
    } catch (err) {
      if (err instanceof SimViolation) return { v: err, ran: seed };
      throw err;
    }
  }
  return { v: undefined, ran: seeds };
}

const READS: Omit<RunOptions, "seed"> = { steps: 1000, allFaults: true, overrides: { ...QUIET_PATHS, readRate: 0.2 } };

test("sim values - followers answering KV reads from their own machines without ReadIndex are caught by the value checker", () => {
  const { v, ran } = firstViolation({ ...READS, sabotage: { staleValueReads: true } }, SEEDS);
  assert.ok(v, `stale follower reads went unnoticed for ${SEEDS} seeds`);
  console.log(`caught on seed ${v.seed}: ${v.message}`);
  assert.equal(v.invariant, "ReadValue");
  assert.match(v.message, /invariant=ReadValue/);
  assert.match(v.message, /SEED=\d+ step=\d+/);
  // The same seeds through ReadIndex pass: it is the read path the checker caught, not the run.
  for (let seed = 1; seed <= ran; seed++) {
    const r = runSeed({ ...READS, seed });
    assert.ok(r.stats.valueReads > 0, `seed ${seed} answered no reads`);
  }
});

test("sim values - the normal read path passes with reads at every node, and values are checked", () => {
  let valueReads = 0;
  for (let seed = 1; seed <= 10; seed++) valueReads += runSeed({ ...READS, seed, fullChecks: true }).stats.valueReads;
  assert.ok(valueReads > 100, `only ${valueReads} reads were answered and checked`);
});

test("sim values - a node whose machines miss one committed entry is caught against the reference model or its peers", () => {
  const { v } = firstViolation({ steps: 600, overrides: QUIET_PATHS, sabotage: { skipServiceApply: { node: "n2", index: 9 } } }, SEEDS);
  assert.ok(v, `a machine that skipped an entry went unnoticed for ${SEEDS} seeds`);
  console.log(`caught: ${v.message}`);
  assert.ok(v.invariant === "ReferenceModel" || v.invariant === "StateDigest", `caught as ${v.invariant}`);
  assert.match(v.message, /n2/);
});
