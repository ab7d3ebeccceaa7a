import { CacheHomeUnavailableError } from "../../../protocol/index.ts";
import { monoNow } from "./lease.ts";
import { encodeCacheCommand, type FlushedSet, type WriteBackOwner } from "./machine/index.ts";

/** `CACHE_WRITE_POLICY`: write-through (a set returns once committed) or write-back (from the home's memory). */
export const CACHE_WRITE_POLICIES = ["write-back", "write-through"] as const;
export type CacheWritePolicy = (typeof CACHE_WRITE_POLICIES)[number];

/** A write a home acknowledged and its partition's log does not have yet. */
export interface PendingWrite {
  readonly value: Uint8Array | null;
  readonly expiresAt: number;
}

export interface WriteBackOptions {
  readonly owner: WriteBackOwner;
  /** The longest an acknowledged write may stay out of the log: a crash loses at most this much. */
  readonly windowMs: number;
  /** Whether the versions still have to reach Redis once in the log. */
  readonly storeDirty: boolean;
  /** How long without a write before the home records that it holds none (so a failover needs no handoff). */
  readonly cleanAfterMs: number;
  readonly propose: (data: Uint8Array) => Promise<unknown>;
  /** A flush reached the log (the Redis flusher may run). */
  readonly onCommitted: () => void;
}

/** What a home that stopped leading still holds for the next home: every write it acknowledged that may be missing from the log. */
export interface HandoffRecord {
  readonly sets: FlushedSet[];
  readonly wids: string[];
}

/** CACHE_HANDOFF's answer: still leading that term, nothing held (restarted since), or every write it held. */
export type HandoffReply = { readonly state: "home" } | { readonly state: "none" } | ({ readonly state: "held" } & HandoffRecord);

const RETRY_MS = 50;

/**
 * Write-back at a home, for one partition and one term as its leader: a write is acknowledged from
 * memory and reaches the partition's log in the next flush (flushes run back to back, one at a
 * time, each carrying every write since the last). Two rules make it safe:
 * - before the first acknowledgement, a flush records in the log that this home (node and term)
 *   may hold writes the log lacks; a later home reads that record and must get those writes from
 *   this one (a handoff) before it serves the partition, or learn they were lost (this node
 *   restarted);
 * - a write is acknowledged only while every acknowledged write not yet in the log is younger than
 *   `windowMs`: if the log stops taking flushes (this home lost its majority), writes wait instead,
 *   so a crash loses at most the last `windowMs` of acknowledged writes.
 */
export class WriteBack {
  readonly #o: WriteBackOptions;
  #pending = new Map<string, PendingWrite>();
  #pendingWids: string[] = [];
  /** Versions Redis confirmed, recorded by the next flush (cache.stored items). */
  #stored: (readonly [string, number])[] = [];
  #pendingSince: number | null = null;
  /** The flush in flight: its writes stay readable here until it is applied. */
  #inflight: { sets: Map<string, PendingWrite>; wids: string[]; since: number | null } | null = null;
  readonly #wids = new Set<string>();
  /** Whether the log records this home as holding writes (a committed flush without `clean`). */
  #marked = false;
  #closed = false;
  #lastWriteAt = 0;
  #waiters: (() => void)[] = [];
  #cleanTimer: NodeJS.Timeout | null = null;
  #kickTimer: NodeJS.Timeout | null = null;
  #lastFlushAt = -Infinity;
  /** Flushes start at most this often: each is a log commit, and fewer carry more writes each. */
  readonly #gapMs: number;

  constructor(o: WriteBackOptions) {
    this.#o = o;
    this.#gapMs = o.windowMs / 4;
  }

  get owner(): WriteBackOwner {
    return this.#o.owner;
  }

  /** Writes acknowledged (or being acknowledged) and not yet applied to the log. */
  get backlog(): number {
    return this.#pending.size + (this.#inflight?.sets.size ?? 0);
  }

  /** The newest value of `key` not yet in the log, if any. */
  lookup(key: string): PendingWrite | undefined {
    return this.#pending.get(key) ?? this.#inflight?.sets.get(key);
  }

  /** Whether write `wid` is held here (a resend must not apply it twice). */
  holds(wid: string): boolean {
    return this.#wids.has(wid);
  }

