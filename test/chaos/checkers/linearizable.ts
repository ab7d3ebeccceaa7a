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
import type { RegisterOp } from "../history.ts";

export interface LinearizableOptions {
  /** Search steps (either engine) allowed per key before its verdict is "timeout" (default 4,000,000). */
  readonly maxStepsPerKey?: number;
  /** Wall-clock budget for the whole check, search and shrinking together (default 60 s). */
  readonly timeBudgetMs?: number;
  /** Run the pattern checks before the decision (default true; off only to test the rest). */
  readonly fastPath?: boolean;
  /**
   * "auto" (default): the cluster decision for keys whose written values are unique, the
   * Wing–Gong search otherwise; "search": the search for every key (to cross-check the two).
   */
  readonly engine?: "auto" | "search";
  /** Search steps allowed for shrinking one failing key (default 2,000,000). */
  readonly shrinkSteps?: number;
}

export type KeyVerdict = "ok" | "violation" | "timeout";

export interface KeyResult {
  readonly key: string;
  /** Operations recorded on the key. */
  readonly ops: number;
  /** Operations that constrain the register (after dropping failed ops, unknown reads, invalidates and unread unknown writes). */
  readonly checked: number;
  readonly verdict: KeyVerdict;
  readonly steps: number;
  readonly ms: number;
}

export type LinearizableViolationKind = "unknown-value" | "future-read" | "stale-read" | "null-read" | "read-inversion" | "not-linearizable";

export interface LinearizableViolation {
  readonly kind: LinearizableViolationKind;
  readonly key: string;
  readonly message: string;
  /** The smallest explaining set found, in invocation order. */
  readonly ops: RegisterOp[];
}

export interface LinearizableResult {
  /** No violation and no key left undecided. */
  readonly ok: boolean;
  readonly keys: number;
  readonly perKey: KeyResult[];
  readonly violations: LinearizableViolation[];
  /** Keys whose decision ran out of budget: neither proven nor refuted (so `ok` is false). */
  readonly timedOut: string[];
  readonly stats: { ops: number; ok: number; fail: number; unknown: number; checked: number; steps: number; ms: number };
}

const enum Kind {
  Write = 0,
  Delete = 1,
  Read = 2,
}

/** One operation as the search sees it. `value` is a per-key index: 0 is null (absent). */
interface Item {
  readonly op: RegisterOp;
  readonly kind: Kind;
  readonly value: number;
  readonly start: number;
  /** Latest moment the op can take effect: completeMs, or earlier for an unknown write that was read. */
  readonly end: number;
  /** The read whose completion set `end` below completeMs: part of any explanation using `end`. */
  readonly via?: Item;
}

type Finding = { kind: LinearizableViolationKind; items: Item[]; message: string };

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

interface KeyBudget {
  readonly maxSteps: number;
  readonly deadline: number;
  readonly fastPath: boolean;
  readonly engine: "auto" | "search";
  readonly shrinkSteps: number;
}

