/**
 * The per-group log state machine, shared by replay (which also materialises the entries) and by
 * the running WAL (which only tracks index ranges, terms and the segment each live entry is in).
 * Running the same transitions on both sides is what lets segment GC reason about replay.
 */
import { ok as assert } from "node:assert";
import type { WalEntry, WalHardState, WalSnapshotMeta } from "./types.ts";

/** A run of live entries with one term, all written to one segment: `[start, next run's start)`. */
interface Run {
  start: number;
  readonly term: number;
  readonly segment: number;
}

/** One group's log: hard state, snapshot marker and the live entries `(snapshotIndex, lastIndex]`. */
export class GroupLog {
  hardState: WalHardState | null = null;
  snapshotMeta: WalSnapshotMeta | null = null;
  /**
   * Invariant: runs are ordered by start and the last one ends at #last; runs[0].start is
   * snapshotIndex + 1, except while replay is inside a garbage-collected prefix (see appendEntries).
   * With no runs, #last === snapshotIndex.
   */
  #runs: Run[] = [];
  #last = 0;
  /** Materialised live entries (replay only), parallel to #runs. */
  #entries: WalEntry[] | null;

  /** @param keepEntries materialise entries (replay); the running WAL only needs ranges. */
  constructor(keepEntries: boolean) {
    this.#entries = keepEntries ? [] : null;
  }

  get snapshotIndex(): number {
    return this.snapshotMeta?.index ?? 0;
  }

  /** Index of the last live entry, or the snapshot index if there are none. */
  get lastIndex(): number {
    return this.#last;
  }

  /** True if the group has live entries (after the snapshot). */
  get hasEntries(): boolean {
    return this.#runs.length > 0;
  }

  /** The index of the first live entry, or null if there are none. */
  get firstIndex(): number | null {
    return this.#runs[0]?.start ?? null;
  }

  /** The oldest segment holding a live entry of this group, or null if it has none. */
  get oldestLiveSegment(): number | null {
    let oldest: number | null = null;
    for (const run of this.#runs) if (oldest === null || run.segment < oldest) oldest = run.segment;
    return oldest;
  }

  /** The term of the entry at `index`: a live entry, the snapshot's last entry, or 0 at index 0. */
  termAt(index: number): number | null {
    if (index === this.snapshotIndex) return this.snapshotMeta?.term ?? 0;
    if (index < this.snapshotIndex || index > this.#last) return null;
    for (let i = this.#runs.length - 1; i >= 0; i--) {
      if (this.#runs[i]!.start <= index) return this.#runs[i]!.term;
    }
    return null; // Only reachable in a replay gap (see appendEntries).
  }

  /**
   * Replaces the suffix starting at `entries[0].index` with `entries`, written to `segment`.
   * The running WAL validates `entries[0].index` in `(snapshotIndex, lastIndex + 1]` first. Replay
   * also accepts a start beyond `lastIndex + 1` while the group has no live entries: that is a
   * prefix whose segments were garbage collected because a later snapshot covers it.
   */
  appendEntries(entries: readonly WalEntry[], segment: number): void {
    const start = entries[0]!.index;
    // Invariant: callers validated the range; a gap is only legal with no live entries.
    assert(start > this.snapshotIndex && (start <= this.#last + 1 || this.#runs.length === 0), "entries gap");
    while (this.#runs.length > 0 && this.#runs.at(-1)!.start >= start) this.#runs.pop();
    for (const e of entries) {
      const tail = this.#runs.at(-1);
      if (tail === undefined || tail.term !== e.term || tail.segment !== segment) {
        this.#runs.push({ start: e.index, term: e.term, segment });
      }
    }
    this.#last = entries.at(-1)!.index;
    if (this.#entries !== null) {
      const first = this.#entries[0]?.index;
      if (first === undefined || start > this.#entries.at(-1)!.index + 1 || start < first) {
        this.#entries = [...entries];
      } else {
        this.#entries.length = start - first;
        for (const e of entries) this.#entries.push(e);
      }
    }
  }

  /**
   * Records a snapshot at `meta.index`: entries `<= meta.index` go; entries after it survive only
   * if `keepSuffix` (the log held `meta.term` at `meta.index`). Caller ensures the index grows.
   */
  applySnapshot(meta: WalSnapshotMeta, keepSuffix: boolean): void {
    // Invariant: snapshot markers only move forward.
    assert(meta.index > this.snapshotIndex, "snapshot index does not grow");
    if (keepSuffix) {
      while (this.#runs.length > 0 && this.#runEnd(0) <= meta.index) this.#runs.shift();
      if (this.#runs.length > 0 && this.#runs[0]!.start <= meta.index) this.#runs[0]!.start = meta.index + 1;
      this.#last = Math.max(this.#last, meta.index);
    } else {
      this.#runs = [];
      this.#last = meta.index;
    }
    if (this.#entries !== null) {
      if (keepSuffix) {
        const drop = this.#entries.findIndex((e) => e.index > meta.index);
        this.#entries = drop < 0 ? [] : this.#entries.slice(drop);
      } else {
        this.#entries = [];
      }
    }
    this.snapshotMeta = meta;
  }

  /** A copy without materialised entries, to validate a batch of records before applying them. */
  clone(): GroupLog {
    const copy = new GroupLog(false);
    copy.hardState = this.hardState;
    copy.snapshotMeta = this.snapshotMeta;
    copy.#runs = this.#runs.map((r) => ({ ...r }));
    copy.#last = this.#last;
    return copy;
  }

  /** The materialised entries (replay only); null for the running WAL. */
  get entries(): readonly WalEntry[] | null {
    return this.#entries;
  }

  /** Stops materialising entries; the running WAL keeps ranges only. */
  dropEntries(): void {
    this.#entries = null;
  }

  #runEnd(i: number): number {
    return i + 1 < this.#runs.length ? this.#runs[i + 1]!.start - 1 : this.#last;
  }
}
