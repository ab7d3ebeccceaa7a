import { copyBytes, decodeCommand, encodeCommand, ownBytes } from "../../command-codec.ts";
import type { AppliedEntry, StateMachine } from "../../../host/state-machine.ts";

/**
 * One key in a cache partition: its value (null: deleted), its absolute expiry (ms since the
 * epoch, 0 = none), the log index that wrote it (`gen`, increasing per key), and, with Redis as
 * the store, whether Redis has not yet confirmed this version (`dirty`).
 */
export interface CacheEntry {
  readonly value: Uint8Array | null;
  readonly expiresAt: number;
  readonly gen: number;
  readonly dirty: boolean;
}

/** Commands of a cache partition's log. */
export type CacheCommand =
  /**
   * A client's set (value) or delete (null). `dirty`: the version still has to reach Redis.
   * `wid`: the write's id; a resend of an applied write (same id) changes nothing.
   */
  | { readonly op: "cache.set"; readonly key: string; readonly value: Uint8Array | null; readonly expiresAt: number; readonly dirty: boolean; readonly wid?: string }
  /** Redis has these versions: [key, gen] pairs; a newer version of a key stays dirty. */
  | { readonly op: "cache.stored"; readonly items: readonly (readonly [string, number])[] }
  /** Forgets clean values that expired before `now` (the leader's clock), keeping memory bounded. */
  | { readonly op: "cache.purge"; readonly now: number }
  /**
   * Write-back: writes a home acknowledged from memory, in one entry. `by` is the home and its
   * term; the entry records that this home may hold more such writes (`dirtyBy`) until one with
   * `clean` says it holds none. Entries from a home's handoff (its writes, sent on by the next
   * home) carry the old home's `by` and `clean`.
   */
  | {
      readonly op: "cache.flush";
      readonly by: WriteBackOwner;
      readonly sets: readonly FlushedSet[];
      readonly wids: readonly string[];
      readonly clean: boolean;
      readonly dirty: boolean;
      /** Versions Redis has, as in cache.stored (recorded with the flush rather than on their own). */
      readonly stored?: readonly (readonly [string, number])[];
    }
  /** Write-back: the home `by` restarted before it handed its unwritten writes on: they are lost. */
  | { readonly op: "cache.lost"; readonly by: WriteBackOwner };

/** A home that acknowledged writes from memory in one of its terms as leader. */
export interface WriteBackOwner {
  readonly node: string;
  readonly term: number;
}

/** One write in a `cache.flush`: key, value (null: deleted), expiresAt. */
export type FlushedSet = readonly [string, Uint8Array | null, number];

/** What a proposer of `cache.set` gets back. */
export interface CacheSetResult {
  readonly gen: number;
  /** The write was a resend of one already applied (at `gen`): nothing changed. */
  readonly duplicate?: boolean;
}

/**
 * Write ids remembered per partition. A client resends a write only within its retry window
 * (seconds), far fewer writes than this apart; an older resend would apply again.
 */
export const WIDS_MAX = 50_000;

export function encodeCacheCommand(cmd: CacheCommand): Uint8Array {
  return encodeCommand(cmd);
}

/**
 * The values of one cache partition, replicated by its Raft group: this is the embedded store
 * (durable in every member's WAL), and with Redis as the store it is the authority for every key
 * written through dsync while Redis catches up. Pure and deterministic.
 */
export class CacheMachine implements StateMachine {
  #data = new Map<string, CacheEntry>();
  #dirty = 0;
  /** Applied write ids → the gen they wrote, oldest first. */
  #wids = new Map<string, number>();
  /**
   * The same ids in a ring, oldest at `#widHead` once full: evicting through the Map's own order
   * needs an iterator per write, which skips every slot deleted since the Map last rehashed.
   */
  #widRing: string[] = [];
  #widHead = 0;
  /** The home that may hold acknowledged writes not in this log yet (write-back), or null. */
  #dirtyBy: WriteBackOwner | null = null;
  /** Write-back terms whose unwritten writes were lost with their home (cache.lost applied). */
  #lost = 0;

  get size(): number {
    return this.#data.size;
  }

  /** Versions Redis has not confirmed yet. */
  get dirtyCount(): number {
    return this.#dirty;
  }

  get dirtyBy(): WriteBackOwner | null {
    return this.#dirtyBy;
  }

  get lostTerms(): number {
    return this.#lost;
  }

  /** Whether write `wid` was applied (a resend must not apply again). */
  hasWid(wid: string): boolean {
    return this.#wids.has(wid);
  }

  get(key: string): CacheEntry | undefined {
    return this.#data.get(key);
  }

