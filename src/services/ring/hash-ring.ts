import murmurhash from "murmurhash";

/** Virtual nodes per member unless configured: the seeds' default, even to within a few percent. */
export const VIRTUAL_NODES_DEFAULT = 150;

const utf8 = new TextEncoder();

/** MurmurHash3 (32-bit) of the UTF-8 bytes of `key` (the package hashes strings as ASCII). */
export function hash32(key: string): number {
  return murmurhash.v3(utf8.encode(key));
}

/**
 * A consistent-hash ring: each member owns `virtualNodes` points on a 32-bit circle, and a key
 * belongs to the first points clockwise from its hash. Adding or removing a member moves only
 * the keys next to its points (about 1/N of them). Deterministic: the same members give the same
 * ring on every node, whatever the order they were added in.
 */
export class HashRing {
  readonly virtualNodes: number;
  #members = new Set<string>();
  /** Sorted point hashes and their owners, rebuilt on membership change. */
  #points: Uint32Array = new Uint32Array(0);
  #owners: string[] = [];

  constructor(members: Iterable<string> = [], virtualNodes: number = VIRTUAL_NODES_DEFAULT) {
    if (!Number.isInteger(virtualNodes) || virtualNodes < 1 || virtualNodes > 10_000) throw new RangeError(`virtualNodes must be an integer in [1, 10000], got ${virtualNodes}`);
    this.virtualNodes = virtualNodes;
    for (const m of members) this.#members.add(m);
    this.#rebuild();
  }

  get members(): string[] {
    return [...this.#members].sort();
  }

  add(member: string): void {
    if (this.#members.has(member)) return;
    this.#members.add(member);
    this.#rebuild();
  }

  remove(member: string): void {
    if (this.#members.delete(member)) this.#rebuild();
  }

  /** The member that owns `key`. @throws Error on an empty ring. */
  lookup(key: string): string {
    const owners = this.lookupN(key, 1);
    if (owners.length === 0) throw new Error("the hash ring has no members");
    return owners[0]!;
  }

  /** Up to `n` distinct members for `key`, walking clockwise: a primary and its successors. */
  lookupN(key: string, n: number): string[] {
    const out: string[] = [];
    if (this.#points.length === 0) return out;
    const want = Math.min(n, this.#members.size);
    let i = lowerBound(this.#points, hash32(key));
    for (let seen = 0; out.length < want && seen < this.#points.length; seen++, i++) {
      const owner = this.#owners[i % this.#points.length]!;
      if (!out.includes(owner)) out.push(owner);
    }
    return out;
  }

  #rebuild(): void {
    const entries: [number, string][] = [];
    for (const m of this.#members) for (let v = 0; v < this.virtualNodes; v++) entries.push([hash32(`${m}#${v}`), m]);
    // Ties (astronomically rare) break by member id so every node builds the same ring.
    entries.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    this.#points = Uint32Array.from(entries.map((e) => e[0]));
    this.#owners = entries.map((e) => e[1]);
  }
}

/** Index of the first point >= h, or 0 past the end (the circle wraps). */
function lowerBound(points: Uint32Array, h: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]! < h) lo = mid + 1;
    else hi = mid;
  }
  return lo === points.length ? 0 : lo;
}
