import { assert } from "./assert.ts";
import { limitEntries } from "./entries.ts";
import { Unstable } from "./unstable.ts";
import { CompactedError, EntryType, type Entry, type LogStorage, type Snapshot } from "./types.ts";

/**
 * The Raft log as the core sees it: durable entries in {@link LogStorage} followed by the
 * {@link Unstable} part not yet persisted.
 *
 * Invariant: `applied <= applying <= committed <= lastIndex()`.
 */
export class RaftLog {
  readonly storage: LogStorage;
  readonly unstable: Unstable;
  /** Highest index known to be replicated on a quorum. */
  committed: number;
  /** Highest index handed out in Ready.committedEntries (or restored snapshot). */
  applying: number;
  /** Highest index the application has acknowledged applying (via advance). */
  applied: number;

  constructor(storage: LogStorage) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // The snapshot's entries are applied by definition: the state machine restores from it.
    this.committed = first - 1;
    this.applying = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, "log: term of last index unknown");
    return t;
  }

  /** Term of `index`, or undefined when it is compacted or beyond the end. Valid from `firstIndex() - 1`. */
  term(index: number): number | undefined {
    const ut = this.unstable.maybeTerm(index);
    if (ut !== undefined) return ut;
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return undefined;
    // Entries at or above the unstable offset are only in the unstable part (a truncation may
    // still be waiting to reach storage), so never consult storage for them.
    if (index >= this.unstable.offset) return undefined;
    try {
      return this.storage.term(index);
    } catch (e) {
      if (e instanceof CompactedError) return undefined;
      throw e;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a log ending at `(lastIndex, lastTerm)` at least as up-to-date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Follower side of AppendEntries. Returns the index of the last new entry, or undefined when the
   * entry at `index` does not have `logTerm` (the leader must back up).
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: readonly Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      // Invariant: a committed entry is never overwritten (State Machine Safety).
      assert(ci > this.committed, `log: conflict at ${ci} below commit ${this.committed}`);
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** Index of the first entry of `ents` that is new or conflicts with ours; 0 if all match. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast backtracking: the largest index `<= index` whose term is `<= term` (or the first known
   * index). Entries above it cannot match a log whose entry at `index` has term `term`.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i >= this.firstIndex() - 1; i--) {
      const t = this.term(i);
      if (t === undefined) break;
      if (t <= term) return i;
    }
    return Math.max(i, 0);
  }

  /** Appends entries (replacing any conflicting suffix) and returns the new last index. */
  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    // Invariant: appends never rewrite committed entries and never leave gaps.
    assert(ents[0]!.index > this.committed, `log: append at ${ents[0]!.index} below commit ${this.committed}`);
    assert(ents[0]!.index <= this.lastIndex() + 1, `log: append at ${ents[0]!.index} leaves a gap after ${this.lastIndex()}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    // Invariant: the commit index never passes the log's end (the log was not lost or truncated).
    assert(index <= this.lastIndex(), `log: commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  appliedTo(index: number): void {
    if (index <= this.applied) return;
    assert(index <= this.committed, `log: applied ${index} beyond commit ${this.committed}`);
    this.applied = index;
    this.applying = Math.max(this.applying, index);
  }

  /** Entries in `[lo, hi)` from storage and the unstable part; throws CompactedError below firstIndex. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) throw new CompactedError(`log: ${lo} is compacted (first ${this.firstIndex()})`);
    assert(hi <= this.lastIndex() + 1, `log.slice: ${hi} beyond last index ${this.lastIndex()}`);
    let out: Entry[] = [];
    const uOffset = this.unstable.offset;
    if (lo < uOffset) {
      out = this.storage.entries(lo, Math.min(hi, uOffset), maxBytes);
      // Storage stopped early on the size limit: do not add unstable entries after a gap.
      if (out.length < Math.min(hi, uOffset) - lo) return out;
    }
    if (hi > uOffset) {
      out = out.concat(this.unstable.slice(Math.max(lo, uOffset), hi));
    }
    return limitEntries(out, maxBytes);
  }

  /** Committed entries not yet handed out to the application. */
  nextCommittedEntries(maxBytes: number): Entry[] {
    const lo = Math.max(this.applying + 1, this.firstIndex());
    if (this.unstable.snapshot || lo > this.committed) return [];
    return this.slice(lo, this.committed + 1, maxBytes);
  }

  hasNextCommittedEntries(): boolean {
    return !this.unstable.snapshot && this.committed > this.applying && this.committed >= this.firstIndex();
  }

  /** Whether a ConfChange is committed but not applied yet (a compacted range holds none we need). */
  hasUnappliedConfChanges(): boolean {
    if (this.committed <= this.applied) return false;
    let ents: Entry[];
    try {
      ents = this.slice(this.applied + 1, this.committed + 1, Number.MAX_SAFE_INTEGER);
    } catch (e) {
      if (e instanceof CompactedError) return false;
      throw e;
    }
    return ents.some((e) => e.type === EntryType.ConfChange);
  }

  /** Replaces the log by `snap` (a follower installing the leader's snapshot). */
  restore(snap: Snapshot): void {
    this.committed = snap.meta.index;
    this.unstable.restore(snap);
  }

  /** The snapshot to hand out, whether persisted or pending. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }
}
