/** The cluster decision (unique written values). */
import { lowerBound } from "./bisect.ts";
import { describe, ms } from "./format.ts";
import { Kind, type Item, type SearchVerdict, type Witness } from "./types.ts";

/**
 * A write and the reads of its value; a delete and the null reads it serves; the initial value
 * and the null reads it serves. In any linearization each cluster is contiguous (a read follows
 * its write with only reads of the same value between), so the history is linearizable iff the
 * clusters can be ordered so that no op precedes, in real time, an op of an earlier cluster.
 * Cluster B must come before C when some op of B ends before some op of C begins, i.e. when
 * f(B) < s(C) with f the earliest end and s the latest start of the cluster's ops. That relation
 * has a cycle iff it has a 2-cycle (take the cluster of least f on a cycle: it must also come
 * before the cycle's last cluster), so an order exists iff no two clusters must each precede
 * the other (Gibbons & Korach's zones). Only which cluster a null read belongs to is open: that
 * is searched, per group of null reads that could interact, with memoized failures.
 */
interface Cluster {
  /** The write or delete; null for the initial value. */
  readonly mut: Item | null;
  f: number;
  s: number;
  /** The ops that set f and s (the explanation of a conflict). */
  fOp: Item | null;
  sOp: Item | null;
}

function clusterOps(c: Cluster): Item[] {
  return [...new Set([c.mut, c.fOp, c.sOp].filter((x): x is Item => x !== null))];
}

function describeCluster(c: Cluster): string {
  return c.mut === null ? "the initial value" : c.mut.kind === Kind.Delete ? `delete by ${c.mut.op.client}` : `write ${c.mut.op.input}`;
}

/** Fixed clusters sorted by f with prefix maxima of s: "some other cluster C with f(C) < s and s(C) > f" in O(log n). */
class FixedClusters {
  readonly #byF: Cluster[];
  readonly #fs: number[];
  readonly #top1: Int32Array;
  readonly #top2: Int32Array;

