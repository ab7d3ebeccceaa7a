/** Shrinking a failing key history to a small set that still proves the violation. */
import { lowerBound } from "./bisect.ts";
import { decide } from "./decide.ts";
import { prepare } from "./prepare.ts";
import { findPattern } from "./quick-checks.ts";
import { Kind, type Item, type KeyBudget } from "./types.ts";

/**
 * Shrinks a failing key history to a small failing subset. Every subset tried keeps, for each of
 * its reads, every op of the full history that could have supplied the read's value (the write
 * of its value; for a null read, every delete that could fall between the last write certainly
 * before it and it). If the full history were linearizable, such a subset would be too (restrict
 * the linearization to it), so the subset failing proves the full history fails: the shrunk set
 * is evidence, never an artefact of dropping the op that explained a read.
 * Order: cut a prefix, cut a suffix (both by binary search), then drop chunks of halving size.
 */
export function shrink(full: readonly Item[], budget: KeyBudget): { items: Item[]; steps: number } {
  const n = full.length;
  const sources = sourcesOf(full);
  let steps = 0;
  let checks = 0;
  const maxChecks = 400;
  const fails = (idx: readonly number[]): boolean => {
    if (checks++ >= maxChecks || steps >= budget.shrinkSteps || performance.now() > budget.deadline) return false;
    const set = prepare(idx.map((i) => full[i]!));
    if (findPattern(set, false)) return true;
    const r = decide(set, budget.engine, Math.min(200_000, budget.shrinkSteps - steps), budget.deadline);
    steps += r.steps;
    return r.verdict === "fail";
  };
  const close = (keep: boolean[]): number[] => {
    const k = keep.slice();
    for (let i = 0; i < n; i++) if (keep[i]) for (const s of sources[i]!) k[s] = true;
    const out: number[] = [];
    for (let i = 0; i < n; i++) if (k[i]) out.push(i);
    return out;
  };

  let cur = full.map((_, i) => i);
  // Prefix: the smallest start-time cut that still fails.
  const starts = [...new Set(full.map((i) => i.start))].sort((a, b) => a - b);
  let lo = 0;
  let hi = starts.length - 1;
  let best = cur;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const cand = close(full.map((it) => it.start <= starts[mid]!));
    if (fails(cand)) {
      hi = mid;
      best = cand;
    } else lo = mid + 1;
  }
  cur = best;
  // Suffix: the latest end-time cut (dropping ops that ended before it) that still fails.
  const inCur = new Array<boolean>(n).fill(false);
  for (const i of cur) inCur[i] = true;
  const ends = [...new Set(cur.map((i) => full[i]!.end).filter((t) => t !== Infinity))].sort((a, b) => a - b);
  let lo2 = -1;
  let hi2 = ends.length - 1;
  while (lo2 < hi2) {
    const mid = (lo2 + hi2 + 1) >> 1;
    const cand = close(full.map((it, i) => inCur[i]! && it.end >= ends[mid]!));
    if (fails(cand)) {
      lo2 = mid;
      best = cand;
    } else hi2 = mid - 1;
  }
  cur = best;
  // Chunks of halving size; an op some remaining read needs as a source stays.
  for (let chunk = Math.max(1, cur.length >> 1); ; chunk >>= 1) {
    for (let at = 0; at < cur.length; ) {
      const drop = new Set(cur.slice(at, at + chunk));
      const rest = cur.filter((i) => !drop.has(i));
      const needed = new Set<number>();
      for (const i of rest) for (const s of sources[i]!) needed.add(s);
      const cand = cur.filter((i) => !drop.has(i) || needed.has(i));
      if (cand.length < cur.length && fails(cand)) cur = cand;
      else at += chunk;
    }
    if (chunk <= 1 || checks >= maxChecks) break;
  }
  return { items: cur.map((i) => full[i]!), steps };
}

/** For each read, the indices of the ops that could have supplied its value (see `shrink`). */
function sourcesOf(items: readonly Item[]): number[][] {
  const mutators = items
    .map((it, i) => ({ it, i }))
    .filter((x) => x.it.kind !== Kind.Read && x.it.end !== Infinity)
    .sort((a, b) => a.it.end - b.it.end);
  let m = -Infinity;
  const maxStart = mutators.map((x) => (m = Math.max(m, x.it.start)));
  const deletes = items.map((it, i) => ({ it, i })).filter((x) => x.it.kind === Kind.Delete);
  return items.map((r) => {
    if (r.kind !== Kind.Read) return [];
    if (r.value !== 0) return items.flatMap((w, i) => (w.kind === Kind.Write && w.value === r.value ? [i] : []));
    // The latest start among mutators certainly done before r: a delete ending before it cannot be r's source.
    const j = lowerBound(mutators, r.start, (x) => x.it.end) - 1;
    const bound = j >= 0 ? maxStart[j]! : -Infinity;
    return deletes.filter((d) => d.it.start <= r.end && d.it.end >= bound).map((d) => d.i);
  });
}