  /** Every dirty version, for the flusher (a new leader flushes what the old one left). */
  *dirtyEntries(): IterableIterator<[string, CacheEntry]> {
    if (this.#dirty === 0) return;
    for (const e of this.#data) if (e[1].dirty) yield e;
  }

  /** Whether some clean value expired before `now`: a purge would free memory. */
  hasExpired(now: number): boolean {
    for (const e of this.#data.values()) if (!e.dirty && e.expiresAt > 0 && e.expiresAt <= now) return true;
    return false;
  }

  apply(entry: AppliedEntry): CacheSetResult | null {
    if (entry.data.length === 0) return null; // A leader's no-op.
    const cmd = decodeCommand(entry.data) as CacheCommand;
    switch (cmd.op) {
      case "cache.set": {
        const wid = typeof cmd.wid === "string" ? cmd.wid : null;
        if (wid !== null) {
          const gen = this.#wids.get(wid);
          // A resend (its reply was lost) of a write applied before: applying it again could put
          // its value back over a newer write.
          if (gen !== undefined) return { gen, duplicate: true };
          this.#noteWid(wid, entry.index);
        }
        this.#set(cmd.key, cmd.value, cmd.expiresAt, entry.index, cmd.dirty === true);
        return { gen: entry.index };
      }
      case "cache.flush":
        if (cmd.stored) this.#stored(cmd.stored);
        // The home deduplicated these writes against every wid before acknowledging them.
        for (const wid of cmd.wids) this.#noteWid(wid, entry.index);
        for (const [key, value, expiresAt] of cmd.sets) this.#set(key, value, expiresAt, entry.index, cmd.dirty);
        if (!cmd.clean) this.#dirtyBy = { node: cmd.by.node, term: cmd.by.term };
        else if (sameOwner(this.#dirtyBy, cmd.by)) this.#dirtyBy = null;
        return null;
      case "cache.lost":
        if (sameOwner(this.#dirtyBy, cmd.by)) {
          this.#dirtyBy = null;
          this.#lost++;
        }
        return null;
      case "cache.stored":
        this.#stored(cmd.items);
        return null;
      case "cache.purge":
        for (const [key, e] of [...this.#data]) if (!e.dirty && e.expiresAt > 0 && e.expiresAt <= cmd.now) this.#data.delete(key);
        return null;
      default:
        return null;
    }
  }

  snapshot(): Uint8Array {
    return encodeCommand({ entries: [...this.#data].map(([k, e]) => [k, e.value, e.expiresAt, e.gen, e.dirty]), wids: [...this.#wids], dirtyBy: this.#dirtyBy, lost: this.#lost });
  }

  restore(data: Uint8Array): void {
    const img = decodeCommand(data) as { entries: [string, Uint8Array | null, number, number, boolean][]; wids: [string, number][]; dirtyBy?: WriteBackOwner | null; lost?: number };
    // Copies: the image is the caller's buffer, and one value would otherwise pin all of it.
    this.#data = new Map(img.entries.map(([k, value, expiresAt, gen, dirty]) => [k, { value: value === null ? null : copyBytes(value), expiresAt, gen, dirty }]));
    this.#dirty = img.entries.filter((r) => r[4]).length;
    this.#wids = new Map(img.wids);
    this.#widRing = img.wids.map(([w]) => w);
    this.#widHead = 0;
    this.#dirtyBy = img.dirtyBy ?? null;
    this.#lost = img.lost ?? 0;
  }

  #stored(items: readonly (readonly [string, number])[]): void {
    for (const [key, gen] of items) {
      const e = this.#data.get(key);
      if (e?.dirty !== true || e.gen !== gen) continue;
      if (e.value === null) this.#remove(key);
      else this.#put(key, { ...e, dirty: false });
    }
  }

  #noteWid(wid: string, index: number): void {
    if (this.#wids.has(wid)) {
      this.#wids.set(wid, index); // Keeps its place in the order, as a Map does.
      return;
    }
    this.#wids.set(wid, index);
    if (this.#widRing.length < WIDS_MAX) {
      this.#widRing.push(wid);
      return;
    }
    this.#wids.delete(this.#widRing[this.#widHead]!);
    this.#widRing[this.#widHead] = wid;
    this.#widHead = (this.#widHead + 1) % WIDS_MAX;
  }

  #set(key: string, value: Uint8Array | null, expiresAt: number, gen: number, dirty: boolean): void {
    // A clean delete needs no tombstone: an absent key reads as null (from Redis too, once stored).
    if (value === null && !dirty) this.#remove(key);
    // A value from a write-back batch is a view into the whole batch: keep only its own bytes.
    else this.#put(key, { value: value === null ? null : ownBytes(value), expiresAt, gen, dirty });
  }

  #remove(key: string): void {
    if (this.#data.get(key)?.dirty === true) this.#dirty--;
    this.#data.delete(key);
  }

  #put(key: string, e: CacheEntry): void {
    const old = this.#data.get(key);
    this.#dirty += (e.dirty ? 1 : 0) - (old?.dirty === true ? 1 : 0);
    this.#data.set(key, e);
  }
}

function sameOwner(a: WriteBackOwner | null, b: WriteBackOwner): boolean {
  return a !== null && a.node === b.node && a.term === b.term;
}
