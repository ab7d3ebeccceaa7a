/**
 * The durable ("fsynced") state of one simulated node: hard state, latest snapshot and the log.
 *
 * This is deliberately *not* the core's MemoryStorage: it is an independent model written from
 * the Ready contract, so a MemoryStorage bug cannot hide itself from the checkers. Each entry
 * carries the chain hash of the log prefix ending at it (see {@link chainHash}), which is what the
 * Log Matching checker compares. It survives crashes; everything else about a node does not.
 */
import type { ConfState, Entry, HardState, Ready, Snapshot } from "../../src/raft/types.ts";
import { chainHash, decodeImage } from "./state-machine.ts";

/** Raised when a Ready breaks its own contract (e.g. a gap in the log); the message says how. */
export class ReadyContractError extends Error {
  override readonly name = "ReadyContractError";
}

/** The durable state of one node. Mutated only by {@link DiskLog.sync} and compaction. */
export class DiskLog {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  snapshot: Snapshot;
  /** Index, term and prefix hash of the entry just before `entries[0]` (the compaction point). */
  baseIndex = 0;
  baseTerm = 0;
  baseHash = 0;
  entries: Entry[] = [];
  /** `hashes[k]` is the chain hash of the prefix ending at `entries[k]`. */
  hashes: number[] = [];

  /** @param bootstrapConf the membership a fresh node starts with (before any snapshot). */
  constructor(readonly bootstrapConf: ConfState) {
    this.snapshot = { meta: { index: 0, term: 0, conf: bootstrapConf }, data: new Uint8Array() };
  }

  /** Index of the last durable entry (the base index when the log is empty). */
  get lastIndex(): number {
    return this.baseIndex + this.entries.length;
  }

  /** Term of entry `index`, or undefined when it is outside `[baseIndex, lastIndex]`. */
  termAt(index: number): number | undefined {
    if (index === this.baseIndex) return this.baseTerm;
    const e = this.entries[index - this.baseIndex - 1];
    return e?.term;
  }

  /** Chain hash of the prefix `[1, index]`, or undefined outside `[baseIndex, lastIndex]`. */
  hashAt(index: number): number | undefined {
    if (index === this.baseIndex) return this.baseHash;
    return this.hashes[index - this.baseIndex - 1];
  }

  /**
   * Make a Ready's writes durable, in the contract's order: snapshot, entries, hard state.
   * `onEntry` sees each newly durable entry with its prefix hash (for the Log Matching registry);
   * `onSnapshot` sees an installed snapshot's index, term and hash.
   * Throws {@link ReadyContractError} on a gap or on entries below the compaction point.
   */
  sync(
    rd: Pick<Ready, "snapshot" | "entries" | "hardState">,
    onEntry: (e: Entry, hash: number) => void,
    onSnapshot: (index: number, term: number, hash: number) => void,
  ): void {
    if (rd.snapshot && rd.snapshot.meta.index > 0) {
      const s = rd.snapshot;
      const hash = decodeImage(s.data).hash;
      // A received snapshot replaces the whole log (etcd's ApplySnapshot does the same).
      this.snapshot = s;
      this.baseIndex = s.meta.index;
      this.baseTerm = s.meta.term;
      this.baseHash = hash;
      this.entries = [];
      this.hashes = [];
      onSnapshot(s.meta.index, s.meta.term, hash);
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      if (first <= this.baseIndex) {
        throw new ReadyContractError(
          `Ready.entries starts at ${first}, at or below the durable compaction point ${this.baseIndex}`,
        );
      }
      if (first > this.lastIndex + 1) {
        throw new ReadyContractError(`Ready.entries starts at ${first}, leaving a gap after lastIndex ${this.lastIndex}`);
      }
      // Entries replace any existing suffix starting at entries[0].index.
      const keep = first - this.baseIndex - 1;
      this.entries.length = keep;
      this.hashes.length = keep;
      let prev = this.hashAt(first - 1)!;
      let expected = first;
      for (const e of rd.entries) {
        if (e.index !== expected) {
          throw new ReadyContractError(`Ready.entries not contiguous: expected index ${expected}, got ${e.index}`);
        }
        expected++;
        prev = chainHash(prev, e);
        this.entries.push(e);
        this.hashes.push(prev);
        onEntry(e, prev);
      }
    }
    if (rd.hardState) this.hardState = rd.hardState;
  }

  /**
   * Record a locally taken snapshot and drop entries up to `compactIndex` (≤ snapshot index).
   * Atomic and immediately durable: a real implementation writes the snapshot file, fsyncs it,
   * then truncates the WAL, so a crash leaves either the old or the new state, both valid.
   */
  compact(snap: Snapshot, compactIndex: number): void {
    if (snap.meta.index > this.snapshot.meta.index) this.snapshot = snap;
    if (compactIndex <= this.baseIndex) return;
    const term = this.termAt(compactIndex);
    const hash = this.hashAt(compactIndex);
    if (term === undefined || hash === undefined) {
      throw new ReadyContractError(`compact(${compactIndex}) outside durable log [${this.baseIndex}, ${this.lastIndex}]`);
    }
    const drop = compactIndex - this.baseIndex;
    this.entries = this.entries.slice(drop);
    this.hashes = this.hashes.slice(drop);
    this.baseIndex = compactIndex;
    this.baseTerm = term;
    this.baseHash = hash;
  }
}