  constructor(clusters: readonly Cluster[]) {
    this.#byF = [...clusters].sort((a, b) => a.f - b.f);
    this.#fs = this.#byF.map((c) => c.f);
    const n = this.#byF.length;
    this.#top1 = new Int32Array(n);
    this.#top2 = new Int32Array(n);
    let t1 = -1;
    let t2 = -1;
    for (let i = 0; i < n; i++) {
      const si = this.#byF[i]!.s;
      if (t1 < 0 || si > this.#byF[t1]!.s) {
        t2 = t1;
        t1 = i;
      } else if (t2 < 0 || si > this.#byF[t2]!.s) t2 = i;
      this.#top1[i] = t1;
      this.#top2[i] = t2;
    }
  }

  /** A cluster other than `self` that must both precede and follow a cluster spanning (f, s), or null. */
  conflict(f: number, s: number, self: Cluster | null): Cluster | null {
    const n = lowerBound(this.#fs, s, (x) => x);
    if (n === 0) return null;
    let c = this.#byF[this.#top1[n - 1]!]!;
    if (c === self) {
      const j = this.#top2[n - 1]!;
      if (j < 0) return null;
      c = this.#byF[j]!;
    }
    return c.s > f ? c : null;
  }
}

class Timeout extends Error {}

export function decideClusters(items: readonly Item[], maxSteps: number, deadline: number): { verdict: SearchVerdict; steps: number; witness: Witness | null } {
  let steps = 0;
  const tick = (): void => {
    if (++steps > maxSteps || ((steps & 0x3ff) === 0 && performance.now() > deadline)) throw new Timeout();
  };
  const fail = (its: Item[], message: string) => ({ verdict: "fail" as const, steps, witness: { items: its, message } });

  const byValue = new Map<number, Cluster>();
  const writes: Cluster[] = [];
  const deletes: Cluster[] = [];
  const nullReads: Item[] = [];
  for (const it of items) {
    // Raw ends: a read that bounds an unknown write's window shows up as the cluster's fOp.
    const c: Cluster = { mut: it, f: it.op.completeMs, s: it.start, fOp: it, sOp: it };
    if (it.kind === Kind.Write) {
      byValue.set(it.value, c);
      writes.push(c);
    } else if (it.kind === Kind.Delete) deletes.push(c);
  }
  for (const r of items) {
    if (r.kind !== Kind.Read) continue;
    if (r.value === 0) {
      nullReads.push(r);
      continue;
    }
    const c = byValue.get(r.value);
    if (!c) return fail([r], `read by ${r.op.client} at ${ms(r.start)} returned ${r.op.output}, which no op here wrote`);
    if (r.end < c.mut!.start) return fail([c.mut!, r], `read by ${r.op.client} returned ${r.op.output} before its write began`);
    if (r.end < c.f) [c.f, c.fOp] = [r.end, r];
    if (r.start > c.s) [c.s, c.sOp] = [r.start, r];
  }

  // Where each null read may come from: the initial value if no mutator certainly precedes it,
  // and deletes that begin before it ends and are not certainly overwritten before it begins.
  const mutators = items.filter((i) => i.kind !== Kind.Read && i.end !== Infinity).sort((a, b) => a.end - b.end);
  let m = -Infinity;
  const maxStart = mutators.map((x) => (m = Math.max(m, x.start)));
  const initial: Cluster = { mut: null, f: -Infinity, s: -Infinity, fOp: null, sOp: null };
  const candidates: Cluster[][] = nullReads.map((r) => {
    const j = lowerBound(mutators, r.start, (x) => x.end) - 1;
    const bound = j >= 0 ? maxStart[j]! : -Infinity;
    const cs = deletes.filter((d) => d.mut!.start <= r.end && d.mut!.end >= bound).sort((a, b) => b.mut!.start - a.mut!.start);
    if (bound === -Infinity) cs.push(initial);
    return cs;
  });
  for (let i = 0; i < nullReads.length; i++) {
    if (candidates[i]!.length > 0) continue;
    const r = nullReads[i]!;
    const j = lowerBound(mutators, r.start, (x) => x.end) - 1;
    const w = mutators.slice(0, j + 1).reduce((a, b) => (b.start > a.start ? b : a));
    return fail([w, r], `read by ${r.op.client} at ${ms(r.start)} returned null but ${describe(w)} by ${w.op.client} completed at ${ms(w.end)} before it began, and no delete could fall between`);
  }

  // Clusters no null read can join are fixed: check them pairwise at once.
  const open = new Set<Cluster>(candidates.flat());
  const fixed = [...writes, ...deletes.filter((d) => !open.has(d))];
  const fx = new FixedClusters(fixed);
  const conflictMessage = (a: Cluster, b: Cluster): string =>
    `${describeCluster(a)} and ${describeCluster(b)} must each come before the other: ${a.fOp?.op.client ?? "?"}'s op ending at ${ms(a.f)} precedes ${b.sOp?.op.client ?? "?"}'s op beginning at ${ms(b.s)}, and ${b.fOp?.op.client ?? "?"}'s op ending at ${ms(b.f)} precedes ${a.sOp?.op.client ?? "?"}'s op beginning at ${ms(a.s)}`;
  for (const c of fixed) {
    const d = fx.conflict(c.f, c.s, c);
    if (d) return fail([...clusterOps(c), ...clusterOps(d)], conflictMessage(c, d));
  }
  for (const c of open) {
    const d = fx.conflict(c.f, c.s, null);
    if (d) return fail([...clusterOps(c), ...clusterOps(d)], conflictMessage(c, d));
  }

  // Group the open clusters: two interact if a read may join both, or if their widest possible
  // spans could conflict. Groups are then independent.
  const opens = [...open];
  const at = new Map(opens.map((c, i) => [c, i]));
  const parent = opens.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  const lo = opens.map((c) => c.f);
  const hi = opens.map((c) => c.s);
  for (let i = 0; i < nullReads.length; i++) {
    const r = nullReads[i]!;
    const cs = candidates[i]!;
    for (const c of cs) {
      const k = at.get(c)!;
      lo[k] = Math.min(lo[k]!, r.end);
      hi[k] = Math.max(hi[k]!, r.start);
      parent[find(k)] = find(at.get(cs[0]!)!);
    }
  }
  for (let a = 0; a < opens.length; a++) for (let b = a + 1; b < opens.length; b++) if (lo[a]! < hi[b]! && lo[b]! < hi[a]!) parent[find(a)] = find(b);
  const groups = new Map<number, number[]>();
  for (let i = 0; i < nullReads.length; i++) {
    const g = find(at.get(candidates[i]![0]!)!);
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    list.push(i);
  }

  try {
    for (const [g, reads] of groups) {
      const members = opens.filter((_, k) => find(k) === g);
      const stuck = assignNullReads(reads.map((i) => nullReads[i]!), reads.map((i) => candidates[i]!), members, fx, tick);
      if (stuck) {
        const r = stuck.read;
        const earlier = stuck.index > 0 ? ` given the ${stuck.index} null reads before it` : "";
        const options = stuck.conflicts.map(([c, o]) => `if it read from ${describeCluster(c)}, that and ${describeCluster(o)} would each have to come before the other`).join("; ");
        return { verdict: "fail", steps, witness: { items: null, message: `read by ${r.op.client} at ${ms(r.start)} returned null, but no delete or initial value can explain it${earlier}: ${options}` } };
      }
    }
  } catch (err) {
    if (err instanceof Timeout) return { verdict: "timeout", steps, witness: null };
    throw err;
  }
  return { verdict: "ok", steps, witness: null };
}

/**
 * Depth-first search for an assignment of the group's null reads (in start order) to clusters
 * such that no two clusters must each precede the other; a failed (read index, clusters' spans)
 * is remembered, which keeps the search polynomial in practice. Returns null when an assignment
 * exists, else the deepest read that could not be placed and why (for the report).
 */
function assignNullReads(
  reads: readonly Item[],
  cands: readonly Cluster[][],
  members: readonly Cluster[],
  fx: FixedClusters,
  tick: () => void,
): { read: Item; index: number; conflicts: [Cluster, Cluster][] } | null {
  let deepest = -1;
  let deepestConflicts: [Cluster, Cluster][] = [];
  const tried: [Cluster, Cluster][][] = [];
  const stuck = () => ({ read: reads[deepest]!, index: deepest, conflicts: deepestConflicts });
  const n = reads.length;
  const choice = new Int32Array(n + 1).fill(-1);
  const savedF = new Float64Array(n);
  const savedS = new Float64Array(n);
  const savedFOp: (Item | null)[] = new Array<Item | null>(n).fill(null);
  const savedSOp: (Item | null)[] = new Array<Item | null>(n).fill(null);
  const keys: string[] = new Array<string>(n).fill("");
  const failed = new Set<string>();
  const keyOf = (i: number): string => `${i}|${members.map((c) => `${c.f},${c.s}`).join("|")}`;
  const undo = (i: number): void => {
    const c = cands[i]![choice[i]!]!;
    c.f = savedF[i]!;
    c.s = savedS[i]!;
    c.fOp = savedFOp[i]!;
    c.sOp = savedSOp[i]!;
  };
  const conflictOf = (c: Cluster): Cluster | null => {
    const d = fx.conflict(c.f, c.s, null);
    if (d) return d;
    for (const o of members) if (o !== c && c.f < o.s && o.f < c.s) return o;
    return null;
  };
  let i = 0;
  let entering = true;
  for (;;) {
    tick();
    if (i === n) return null;
    if (entering) {
      entering = false;
      keys[i] = keyOf(i);
      if (failed.has(keys[i]!)) {
        choice[i] = cands[i]!.length; // exhausted before: back out without trying again
        if (--i < 0) return stuck();
        continue;
      }
    } else if (choice[i]! >= 0 && choice[i]! < cands[i]!.length) undo(i);
    let placed = false;
    if (choice[i] === -1) tried[i] = [];
    while (++choice[i]! < cands[i]!.length) {
      const c = cands[i]![choice[i]!]!;
      const r = reads[i]!;
      savedF[i] = c.f;
      savedS[i] = c.s;
      savedFOp[i] = c.fOp;
      savedSOp[i] = c.sOp;
      if (r.end < c.f) [c.f, c.fOp] = [r.end, r];
      if (r.start > c.s) [c.s, c.sOp] = [r.start, r];
      const o = conflictOf(c);
      if (!o) {
        placed = true;
        break;
      }
      tried[i]!.push([c, o]);
      undo(i);
    }
    if (placed) {
      choice[++i] = -1;
      entering = true;
      continue;
    }
    if (i > deepest && tried[i]!.length > 0) [deepest, deepestConflicts] = [i, tried[i]!];
    failed.add(keys[i]!);
    if (--i < 0) return stuck();
  }
}
