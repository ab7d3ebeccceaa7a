/**
 * The home node's directory: for each key it is home of, which nodes hold a copy and how.
 * Pure bookkeeping; the node-side service runs the messages the plans call for, one key at a
 * time, and reports back. "X" is an exclusive copy (E or M on the holder: the home cannot tell
 * them apart because E becomes M silently).
 *
 * Invariant (checked by `directoryViolations`): an entry has at most one X holder, and never an
 * X holder beside S holders. The directory may list a node that has since dropped its copy
 * silently (a superset is safe: an invalidation of a copy that is gone is simply acknowledged).
 */

export type HolderState = "S" | "X";

export interface Holder {
  readonly state: HolderState;
  /** The grant number of the holder's copy. */
  readonly gen: number;
}

/** A copy the home must talk to: the node and the grant number it holds. */
export interface HolderRef {
  readonly node: string;
  readonly gen: number;
}

/** What to do before answering reads: fetch the value from the exclusive holder, if another node has it. */
export interface ReadPlan {
  readonly fetchFrom: HolderRef | null;
}

/** What to do before granting M: invalidate every other copy (`fetchFrom` is the other X holder). */
export interface WritePlan {
  readonly invalidate: HolderRef[];
  readonly fetchFrom: HolderRef | null;
}

export interface Grant {
  readonly node: string;
  readonly state: "E" | "S" | "M";
  readonly gen: number;
}

export class Directory {
  readonly #entries = new Map<string, Map<string, Holder>>();
  #nextGen: number;

  /** `firstGen` should grow across restarts of the node (e.g. start time), so grant numbers never repeat. */
  constructor(firstGen: number) {
    this.#nextGen = firstGen;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The holders of `key` (empty when no node holds it). */
  holders(key: string): ReadonlyMap<string, Holder> {
    return this.#entries.get(key) ?? new Map();
  }

  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }

  /**
   * Readers `readers` missed; the exclusive holder must share its copy first — even when it is
   * one of the readers: its read may have left before its own write grant arrived, and its
   * copy is then the newest data.
   */
  planRead(key: string, _readers: readonly string[]): ReadPlan {
    return { fetchFrom: this.#owner(key) };
  }

  /**
   * Records the outcome of a read: the former exclusive holder (if any) now shares (`ownerKept`)
   * or had no copy any more; every reader gets E when it is the only holder, else S.
   */
  completeRead(key: string, readers: readonly string[], ownerKept: boolean): Grant[] {
    const entry = this.#entry(key);
    const owner = this.#owner(key);
    if (owner !== null) {
      if (ownerKept && !readers.includes(owner.node)) entry.set(owner.node, { state: "S", gen: owner.gen });
      else entry.delete(owner.node);
    }
    for (const r of readers) entry.delete(r);
    const exclusive = readers.length === 1 && entry.size === 0;
    return readers.map((node) => {
      const gen = this.#nextGen++;
      entry.set(node, { state: exclusive ? "X" : "S", gen });
      return { node, state: exclusive ? "E" : "S", gen };
    });
  }

  /** `writer` wants M: every other copy must go. */
  planWrite(key: string, writer: string): WritePlan {
    const invalidate: HolderRef[] = [];
    let fetchFrom: HolderRef | null = null;
    for (const [node, h] of this.holders(key)) {
      if (node === writer) continue;
      if (h.state === "X") fetchFrom = { node, gen: h.gen };
      else invalidate.push({ node, gen: h.gen });
    }
    return { invalidate, fetchFrom };
  }

  /** Every other copy is gone: `writer` is the only holder, in M. */
  completeWrite(key: string, writer: string): Grant {
    const entry = this.#entry(key);
    entry.clear();
    const gen = this.#nextGen++;
    entry.set(writer, { state: "X", gen });
    return { node: writer, state: "M", gen };
  }

  /** Every copy of `key`, to invalidate (the X holder's data is written back first). */
  planDrop(key: string): WritePlan {
    return this.planWrite(key, "");
  }

  /** Forgets `key` (all copies are gone). */
  forget(key: string): void {
    this.#entries.delete(key);
  }

  /**
   * Whether `node` is the exclusive holder of `key` with grant `gen` — the only holder whose
   * write-back may reach the store (any other is older than what the home already took).
   */
  isOwner(key: string, node: string, gen: number): boolean {
    const h = this.#entries.get(key)?.get(node);
    return h !== undefined && h.state === "X" && h.gen === gen;
  }

  /** Removes `node`'s copy of `key` if it is still grant `gen` (or any grant when gen is null). */
  removeHolder(key: string, node: string, gen: number | null): boolean {
    const entry = this.#entries.get(key);
    const h = entry?.get(node);
    if (!entry || !h || (gen !== null && h.gen !== gen)) return false;
    entry.delete(node);
    if (entry.size === 0) this.#entries.delete(key);
    return true;
  }

  /** Drops a failed node from every entry; returns the keys it held exclusively (possibly dirty). */
  removeNode(node: string): string[] {
    const lostOwner: string[] = [];
    for (const [key, entry] of this.#entries) {
      const h = entry.get(node);
      if (!h) continue;
      if (h.state === "X") lostOwner.push(key);
      entry.delete(node);
      if (entry.size === 0) this.#entries.delete(key);
    }
    return lostOwner;
  }

  /** Forgets every key for which `pred` holds (keys whose home moved away). */
  forgetWhere(pred: (key: string) => boolean): void {
    for (const key of [...this.#entries.keys()]) if (pred(key)) this.#entries.delete(key);
  }

  #entry(key: string): Map<string, Holder> {
    let e = this.#entries.get(key);
    if (!e) this.#entries.set(key, (e = new Map()));
    return e;
  }

  #owner(key: string): HolderRef | null {
    for (const [node, h] of this.holders(key)) if (h.state === "X") return { node, gen: h.gen };
    return null;
  }
}

/** A node's copy of a key as reported for invariant checks and `state`. */
export interface CopyView {
  readonly node: string;
  readonly state: "M" | "E" | "S";
}

/**
 * Checks the coherence invariant over the copies nodes actually hold, and that the directory
 * covers them: at most one M/E copy, never an M/E copy beside an S copy, and every copy listed
 * by the home (an M/E copy as X). Returns one message per violation.
 */
export function coherenceViolations(key: string, copies: readonly CopyView[], directory: ReadonlyMap<string, Holder> | null): string[] {
  const out: string[] = [];
  const exclusive = copies.filter((c) => c.state !== "S");
  if (exclusive.length > 1) out.push(`${key}: ${exclusive.length} M/E copies (${exclusive.map((c) => `${c.node}:${c.state}`).join(", ")})`);
  if (exclusive.length === 1 && copies.length > 1) out.push(`${key}: an ${exclusive[0]!.state} copy on ${exclusive[0]!.node} beside S copies`);
  if (directory !== null) {
    const x = [...directory.values()].filter((h) => h.state === "X").length;
    if (x > 1 || (x === 1 && directory.size > 1)) out.push(`${key}: directory lists ${x} X holders among ${directory.size}`);
    for (const c of copies) {
      const h = directory.get(c.node);
      if (!h) out.push(`${key}: ${c.node} holds a ${c.state} copy the directory does not list`);
      else if (c.state !== "S" && h.state !== "X") out.push(`${key}: ${c.node} holds ${c.state} but the directory lists it as S`);
    }
  }
  return out;
}
