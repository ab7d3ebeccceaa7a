/** The Wing–Gong search, for keys whose written values are not unique (or to cross-check the clusters). */
import { splitmix32 } from "../../../sim/prng.ts";
import { Kind, type Item, type SearchVerdict } from "./types.ts";

/**
 * Wing–Gong with Lowe's cache. Call and return events sit in one time-ordered doubly linked list;
 * the search walks it from the head, linearizing ("lifting") an op at its call when the register
 * allows it and the resulting (linearized set, value) has not been explored, and backtracking when
 * it reaches the return of an op it has not linearized. Ops whose window never closes (unknown
 * deletes) have no return event: they are optional, and the search succeeds as soon as every op
 * with a return is linearized (the rest take effect "never", equivalently at the end).
 */
export function search(items: readonly Item[], maxSteps: number, deadline: number): { verdict: SearchVerdict; steps: number } {
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
    z1[b] = splitmix32(seed);
    z2[b] = splitmix32(seed);
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
