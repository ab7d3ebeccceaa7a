/** Report text: times, ops and the verdict as lines. */
import type { RegisterOp } from "../../history.ts";
import { Kind, type Item, type LinearizableResult } from "./types.ts";

export function ms(t: number): string {
  return t === Infinity ? "?" : `${t.toFixed(1)}ms`;
}

export function describe(it: Item): string {
  return it.kind === Kind.Delete ? "delete" : `write ${it.op.input}`;
}

/** One op as a report line: `#12 c3 read -> v17 [1523.2ms, 1530.0ms] ok`. */
export function formatOp(op: RegisterOp): string {
  const what = op.f === "write" ? `write ${op.input}` : op.f === "read" ? `read -> ${op.outcome === "ok" ? String(op.output ?? null) : "?"}` : op.f;
  return `#${op.id} ${op.client} ${what} [${ms(op.invokeMs)}, ${ms(op.completeMs)}] ${op.outcome}${op.error ? ` (${op.error})` : ""}`;
}

/** A few report lines: the verdict, counts, and each violation with its explaining ops. */
export function formatLinearizable(r: LinearizableResult, maxOpsPerViolation = 12): string[] {
  const s = r.stats;
  const lines = [
    `linearizability: ${r.violations.length === 0 ? (r.timedOut.length === 0 ? "OK" : "UNDECIDED") : "VIOLATED"} over ${r.keys} keys; ${s.ops} ops (ok ${s.ok}, fail ${s.fail}, unknown ${s.unknown}), ${s.checked} checked, ${s.steps} search steps in ${s.ms.toFixed(0)} ms`,
  ];
  if (r.timedOut.length > 0) lines.push(`  search budget exceeded (not verified) on: ${r.timedOut.join(", ")}`);
  for (const v of r.violations) {
    lines.push(`  ${v.kind} on ${v.key}: ${v.message}`);
    for (const op of v.ops.slice(0, maxOpsPerViolation)) lines.push(`    ${formatOp(op)}`);
    if (v.ops.length > maxOpsPerViolation) lines.push(`    … ${v.ops.length - maxOpsPerViolation} more ops`);
  }
  return lines;
}
