/**
 * Pattern checks (unique values). Each is sound on its own: a hit is a proof, not a hint.
 * "A precedes B" means A.end < B.start; equal times count as concurrent (the lenient reading).
 */
import { lowerBound, upperBound } from "./bisect.ts";
import { describe, ms } from "./format.ts";
import { Kind, type Finding, type Item } from "./types.ts";

/** The first violation pattern found in a prepared key history, or null. `deep` adds O(n²) ones for small sets. */
export function findPattern(items: readonly Item[], deep: boolean): Finding | null {
  const writerOf = new Map<number, Item | null>();
  for (const it of items) if (it.kind === Kind.Write) writerOf.set(it.value, writerOf.has(it.value) ? null : it);
  const reads = items.filter((i) => i.kind === Kind.Read);

  // Mutators by end, with the running max of start: the latest-starting mutator certainly
  // completed before time t is found by binary search.
  const mutators = items.filter((i) => i.kind !== Kind.Read && i.end !== Infinity).sort((a, b) => a.end - b.end);
  const writesOnly = mutators.filter((i) => i.kind === Kind.Write);
  const latestBefore = prefixArgMax(mutators);
  const latestWriteBefore = prefixArgMax(writesOnly);
  // Deletes by start, with the running max of end.
  const deletes = items.filter((i) => i.kind === Kind.Delete).sort((a, b) => a.start - b.start);
  let maxEnd = -Infinity;
  const deleteMaxEnd = deletes.map((d) => (maxEnd = Math.max(maxEnd, d.end)));

  for (const r of reads) {
    if (r.value !== 0) {
      const w = writerOf.get(r.value);
      if (!w) continue;
      if (w.start > r.end) {
        return { kind: "future-read", items: [w, r], message: `read by ${r.op.client} at ${ms(r.start)} returned ${r.op.output} but its write by ${w.op.client} began only at ${ms(w.start)}, after the read completed at ${ms(r.end)}` };
      }
      const m = latestBefore(mutators, r.start);
      if (m && m.start > w.end) {
        return {
          kind: "stale-read",
          items: [w, m, r],
          message: `read by ${r.op.client} at ${ms(r.start)} returned ${r.op.output} but ${describe(m)} by ${m.op.client} began at ${ms(m.start)} after that write completed (${ms(w.end)}) and completed at ${ms(m.end)} before the read began`,
        };
      }
    } else {
      const w = latestWriteBefore(writesOnly, r.start);
      if (!w) continue;
      // Could any delete fall between w and r? It must begin before r ends and not end before w begins.
      const d = upperBound(deletes, r.end, (x) => x.start) - 1;
      if (d < 0 || deleteMaxEnd[d]! < w.start) {
        return { kind: "null-read", items: [w, r], message: `read by ${r.op.client} at ${ms(r.start)} returned null but write ${w.op.input} by ${w.op.client} completed at ${ms(w.end)} before it began, and no delete could fall between` };
      }
    }
  }
  if (!deep || reads.length > 2_000) return null;
  // Read inversion: r1 returned b, a later r2 returned a, though a's write completed before r1
  // began. r1 puts b's write after a's; r2 then needs a's write after r1.
  for (const r1 of reads) {
    if (r1.value === 0) continue;
    for (const r2 of reads) {
      if (r2.value === 0 || r2.value === r1.value || !(r1.end < r2.start)) continue;
      const wa = writerOf.get(r2.value);
      const wb = writerOf.get(r1.value);
      if (wa && wb && wa.end < r1.start) {
        return {
          kind: "read-inversion",
          items: [wa, wb, r1, r2],
          message: `read by ${r1.op.client} at ${ms(r1.start)} returned ${r1.op.output}, so write ${wb.op.input} came after write ${wa.op.input} (completed at ${ms(wa.end)}); yet the later read by ${r2.op.client} at ${ms(r2.start)} returned ${r2.op.output}`,
        };
      }
    }
  }
  return null;
}

/** For items sorted by end: a lookup of the latest-starting item whose end is < t. */
function prefixArgMax(sorted: readonly Item[]): (list: readonly Item[], t: number) => Item | null {
  const arg: Item[] = [];
  let best: Item | null = null;
  for (const it of sorted) {
    if (!best || it.start > best.start) best = it;
    arg.push(best);
  }
  return (list, t) => {
    const i = lowerBound(list, t, (x) => x.end) - 1;
    return i >= 0 ? arg[i]! : null;
  };
}
