import { assert } from "./assert.ts";
import { entryBytes } from "./entries.ts";
import {
  CompactedError,
  type ConfState,
  type Entry,
  type HardState,
  type LogStorage,
  type Snapshot,
} from "./types.ts";

const EMPTY_CONF: ConfState = { voters: [], learners: [] };

/**
 * An in-memory {@link LogStorage} with the mutators a node layer needs, for tests and simulation.
 * Nothing is durable. Entries live in `(offsetIndex, lastIndex]`; `offsetIndex` is the index of the
 * last compacted entry whose term is still known (`offsetTerm`), as in etcd's dummy entry.
 */
export class MemoryStorage implements LogStorage {
  #hardState: HardState = { term: 0, vote: null, commit: 0 };
  #confState: ConfState;
  #snapshot: Snapshot;
  #offsetIndex = 0;
  #offsetTerm = 0;
  #entries: Entry[] = [];

  /**
   * @param conf the initial membership: the founding members when bootstrapping a fresh group, or,
   * for a node joining an existing group, the group's current membership including the joiner
   * (as a learner). The bootstrap membership is not in the log, so a joiner cannot learn it from
   * there; replaying older ConfChange entries on top of the current membership converges to it.
   */
  constructor(conf: ConfState = EMPTY_CONF) {
    this.#confState = copyConf(conf);
    this.#snapshot = { meta: { index: 0, term: 0, conf: copyConf(conf) }, data: new Uint8Array(0) };
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.#hardState }, confState: copyConf(this.#confState) };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.#offsetIndex) throw new CompactedError(`entries: ${lo} is compacted (first ${this.firstIndex()})`);
    assert(lo <= hi && hi <= this.lastIndex() + 1, `entries: [${lo}, ${hi}) out of range (last ${this.lastIndex()})`);
    const from = lo - this.#offsetIndex - 1;
    const to = hi - this.#offsetIndex - 1;
    // Walk only as far as maxBytes allows instead of copying the whole range first.
    const out: Entry[] = [];
    let size = 0;
    for (let i = from; i < to; i++) {
      const e = this.#entries[i]!;
      size += entryBytes(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(index: number): number {
    if (index < this.#offsetIndex) throw new CompactedError(`term: ${index} is compacted (first ${this.firstIndex()})`);
    if (index === this.#offsetIndex) return this.#offsetTerm;
    assert(index <= this.lastIndex(), `term: ${index} beyond last index ${this.lastIndex()}`);
    return this.#entries[index - this.#offsetIndex - 1]!.term;
  }

  firstIndex(): number {
    return this.#offsetIndex + 1;
  }

  lastIndex(): number {
    return this.#offsetIndex + this.#entries.length;
  }

  snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** Durably (here: in memory) records the hard state. */
  setHardState(hs: HardState): void {
    this.#hardState = { ...hs };
  }

  /** Records the membership that {@link initialState} reports (the node layer calls it after applying a ConfChange). */
  setConfState(conf: ConfState): void {
    this.#confState = copyConf(conf);
  }

  /**
   * Appends `entries`, replacing any existing suffix from `entries[0].index`. Entries at or below
   * the compaction point are skipped (they are already covered by the snapshot).
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    let ents = entries;
    const first = ents[0]!.index;
    assert(first <= this.lastIndex() + 1, `append: gap: first ${first} after last ${this.lastIndex()}`);
    if (first <= this.#offsetIndex) ents = ents.slice(this.#offsetIndex + 1 - first);
    if (ents.length === 0) return;
    const keep = ents[0]!.index - this.#offsetIndex - 1;
    // In place: the common case appends at the end, and copying the whole log on every append
    // made each write cost O(log length). Callers never hold #entries itself (entries() copies).
    this.#entries.length = keep;
    for (const e of ents) {
      // Invariant: indexes are contiguous.
      assert(e.index === this.#offsetIndex + 1 + this.#entries.length, `append: non-contiguous log at ${e.index}`);
      this.#entries.push(e);
    }
  }

  /** Replaces the whole log by `snap` (a follower installing the leader's snapshot). */
  applySnapshot(snap: Snapshot): void {
    assert(snap.meta.index >= this.#snapshot.meta.index, `applySnapshot: ${snap.meta.index} older than ${this.#snapshot.meta.index}`);
    this.#snapshot = snap;
    this.#offsetIndex = snap.meta.index;
    this.#offsetTerm = snap.meta.term;
    this.#entries = [];
    this.#confState = copyConf(snap.meta.conf);
  }

  /**
   * Records a state-machine image taken at `index` (which must be applied, i.e. `<= lastIndex()`)
   * and returns it. Does not discard entries; call {@link compact} for that.
   */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    assert(index >= this.#snapshot.meta.index, `createSnapshot: ${index} older than ${this.#snapshot.meta.index}`);
    assert(index <= this.lastIndex(), `createSnapshot: ${index} beyond last index ${this.lastIndex()}`);
    const snap: Snapshot = { meta: { index, term: this.term(index), conf: copyConf(conf) }, data };
    this.#snapshot = snap;
    this.#confState = copyConf(conf);
    return snap;
  }

  /**
   * Discards entries up to and including `index`, which must be covered by the current snapshot
   * (`index <= snapshot().meta.index`) so that a lagging follower can still be caught up.
   */
  compact(index: number): void {
    if (index <= this.#offsetIndex) return;
    assert(index <= this.#snapshot.meta.index, `compact: ${index} not covered by snapshot ${this.#snapshot.meta.index}`);
    const term = this.term(index);
    this.#entries = this.#entries.slice(index - this.#offsetIndex);
    this.#offsetIndex = index;
    this.#offsetTerm = term;
  }
}

function copyConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}
