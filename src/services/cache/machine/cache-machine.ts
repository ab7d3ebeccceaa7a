import { decodeCommand, encodeCommand } from "../../command-codec.ts";
import type { AppliedEntry, StateMachine } from "../../state-machine.ts";

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
  | { readonly op: "cache.purge"; readonly now: number };

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

  get size(): number {
    return this.#data.size;
  }

  /** Versions Redis has not confirmed yet. */
  get dirtyCount(): number {
    return this.#dirty;
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
          this.#wids.set(wid, entry.index);
          if (this.#wids.size > WIDS_MAX) this.#wids.delete(this.#wids.keys().next().value!);
        }
        // A clean delete needs no tombstone: an absent key reads as null (from Redis too, once stored).
        if (cmd.value === null && cmd.dirty !== true) this.#remove(cmd.key);
        else this.#put(cmd.key, { value: cmd.value, expiresAt: cmd.expiresAt, gen: entry.index, dirty: cmd.dirty === true });
        return { gen: entry.index };
      }
      case "cache.stored":
        for (const [key, gen] of cmd.items) {
          const e = this.#data.get(key);
          if (e?.dirty !== true || e.gen !== gen) continue;
          if (e.value === null) this.#remove(key);
          else this.#put(key, { ...e, dirty: false });
        }
        return null;
      case "cache.purge":
        for (const [key, e] of [...this.#data]) if (!e.dirty && e.expiresAt > 0 && e.expiresAt <= cmd.now) this.#data.delete(key);
        return null;
      default:
        return null;
    }
  }

  snapshot(): Uint8Array {
    return encodeCommand({ entries: [...this.#data].map(([k, e]) => [k, e.value, e.expiresAt, e.gen, e.dirty]), wids: [...this.#wids] });
  }

  restore(data: Uint8Array): void {
    const img = decodeCommand(data) as { entries: [string, Uint8Array | null, number, number, boolean][]; wids: [string, number][] };
    this.#data = new Map(img.entries.map(([k, value, expiresAt, gen, dirty]) => [k, { value, expiresAt, gen, dirty }]));
    this.#dirty = img.entries.filter((r) => r[4]).length;
    this.#wids = new Map(img.wids);
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
