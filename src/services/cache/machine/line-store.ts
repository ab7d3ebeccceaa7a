/**
 * A node's cache lines, bounded by entry count and bytes, evicted by a policy (LRU, LFU or FIFO).
 * Pure: no clock, no I/O.
 */

/**
 * One node's leased copy of a key. The copy may be served only until `leaseUntil` (this node's
 * monotonic clock, ms): the home that granted it waits out the lease before a write completes
 * when it cannot reach this node to invalidate it.
 */
export interface Line {
  readonly key: string;
  /** The value, or null for a cached "no such key". */
  readonly value: Uint8Array | null;
  /** Absolute expiry (ms since the epoch, the writer's clock), or 0 for none. */
  readonly expiresAt: number;
  /** The log index of the write that produced the value. */
  readonly gen: number;
  /** The home that granted the copy. */
  readonly home: string;
  /** Extended in place when the home renews the lease. */
  leaseUntil: number;
  /** When the copy was last served or installed (holder's monotonic clock): recently used copies are renewed. */
  usedAt: number;
}

/** The seeds' eviction policies (`CACHE_EVICTION_POLICY`). */
export const EVICTION_POLICIES = ["lru", "lfu", "fifo"] as const;
export type EvictionPolicy = (typeof EVICTION_POLICIES)[number];

/** Bytes a line is charged: key and value plus a fixed overhead for the bookkeeping. */
export function lineBytes(key: string, value: Uint8Array | null): number {
  return 64 + key.length * 2 + (value?.length ?? 0);
}

/**
 * Lines under an eviction policy:
 * - lru: the least recently used line goes first (a Map keeps insertion order: a touch re-inserts
 *   at the end, eviction takes from the front);
 * - fifo: the line that entered first goes first; touches and in-place writes keep its place;
 * - lfu: the line with the fewest uses (puts and touches since it entered) goes first, the least
 *   recently used among equals. A line just put is never the one evicted for it, or a new key
 *   could never displace lines that were used more often.
 * Invariant: `size <= capacity` and `bytes <= capacityBytes` after every call, except that one
 * line larger than `capacityBytes` on its own is kept alone.
 */
export class LineStore {
  readonly #lines = new Map<string, Line>();
  /** lfu only: uses per key, and the keys at each use count in least-recently-used order. */
  readonly #uses = new Map<string, number>();
  readonly #byUses = new Map<number, Set<string>>();
  #bytes = 0;

  constructor(
    readonly capacity: number,
    readonly capacityBytes: number,
    readonly policy: EvictionPolicy = "lru",
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be an integer >= 1, got ${capacity}`);
    if (!Number.isInteger(capacityBytes) || capacityBytes < 1) throw new RangeError(`capacityBytes must be an integer >= 1, got ${capacityBytes}`);
    if (!(EVICTION_POLICIES as readonly string[]).includes(policy)) throw new RangeError(`policy must be one of ${EVICTION_POLICIES.join(", ")}, got ${String(policy)}`);
  }

  get size(): number {
    return this.#lines.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The line of `key` without counting a use. */
  peek(key: string): Line | undefined {
    return this.#lines.get(key);
  }

  /** The line of `key`, counted as a use (LRU: most recently used; LFU: one more use). */
  touch(key: string): Line | undefined {
    const line = this.#lines.get(key);
    if (line === undefined) return undefined;
    this.#used(key, line);
    return line;
  }

  /**
   * Inserts or replaces `line` (a use of it), then evicts by the policy until within capacity.
   * Returns the evicted lines (never `line` itself).
   */
  put(line: Line): Line[] {
    const old = this.#lines.get(line.key);
    if (old !== undefined) this.#bytes -= lineBytes(old.key, old.value);
    // Map.set on an existing key keeps its place: FIFO order is the key's first entry.
    this.#lines.set(line.key, line);
    this.#bytes += lineBytes(line.key, line.value);
    if (old === undefined && this.policy === "lfu") this.#enterUses(line.key, 0);
    this.#used(line.key, line);
    return this.#evict(line.key);
  }

  /** Removes the line of `key`; returns it, or undefined when there was none. */
  delete(key: string): Line | undefined {
    const line = this.#lines.get(key);
    if (line === undefined) return undefined;
    this.#lines.delete(key);
    this.#bytes -= lineBytes(line.key, line.value);
    if (this.policy === "lfu") this.#leaveUses(key);
    return line;
  }

  /** Every line, in no promised order. */
  lines(): IterableIterator<Line> {
    return this.#lines.values();
  }

  /** `line`: the key's line when the caller already looked it up (a read's hot path). */
  #used(key: string, line = this.#lines.get(key)): void {
    if (this.policy === "lru") {
      if (line === undefined) return;
      this.#lines.delete(key);
      this.#lines.set(key, line);
    } else if (this.policy === "lfu") {
      const n = this.#leaveUses(key);
      this.#enterUses(key, n + 1);
    }
  }

  #enterUses(key: string, n: number): void {
    this.#uses.set(key, n);
    let bucket = this.#byUses.get(n);
    if (bucket === undefined) this.#byUses.set(n, (bucket = new Set()));
    bucket.add(key);
  }

  #leaveUses(key: string): number {
    const n = this.#uses.get(key) ?? 0;
    this.#uses.delete(key);
    const bucket = this.#byUses.get(n);
    bucket?.delete(key);
    if (bucket?.size === 0) this.#byUses.delete(n);
    return n;
  }

  /** The next line to evict (never `keep`), or undefined when only `keep` is left. */
  #victim(keep: string): string | undefined {
    if (this.policy !== "lfu") {
      for (const key of this.#lines.keys()) if (key !== keep) return key;
      return undefined;
    }
    // Distinct use counts are few next to lines, and eviction needs only the lowest.
    let best: string | undefined;
    let bestN = Infinity;
    for (const [n, bucket] of this.#byUses) {
      if (n >= bestN) continue;
      for (const key of bucket) {
        if (key === keep) continue;
        best = key;
        bestN = n;
        break;
      }
    }
    return best;
  }

  #evict(keep: string): Line[] {
    const out: Line[] = [];
    while (this.#lines.size > this.capacity || this.#bytes > this.capacityBytes) {
      const key = this.#victim(keep);
      if (key === undefined) break; // A single oversized line stays rather than nothing.
      const line = this.delete(key);
      if (line !== undefined) out.push(line);
    }
    return out;
  }
}
