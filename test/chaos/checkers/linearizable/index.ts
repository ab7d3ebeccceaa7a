/**
 * Linearizability of a register history (KV and cache workloads).
 *
 * The history is split per key (a history is linearizable iff each key's sub-history is: the
 * P-compositionality of Horn & Kroening) and each key is decided exactly, in three layers:
 *
 * 1. Pattern checks, O(n log n), relying on write values being unique: a read of a value nobody
 *    (successfully) wrote, a read from the future, a stale read, a null read with no delete in
 *    reach. Each hit is a proof and comes with its 2–4 ops and a sentence.
 * 2. When a key's written values are unique (the workloads make them so), the cluster decision:
 *    a write and the reads of its value form a cluster, and the history is linearizable iff no
 *    two clusters must each precede the other (Gibbons & Korach); only which delete (or the
 *    initial value) a null read saw is searched. Fast at any concurrency.
 * 3. Otherwise, the Wing–Gong search with Lowe's memoization of (set of linearized ops, register
 *    value), as Porcupine does, within a step and wall-clock budget ("timeout" beyond it).
 *
 * `unknown` ops may take effect at any time after their invocation, or never; `fail` ops never
 * did; invalidates and reads with unknown outcomes constrain nothing and are dropped.
 * A failing key's history is shrunk to a small set of operations that still cannot be
 * linearized, closed under "where could each read's value have come from", so the set on its
 * own proves the violation.
 *
 * Pure: no I/O, no timers. The only clock read is the optional wall-clock budget.
 */
import type { RegisterOp } from "../../history.ts";
import { checkKey } from "./check-key.ts";
import type { KeyResult, LinearizableOptions, LinearizableResult, LinearizableViolation } from "./types.ts";

export type { KeyResult, KeyVerdict, LinearizableOptions, LinearizableResult, LinearizableViolation, LinearizableViolationKind } from "./types.ts";
export { formatLinearizable, formatOp } from "./format.ts";

/** Checks every key; see the module comment. */
export function checkLinearizable(history: readonly RegisterOp[], options: LinearizableOptions = {}): LinearizableResult {
  const t0 = performance.now();
  const deadline = t0 + (options.timeBudgetMs ?? 60_000);
  const maxSteps = options.maxStepsPerKey ?? 4_000_000;
  const fastPath = options.fastPath ?? true;
  const stats = { ops: history.length, ok: 0, fail: 0, unknown: 0, checked: 0, steps: 0, ms: 0 };

  // Values are unique per write across the whole history, so a read of another key's value is
  // named as such in the report.
  const writerOf = new Map<string, RegisterOp>();
  const byKey = new Map<string, RegisterOp[]>();
  for (const op of history) {
    stats[op.outcome]++;
    if (op.f === "write" && (writerOf.get(op.input)?.outcome ?? "fail") === "fail") writerOf.set(op.input, op);
    let list = byKey.get(op.key);
    if (!list) byKey.set(op.key, (list = []));
    list.push(op);
  }

  const perKey: KeyResult[] = [];
  const violations: LinearizableViolation[] = [];
  const timedOut: string[] = [];
  for (const [key, ops] of byKey) {
    const k0 = performance.now();
    const r = checkKey(key, ops, writerOf, { maxSteps, deadline, fastPath, engine: options.engine ?? "auto", shrinkSteps: options.shrinkSteps ?? 2_000_000 });
    stats.checked += r.checked;
    stats.steps += r.steps;
    if (r.verdict === "timeout") timedOut.push(key);
    if (r.finding) violations.push({ kind: r.finding.kind, key, message: r.finding.message, ops: r.finding.items.map((i) => i.op).sort((a, b) => a.invokeMs - b.invokeMs || a.id - b.id) });
    perKey.push({ key, ops: ops.length, checked: r.checked, verdict: r.verdict, steps: r.steps, ms: performance.now() - k0 });
  }
  stats.ms = performance.now() - t0;
  return { ok: violations.length === 0 && timedOut.length === 0, keys: byKey.size, perKey, violations, timedOut, stats };
}
