/** One key's verdict: bad reads, then the pattern checks, then the exact decision, then shrinking. */
import type { RegisterOp } from "../../history.ts";
import { decide } from "./decide.ts";
import { ms } from "./format.ts";
import { prepare, withVia } from "./prepare.ts";
import { findPattern } from "./quick-checks.ts";
import { shrink } from "./shrink.ts";
import { Kind, type Finding, type Item, type KeyBudget, type KeyVerdict } from "./types.ts";

export function checkKey(
  key: string,
  ops: readonly RegisterOp[],
  writerOf: ReadonlyMap<string, RegisterOp>,
  budget: KeyBudget,
): { verdict: KeyVerdict; checked: number; steps: number; finding: Finding | null } {
  // Value indices for this key; 0 = null.
  const index = new Map<string, number>();
  const idx = (v: string): number => {
    let i = index.get(v);
    if (i === undefined) index.set(v, (i = index.size + 1));
    return i;
  };
  const raw: Item[] = [];
  const badReads: RegisterOp[] = [];
  for (const op of ops) {
    // A failed op certainly did not happen; an invalidate never changes the value, so it always
    // linearizes; a read with an unknown outcome observed nothing.
    if (op.outcome === "fail" || op.f === "invalidate") continue;
    if (op.f === "read") {
      if (op.outcome !== "ok") continue;
      const out = op.output ?? null;
      if (out !== null && writerOf.get(out)?.key !== key) {
        badReads.push(op);
        continue;
      }
      if (out !== null && writerOf.get(out)?.outcome === "fail") {
        badReads.push(op);
        continue;
      }
      raw.push({ op, kind: Kind.Read, value: out === null ? 0 : idx(out), start: op.invokeMs, end: op.completeMs });
    } else if (op.f === "write") {
      raw.push({ op, kind: Kind.Write, value: idx(op.input), start: op.invokeMs, end: op.completeMs });
    } else {
      raw.push({ op, kind: Kind.Delete, value: 0, start: op.invokeMs, end: op.completeMs });
    }
  }
  if (badReads.length > 0) {
    // Fast path of unique values: a read must read from the write of its value.
    const r = badReads[0]!;
    const out = r.output ?? "";
    const w = writerOf.get(out);
    const why = !w ? "a value never written" : w.key !== key ? `a value written to key ${w.key}` : `a value whose write certainly failed (${w.error ?? "fail"})`;
    const more = badReads.length > 1 ? ` (and ${badReads.length - 1} more such reads)` : "";
    const items: Item[] = [{ op: r, kind: Kind.Read, value: 0, start: r.invokeMs, end: r.completeMs }];
    if (w) items.push({ op: w, kind: Kind.Write, value: 0, start: w.invokeMs, end: w.completeMs });
    return { verdict: "violation", checked: raw.length, steps: 0, finding: { kind: "unknown-value", items, message: `read by ${r.client} at ${ms(r.invokeMs)} returned ${out}, ${why}${more}` } };
  }

  const items = prepare(raw);
  if (budget.fastPath) {
    // A pattern's ops are already a minimal explaining set.
    const p = findPattern(items, false);
    if (p) return { verdict: "violation", checked: items.length, steps: 0, finding: { ...p, items: withVia(p.items) } };
  }
  const d = decide(items, budget.engine, budget.maxSteps, budget.deadline);
  let steps = d.steps;
  if (d.verdict !== "fail") return { verdict: d.verdict, checked: items.length, steps, finding: null };

  let set: Item[];
  let why = d.witness;
  if (d.witness?.items) set = prepare(withVia(d.witness.items));
  else {
    const shrunk = shrink(items, budget);
    steps += shrunk.steps;
    set = prepare(shrunk.items);
    why = decide(set, "auto", budget.shrinkSteps, Infinity).witness ?? why;
  }
  const pattern = findPattern(set, true);
  const finding: Finding = pattern
    ? { ...pattern, items: withVia(pattern.items) }
    : { kind: "not-linearizable", items: set, message: why?.message ?? `no order of these ${set.length} operations respects their real-time order and a single register's semantics` };
  return { verdict: "violation", checked: items.length, steps, finding };
}