function checkKey(
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

/** The exact decision for one key: clusters when written values are unique, else the search. */
function decide(items: readonly Item[], engine: "auto" | "search", maxSteps: number, deadline: number): { verdict: SearchVerdict; steps: number; witness: Witness | null } {
  if (engine === "auto") {
    const seen = new Set<number>();
    let unique = true;
    for (const it of items) {
      if (it.kind !== Kind.Write) continue;
      if (seen.has(it.value)) unique = false;
      seen.add(it.value);
    }
    if (unique) return decideClusters(items, maxSteps, deadline);
  }
  return { ...search(items, maxSteps, deadline), witness: null };
}

/** A pattern's ops plus the reads that bounded their windows, so the set proves itself. */
function withVia(items: readonly Item[]): Item[] {
  const out = new Set<Item>();
  for (const it of items) {
    out.add(it);
    if (it.via) out.add(it.via);
  }
  return [...out];
}

/**
 * Drops unknown writes that no read returned (taking effect never is always a valid choice for
 * them, and it changes nothing a read could see) and tightens the window of the others: an unknown
 * write whose unique value was read took effect before the earliest such read completed. Both
 * keep the verdict exact and spare the search ops whose window never closes.
 */
function prepare(items: readonly Item[]): Item[] {
  const writes = new Map<number, number>();
  const firstRead = new Map<number, Item>();
  for (const it of items) {
    if (it.kind === Kind.Write) writes.set(it.value, (writes.get(it.value) ?? 0) + 1);
    else if (it.kind === Kind.Read && it.value !== 0 && it.op.completeMs < (firstRead.get(it.value)?.op.completeMs ?? Infinity)) firstRead.set(it.value, it);
  }
  const out: Item[] = [];
  const untightened = (it: Item): Item => (it.end === it.op.completeMs && !it.via ? it : { op: it.op, kind: it.kind, value: it.value, start: it.start, end: it.op.completeMs });
  for (const it of items) {
    if (it.kind !== Kind.Write) {
      out.push(untightened(it));
      continue;
    }
    const read = firstRead.get(it.value);
    if (!read) {
      if (it.op.completeMs !== Infinity) out.push(untightened(it));
      continue;
    }
    if (writes.get(it.value) !== 1 || it.op.completeMs <= read.op.completeMs) out.push(untightened(it));
    else out.push(it.via === read && it.end === read.op.completeMs ? it : { op: it.op, kind: it.kind, value: it.value, start: it.start, end: read.op.completeMs, via: read });
  }
  return out.sort((a, b) => a.start - b.start || a.op.id - b.op.id);
}

// ---------------------------------------------------------------------------------------------
// Pattern checks (unique values). Each is sound on its own: a hit is a proof, not a hint.
// "A precedes B" means A.end < B.start; equal times count as concurrent (the lenient reading).

/** The first violation pattern found in a prepared key history, or null. `deep` adds O(n²) ones for small sets. */
function findPattern(items: readonly Item[], deep: boolean): Finding | null {
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

/** First index whose key is >= t. */
function lowerBound<T>(a: readonly T[], t: number, key: (x: T) => number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (key(a[mid]!) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index whose key is > t. */
function upperBound<T>(a: readonly T[], t: number, key: (x: T) => number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (key(a[mid]!) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---------------------------------------------------------------------------------------------
// The search.

type SearchVerdict = "ok" | "fail" | "timeout";

/**
 * Wing–Gong with Lowe's cache. Call and return events sit in one time-ordered doubly linked list;
 * the search walks it from the head, linearizing ("lifting") an op at its call when the register
 * allows it and the resulting (linearized set, value) has not been explored, and backtracking when
 * it reaches the return of an op it has not linearized. Ops whose window never closes (unknown
 * deletes) have no return event: they are optional, and the search succeeds as soon as every op
 * with a return is linearized (the rest take effect "never", equivalently at the end).
 */
function search(items: readonly Item[], maxSteps: number, deadline: number): { verdict: SearchVerdict; steps: number } {
  const required = items.filter((i) => i.end !== Infinity);
  const optional = items.filter((i) => i.end === Infinity);
  const nReq = required.length;
  const n = items.length;
  if (nReq === 0) return { verdict: "ok", steps: 0 };
  // Bit b < nReq: required op b (in start order, so the linearized set is mostly a dense prefix);
  // bit b >= nReq: optional op, kept in a separate small bitset.
  const byBit = [...required, ...optional];
  const kind = new Uint8Array(n);
  const value = new Int32Array(n);
  for (let b = 0; b < n; b++) {
    kind[b] = byBit[b]!.kind;
    value[b] = byBit[b]!.value;
  }

  // Entries: 0 head, 1..n calls (bit b -> b+1), n+1..n+nReq returns (bit b -> n+1+b), tail last.
  const tail = n + nReq + 1;
  const nextE = new Int32Array(tail + 1);
  const prevE = new Int32Array(tail + 1);
  const order: number[] = [];
  const time = new Float64Array(tail + 1);
  for (let b = 0; b < n; b++) {
    order.push(b + 1);
    time[b + 1] = byBit[b]!.start;
    if (b < nReq) {
      order.push(n + 1 + b);
      time[n + 1 + b] = byBit[b]!.end;
    }
  }
  // Calls before returns at equal times: ops that touch are concurrent.
  order.sort((x, y) => time[x]! - time[y]! || (x <= n ? 0 : 1) - (y <= n ? 0 : 1) || x - y);
  let p = 0;
  for (const e of order) {
    nextE[p] = e;
    prevE[e] = p;
    p = e;
  }
  nextE[p] = tail;
  prevE[tail] = p;

  const reqWords = new Uint32Array((nReq + 31) >>> 5);
  const optWords = new Uint32Array((n - nReq + 31) >>> 5);
  const z1 = new Uint32Array(n);
  const z2 = new Uint32Array(n);
  const seed = { s: 0x2545f491 };
  for (let b = 0; b < n; b++) {
    z1[b] = mix32(seed);
    z2[b] = mix32(seed);
  }
  let h1 = 0;
  let h2 = 0;
  let lo = 0; // first required word not all ones
  let hi = -1; // last required word not zero
  const toggle = (b: number, on: boolean): void => {
    h1 = (h1 ^ z1[b]!) >>> 0;
    h2 = (h2 ^ z2[b]!) >>> 0;
    if (b >= nReq) {
      const o = b - nReq;
      optWords[o >>> 5] = on ? optWords[o >>> 5]! | (1 << (o & 31)) : optWords[o >>> 5]! & ~(1 << (o & 31));
      return;
    }
    const w = b >>> 5;
    if (on) {
      reqWords[w] = reqWords[w]! | (1 << (b & 31));
      if (w > hi) hi = w;
      while (lo < reqWords.length && reqWords[lo] === 0xffffffff) lo++;
    } else {
      reqWords[w] = reqWords[w]! & ~(1 << (b & 31));
      if (w < lo) lo = w;
      while (hi >= 0 && reqWords[hi] === 0) hi--;
    }
  };
  const cache = new ConfigCache();
  const stackBit = new Int32Array(n);
  const stackState = new Int32Array(n);
  let sp = 0;
  let state = 0;
  let remaining = nReq;
  let steps = 0;
  let e = nextE[0]!;
  const unlink = (x: number): void => {
    nextE[prevE[x]!] = nextE[x]!;
    prevE[nextE[x]!] = prevE[x]!;
  };
  const relink = (x: number): void => {
    nextE[prevE[x]!] = x;
    prevE[nextE[x]!] = x;
  };

  for (;;) {
    if (++steps > maxSteps || ((steps & 0x3ff) === 0 && performance.now() > deadline)) return { verdict: "timeout", steps };
    if (e !== tail && e <= n) {
      const b = e - 1;
      const k = kind[b]!;
      const next = k === Kind.Write ? value[b]! : k === Kind.Delete ? 0 : state;
      if (k !== Kind.Read || state === value[b]) {
        toggle(b, true);
        if (cache.add(h1, h2, next, lo, reqWords, hi, optWords)) {
          stackBit[sp] = b;
          stackState[sp++] = state;
          state = next;
          unlink(e);
          if (b < nReq) {
            unlink(n + 1 + b);
            if (--remaining === 0) return { verdict: "ok", steps };
          }
          e = nextE[0]!;
          continue;
        }
        toggle(b, false);
      }
      e = nextE[e]!;
      continue;
    }
    // A return of an op not yet linearized (or, defensively, the list's end): undo the last lift.
    // Undoing a read also undoes the lift before it: a read that matched the value could always
    // go first (it changes nothing and no pending op had to precede it), so if nothing works
    // after it, nothing works from the configuration it was lifted in.
    let b: number;
    do {
      if (sp === 0) return { verdict: "fail", steps };
      b = stackBit[--sp]!;
      state = stackState[sp]!;
      toggle(b, false);
      if (b < nReq) {
        relink(n + 1 + b);
        remaining++;
      }
      relink(b + 1);
    } while (kind[b] === Kind.Read);
    e = nextE[b + 1]!;
  }
}

/**
 * The set of explored (linearized set, value) configurations: open addressing over flat typed
 * arrays, because millions of small per-entry objects would cost more memory than the search.
 * A configuration is stored as its hashes, value, the index of the first required word not yet
 * full, the required words from there to the last non-zero one, and the optional words.
 */
class ConfigCache {
  #slots = new Int32Array(1 << 12);
  #count = 0;
  #arena = new Uint32Array(1 << 14);
  #top = 0;

  add(h1: number, h2: number, state: number, lo: number, req: Uint32Array, hi: number, opt: Uint32Array): boolean {
    const len = hi >= lo ? hi - lo + 1 : 0;
    const a = this.#arena;
    const mask = this.#slots.length - 1;
    let i = slotOf(h1, state) & mask;
    for (;;) {
      const s = this.#slots[i]!;
      if (s === 0) break;
      const off = s - 1;
      if (a[off] === h1 && a[off + 1] === h2 && a[off + 2] === state && a[off + 3] === lo && a[off + 4] === len && sameWords(a, off + 5, req, lo, len, opt)) return false;
      i = (i + 1) & mask;
    }
    const size = 5 + len + opt.length;
    if (this.#top + size > this.#arena.length) {
      const bigger = new Uint32Array(Math.max(this.#arena.length * 2, this.#top + size));
      bigger.set(this.#arena);
      this.#arena = bigger;
    }
    const b = this.#arena;
    const off = this.#top;
    b[off] = h1;
    b[off + 1] = h2;
    b[off + 2] = state;
    b[off + 3] = lo;
    b[off + 4] = len;
    for (let j = 0; j < len; j++) b[off + 5 + j] = req[lo + j]!;
    b.set(opt, off + 5 + len);
    this.#top += size;
    this.#slots[i] = off + 1;
    if (++this.#count * 2 > this.#slots.length) this.#grow();
    return true;
  }

  #grow(): void {
    const old = this.#slots;
    const slots = new Int32Array(old.length * 2);
    const mask = slots.length - 1;
    for (const s of old) {
      if (s === 0) continue;
      let i = slotOf(this.#arena[s - 1]!, this.#arena[s + 1]!) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = s;
    }
    this.#slots = slots;
  }
}

function slotOf(h1: number, state: number): number {
  return (h1 ^ Math.imul(state + 1, 0x9e3779b1)) >>> 0;
}

function sameWords(a: Uint32Array, off: number, req: Uint32Array, lo: number, len: number, opt: Uint32Array): boolean {
  for (let j = 0; j < len; j++) if (a[off + j] !== req[lo + j]) return false;
  for (let j = 0; j < opt.length; j++) if (a[off + len + j] !== opt[j]) return false;
  return true;
}

/** splitmix32: deterministic Zobrist keys (the check must give the same answer every run). */
function mix32(st: { s: number }): number {
  st.s = (st.s + 0x9e3779b9) | 0;
  let z = st.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// The cluster decision (unique written values).

/** Why a decision failed: with its own small explaining set when it has one. */
interface Witness {
  readonly items: Item[] | null;
  readonly message: string;
}

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

function decideClusters(items: readonly Item[], maxSteps: number, deadline: number): { verdict: SearchVerdict; steps: number; witness: Witness | null } {
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

// ---------------------------------------------------------------------------------------------
// Shrinking.

/**
 * Shrinks a failing key history to a small failing subset. Every subset tried keeps, for each of
 * its reads, every op of the full history that could have supplied the read's value (the write
 * of its value; for a null read, every delete that could fall between the last write certainly
 * before it and it). If the full history were linearizable, such a subset would be too (restrict
 * the linearization to it), so the subset failing proves the full history fails: the shrunk set
 * is evidence, never an artefact of dropping the op that explained a read.
 * Order: cut a prefix, cut a suffix (both by binary search), then drop chunks of halving size.
 */
function shrink(full: readonly Item[], budget: KeyBudget): { items: Item[]; steps: number } {
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

// ---------------------------------------------------------------------------------------------
// Report.

function ms(t: number): string {
  return t === Infinity ? "?" : `${t.toFixed(1)}ms`;
}

function describe(it: Item): string {
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
