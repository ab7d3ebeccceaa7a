/**
 * A node's cache lines, bounded by entry count and bytes, in least-recently-used order.
 * Pure: no clock, no I/O. The caller decides what to do with the lines it evicts (an M line must
 * be written back before it is forgotten).
 */

/** MESI state of a line on one node. I is "no line": an invalid line is simply absent. */
export type LineState = "M" | "E" | "S";

/** One cached key on one node. */
export interface Line {
  readonly key: string;
  state: LineState;
  /** The value, or null for a cached "no such key" (a delete, or a miss in the backing store). */
  value: Uint8Array | null;
  /** Absolute expiry (ms since the epoch, the writer's clock), or 0 for none. */
  expiresAt: number;
  /** The grant number the home gave this copy; the home names copies by it. */
  gen: number;
  /** The home that granted the line, and the takeover stamp it served under. */
  home: string;
  stamp: number;
  /** Bumped on every local write, so a write-back reply knows whether the line changed since. */
  writeSeq: number;
}

/** Bytes a line is charged: key and value plus a fixed overhead for the bookkeeping. */
export function lineBytes(key: string, value: Uint8Array | null): number {
  return 64 + key.length * 2 + (value?.length ?? 0);
}

/**
 * Lines in LRU order (a Map keeps insertion order: a touch re-inserts at the end, eviction takes
 * from the front). Invariant: `size <= capacity` and `bytes <= capacityBytes` after every call,
 * except that one line larger than `capacityBytes` on its own is kept alone.
 */
export class LineStore {
  readonly #lines = new Map<string, Line>();
  #bytes = 0;

  constructor(
    readonly capacity: number,
    readonly capacityBytes: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be an integer >= 1, got ${capacity}`);
    if (!Number.isInteger(capacityBytes) || capacityBytes < 1) throw new RangeError(`capacityBytes must be an integer >= 1, got ${capacityBytes}`);
  }

  get size(): number {
    return this.#lines.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The line of `key` without changing its LRU position. */
  peek(key: string): Line | undefined {
    return this.#lines.get(key);
  }

  /** The line of `key`, marked most recently used. */
  touch(key: string): Line | undefined {
    const line = this.#lines.get(key);
    if (line === undefined) return undefined;
    this.#lines.delete(key);
    this.#lines.set(key, line);
    return line;
  }

  /**
   * Inserts or replaces `line` as most recently used, then evicts from the least recently used
   * end until within capacity. Returns the evicted lines (never `line` itself).
   */
  put(line: Line): Line[] {
    const old = this.#lines.get(line.key);
    if (old !== undefined) {
      this.#lines.delete(line.key);
      this.#bytes -= lineBytes(old.key, old.value);
    }
    this.#lines.set(line.key, line);
    this.#bytes += lineBytes(line.key, line.value);
    return this.#evict();
  }

  /** Re-charges `line` after its value changed in place, and evicts if now over capacity. */
  resize(line: Line, oldValue: Uint8Array | null): Line[] {
    if (this.#lines.get(line.key) !== line) return [];
    this.#bytes += lineBytes(line.key, line.value) - lineBytes(line.key, oldValue);
    this.touch(line.key);
    return this.#evict();
  }

  /** Removes the line of `key`; returns it, or undefined when there was none. */
  delete(key: string): Line | undefined {
    const line = this.#lines.get(key);
    if (line === undefined) return undefined;
    this.#lines.delete(key);
    this.#bytes -= lineBytes(line.key, line.value);
    return line;
  }

  /** Lines from least to most recently used. */
  lines(): IterableIterator<Line> {
    return this.#lines.values();
  }

  /** Line counts per state. */
  counts(): Record<LineState, number> {
    const c: Record<LineState, number> = { M: 0, E: 0, S: 0 };
    for (const l of this.#lines.values()) c[l.state]++;
    return c;
  }

  #evict(): Line[] {
    const out: Line[] = [];
    for (const [key, line] of this.#lines) {
      if (this.#lines.size <= this.capacity && this.#bytes <= this.capacityBytes) break;
      if (this.#lines.size === 1) break; // A single oversized line stays rather than nothing.
      this.delete(key);
      out.push(line);
    }
    return out;
  }
}
