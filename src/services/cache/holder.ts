import { everyOnGrid } from "../../host/grid.ts";
import { monoNow } from "./lease.ts";
import { LineStore, type EvictionPolicy, type Line } from "./machine/index.ts";
import type { ReadGrant } from "./home.ts";

/** Most copies renewed in one round; the rest wait for the next (a quarter lease later). */
const RENEW_BATCH_MAX = 20_000;

/** A miss in flight: shared by the gets of one key that may use its answer. */
interface PendingMiss {
  /** Set when the home invalidated the key while the miss was in flight: its answer is not cached. */
  invalidated: boolean;
  readonly result: Promise<{ grant: ReadGrant; leaseUntil: number }>;
}

/** A read as a node answers it: the value, and until when the node's copy of it is leased (0: no copy). */
export interface HeldValue {
  readonly value: Uint8Array | null;
  readonly expiresAt: number;
  readonly gen: number;
  readonly leaseUntil: number;
}

export interface CacheHolderOptions {
  readonly capacity: number;
  readonly capacityBytes: number;
  readonly evictionPolicy: EvictionPolicy;
  /** The copies' lease. */
  readonly leaseMs: number;
  /** Asks the key's home for a leased copy (retrying while the home moves). */
  readonly fetch: (key: string) => Promise<{ grant: ReadGrant; home: string }>;
  /** Asks the current home of each key to extend the leases of these copies; resolves with the keys it renewed. */
  readonly renew: (items: [string, number][]) => Promise<string[]>;
  readonly count: (what: "hits" | "misses" | "evictions" | "invReceived", by?: number) => void;
}

/**
 * The holder role: this node's leased copies. A copy is served only while its lease runs (from
 * the moment its request was sent); a miss asks the key's home. Concurrent misses of one key share
 * one request, but a get may use its answer only if it began before the copy's lease ends — a
 * write that could not reach this node waited that long — and an answer the home invalidated
 * while it was in flight is returned to the gets that asked but never cached.
 */
export class CacheHolder {
  readonly #o: CacheHolderOptions;
  readonly lines: LineStore;
  readonly #pending = new Map<string, PendingMiss>();
  #stopRenewing: (() => void) | null = null;
  #renewing = false;

  constructor(o: CacheHolderOptions) {
    this.#o = o;
    this.lines = new LineStore(o.capacity, o.capacityBytes, o.evictionPolicy);
  }

  start(): void {
    this.#stopRenewing = everyOnGrid(Math.max(10, Math.floor(this.#o.leaseMs / 4)), () => void this.#renewSoon());
  }

  stop(): void {
    this.#stopRenewing?.();
  }

  /** The live copy of `key`, counted as a use; expired copies are dropped. */
  hit(key: string): Line | undefined {
    const line = this.lines.touch(key);
    if (line === undefined) return undefined;
    const now = monoNow();
    if (line.leaseUntil > now) {
      line.usedAt = now;
      return line;
    }
    this.lines.delete(key);
    return undefined;
  }

  /** Reads `key` through this node: its live copy, else the home's grant. */
  async get(key: string): Promise<HeldValue> {
    const line = this.hit(key);
    if (line) {
      this.#o.count("hits");
      return line;
    }
    this.#o.count("misses");
    const startedAt = monoNow();
    for (;;) {
      let p = this.#pending.get(key);
      // A miss the home already invalidated holds a value older than a write that may have
      // completed since: start a new one.
      if (!p || p.invalidated) p = this.#miss(key);
      const { grant, leaseUntil } = await p.result;
      // Our get began after the copy's lease ended: a write may have completed without reaching
      // this node (it waited the lease out instead), so the answer is too old for us.
      if (startedAt >= leaseUntil) continue;
      return { value: grant.value, expiresAt: grant.expiresAt, gen: grant.gen, leaseUntil: p.invalidated ? 0 : leaseUntil };
    }
  }

  /** The home dropped these keys: forget the copies, and void the misses in flight. */
  invalidate(keys: readonly string[]): void {
    for (const key of keys) {
      this.#o.count("invReceived");
      this.lines.delete(key);
      const p = this.#pending.get(key);
      if (p) p.invalidated = true;
    }
  }

  /**
   * Renews the leases of copies read during their current lease that run out within half a
   * lease: a key read at least once a lease stays local. A renewal extends a copy from when its
   * request was sent, like a grant; a copy invalidated, replaced or evicted meanwhile is left as
   * it is. Copies nobody reads simply expire, so an idle node sends nothing. (Renewing every copy
   * read in the last 30 s kept tens of thousands of keys read once alive after a burst of misses,
   * two renewals a second each, and that background work took a third of later cells' throughput.)
   */
  async #renewSoon(): Promise<void> {
    if (this.#renewing || this.lines.size === 0) return;
    const sentAt = monoNow();
    const items: [string, number][] = [];
    for (const line of this.lines.lines()) {
      if (line.leaseUntil <= sentAt || line.leaseUntil - sentAt > this.#o.leaseMs / 2 || line.usedAt < line.leaseUntil - this.#o.leaseMs) continue;
      items.push([line.key, line.gen]);
      if (items.length >= RENEW_BATCH_MAX) break;
    }
    if (items.length === 0) return;
    this.#renewing = true;
    try {
      const renewed = await this.#o.renew(items);
      const gens = new Map(items);
      for (const key of renewed) {
        const line = this.lines.peek(key);
        if (line !== undefined && line.gen === gens.get(key)) line.leaseUntil = Math.max(line.leaseUntil, sentAt + this.#o.leaseMs);
      }
    } catch {
      // Copies not renewed simply run out; the next read asks the home.
    } finally {
      this.#renewing = false;
    }
  }

  #miss(key: string): PendingMiss {
    const sentAt = monoNow();
    const p: PendingMiss = {
      invalidated: false,
      result: this.#o.fetch(key).then(
        ({ grant, home }) => {
          // No await between the reply and here: an invalidation handled after this drops the copy.
          if (this.#pending.get(key) === p) this.#pending.delete(key);
          const leaseUntil = sentAt + grant.leaseMs;
          if (!p.invalidated && leaseUntil > monoNow()) {
            const evicted = this.lines.put({ key, value: grant.value, expiresAt: grant.expiresAt, gen: grant.gen, home, leaseUntil, usedAt: monoNow() });
            if (evicted.length > 0) this.#o.count("evictions", evicted.length);
          }
          return { grant, leaseUntil };
        },
        (err: unknown) => {
          if (this.#pending.get(key) === p) this.#pending.delete(key);
          throw err;
        },
      ),
    };
    this.#pending.set(key, p);
    return p;
  }
}