  /**
   * Takes a write and resolves once it may be acknowledged.
   * @throws CacheHomeUnavailableError when this home stops (leadership lost, node stopping) first:
   * the write may still reach the log (through the next home's handoff).
   */
  async add(key: string, value: Uint8Array | null, expiresAt: number, wid: string): Promise<void> {
    this.take(key, value, expiresAt, wid);
    while (!this.#mayAck()) {
      if (this.#closed) throw stopped();
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  /** Whether a write taken now may be acknowledged at once (taking one does not change this). */
  get canAckNow(): boolean {
    return !this.#closed && this.#mayAck();
  }

  /**
   * Takes a write without waiting: the caller acknowledges it only if {@link canAckNow} held.
   * @throws CacheHomeUnavailableError when this home has stopped.
   */
  take(key: string, value: Uint8Array | null, expiresAt: number, wid: string): void {
    if (this.#closed) throw stopped();
    const now = monoNow();
    this.#pending.set(key, { value, expiresAt });
    this.#pendingWids.push(wid);
    this.#wids.add(wid);
    this.#pendingSince ??= now;
    this.#lastWriteAt = now;
    this.#kick();
  }

  /**
   * Takes Redis confirmations to record in the next flush, when one is coming anyway (writes are
   * flowing); false when the caller should record them itself.
   */
  carryStored(items: readonly (readonly [string, number])[]): boolean {
    if (this.#closed || !this.#marked || (this.#pending.size === 0 && this.#inflight === null)) return false;
    this.#stored.push(...items);
    return true;
  }

  /** Stops taking writes (leadership lost); what is held stays here for the next home's handoff. */
  freeze(): HandoffRecord {
    this.#close();
    return this.record();
  }

  /** Every write held that may be missing from the log: the in-flight flush's, then newer ones. */
  record(): HandoffRecord {
    const sets = new Map(this.#inflight?.sets ?? []);
    for (const [k, w] of this.#pending) sets.set(k, w);
    return { sets: [...sets].map(([k, w]) => [k, w.value, w.expiresAt] as const), wids: [...(this.#inflight?.wids ?? []), ...this.#pendingWids] };
  }

  /** Stops taking writes and writes everything held to the log, recording this home clean (a graceful stop). */
  async drain(timeoutMs: number): Promise<void> {
    this.#close();
    const deadline = monoNow() + timeoutMs;
    while (this.#inflight !== null && monoNow() < deadline) await new Promise((r) => setTimeout(r, 5));
    if (!this.#marked && this.#pending.size === 0) return;
    const r = this.record();
    await this.#o.propose(encodeCacheCommand({ op: "cache.flush", by: this.#o.owner, sets: r.sets, wids: r.wids, clean: true, dirty: this.#o.storeDirty }));
  }

  #close(): void {
    this.#closed = true;
    if (this.#cleanTimer) clearTimeout(this.#cleanTimer);
    if (this.#kickTimer) clearTimeout(this.#kickTimer);
    this.#cleanTimer = null;
    this.#kickTimer = null;
    this.#wake();
  }

  #mayAck(): boolean {
    if (!this.#marked) return false;
    const oldest = Math.min(this.#inflight?.since ?? Infinity, this.#pendingSince ?? Infinity);
    return monoNow() - oldest <= this.#o.windowMs;
  }

  #wake(): void {
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w();
  }

  /** Starts the next flush unless one is in flight, or a flush started less than a gap ago (batching). */
  #kick(): void {
    if (this.#inflight !== null || this.#closed || this.#kickTimer !== null) return;
    if (this.#pending.size === 0 && this.#pendingWids.length === 0) return;
    const wait = this.#lastFlushAt + this.#gapMs - monoNow();
    if (wait > 0 && this.#marked) {
      this.#kickTimer = setTimeout(() => {
        this.#kickTimer = null;
        this.#kick();
      }, wait);
      return;
    }
    this.#lastFlushAt = monoNow();
    const batch = { sets: this.#pending, wids: this.#pendingWids, since: this.#pendingSince };
    const stored = this.#stored;
    this.#pending = new Map();
    this.#pendingWids = [];
    this.#pendingSince = null;
    this.#stored = [];
    this.#inflight = batch;
    const sets = [...batch.sets].map(([k, w]) => [k, w.value, w.expiresAt] as const);
    this.#o.propose(encodeCacheCommand({ op: "cache.flush", by: this.#o.owner, sets, wids: batch.wids, clean: false, dirty: this.#o.storeDirty, ...(stored.length > 0 && { stored }) })).then(
      () => {
        this.#inflight = null;
        for (const w of batch.wids) this.#wids.delete(w);
        this.#marked = true;
        this.#o.onCommitted();
        this.#wake();
        this.#kick();
        this.#scheduleClean();
      },
      () => {
        // Not applied, or unknown: send these writes again with the next batch (newer values of a key win).
        if (this.#closed) {
          this.#wake();
          return;
        }
        for (const [k, w] of this.#pending) batch.sets.set(k, w);
        this.#pending = batch.sets;
        this.#stored.unshift(...stored);
        this.#pendingWids = [...batch.wids, ...this.#pendingWids];
        this.#pendingSince = Math.min(batch.since ?? Infinity, this.#pendingSince ?? Infinity);
        this.#inflight = null;
        this.#wake();
        setTimeout(() => this.#kick(), RETRY_MS).unref();
      },
    );
  }

  /** Once no write came for `cleanAfterMs`, records in the log that this home holds none. */
  #scheduleClean(): void {
    if (this.#cleanTimer !== null) return;
    this.#cleanTimer = setTimeout(() => {
      this.#cleanTimer = null;
      if (this.#closed || !this.#marked) return;
      if (this.#inflight !== null || this.#pending.size > 0 || monoNow() - this.#lastWriteAt < this.#o.cleanAfterMs) {
        this.#scheduleClean();
        return;
      }
      const batch = { sets: new Map<string, PendingWrite>(), wids: [] as string[], since: null };
      this.#inflight = batch;
      this.#o.propose(encodeCacheCommand({ op: "cache.flush", by: this.#o.owner, sets: [], wids: [], clean: true, dirty: this.#o.storeDirty })).then(
        () => {
          this.#inflight = null;
          this.#marked = false;
          this.#wake();
          this.#kick();
        },
        () => {
          // It may still apply: from here on, acknowledge only after a new flush records this home again.
          this.#inflight = null;
          this.#marked = false;
          this.#wake();
          this.#kick();
        },
      );
    }, this.#o.cleanAfterMs);
    this.#cleanTimer.unref();
  }
}

function stopped(): CacheHomeUnavailableError {
  return new CacheHomeUnavailableError("this node stopped being the home of the key's partition while the write waited; retry (with the same write id)");
}
