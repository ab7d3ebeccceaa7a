import { setTimeout as sleep } from "node:timers/promises";
import { CacheHomeUnavailableError, DsyncError, ErrorCode, Op } from "../../../protocol/index.ts";
import type { Logger } from "../../server/logger.ts";
import { PROPOSE_TIMEOUT_MS } from "../../server/proposer.ts";
import { wallNow } from "../../server/wall-clock.ts";
import type { PeerLinks } from "../../transport/peer-links.ts";
import { KeyQueue } from "./key-queue.ts";
import { electionFenceMs, homeLeaseEnd, monoNow } from "./lease.ts";
import { encodeCacheCommand, type CacheSetResult } from "./machine/index.ts";
import type { CachePartition, CachePartitions } from "./partitions.ts";
import type { RedisStore, StoredValue } from "./store.ts";

/** What a home grants a reader: the value, the log index that wrote it, and the copy's lease. */
export interface ReadGrant extends StoredValue {
  readonly gen: number;
  readonly leaseMs: number;
}

export interface CacheHomeOptions {
  readonly self: string;
  readonly partitions: CachePartitions;
  readonly peers: PeerLinks;
  readonly leaseMs: number;
  readonly redis: RedisStore | null;
  readonly writeThrough: boolean;
  readonly writeBackMs: number;
  readonly log: Logger;
  /** This node's own copies (the home is a holder like any other). */
  readonly invalidateLocal: (keys: string[]) => Promise<void>;
  readonly count: (what: "invSent" | "storeWrites", by?: number) => void;
}

/** One leadership period of a partition on this node. */
interface Tenure {
  readonly readyAt: number;
}

const STORE_RETRY_MS = 200;
const PURGE_EVERY_MS = 10_000;

/**
 * The home role: for the partitions this node leads, it serializes each key's reads and writes
 * (a per-key queue), grants leased copies after a ReadIndex round, and lets a write commit only
 * once every copy granted in this tenure is dropped or its lease has run out. With Redis as the
 * store it also writes committed versions there and records that they arrived.
 */
export class CacheHome {
  readonly #o: CacheHomeOptions;
  readonly #queue = new KeyQueue();
  readonly #tenures = new Map<number, Tenure>();
  /** Copies granted in the current tenures: key → node → end of its lease (home clock). */
  readonly #holders = new Map<string, Map<string, number>>();
  readonly #barriers = new Map<number, Promise<void>>();
  #flushTimer: NodeJS.Timeout | null = null;
  #flushing = false;
  #purgeTimer: NodeJS.Timeout | null = null;
  /** Versions Redis confirmed, waiting to be recorded in their partition's log. */
  readonly #stored = new Map<number, [string, number][]>();

  constructor(o: CacheHomeOptions) {
    this.#o = o;
  }

  start(): void {
    this.#purgeTimer = setInterval(() => this.#purge(), PURGE_EVERY_MS);
    this.#purgeTimer.unref();
  }

  stop(): void {
    if (this.#purgeTimer) clearInterval(this.#purgeTimer);
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
  }

  /** Copies granted and not yet seen expire. */
  get holderEntries(): number {
    let n = 0;
    for (const m of this.#holders.values()) n += m.size;
    return n;
  }

  /** Partitions this node is home of. */
  homeOf(): number[] {
    return this.#o.partitions
      .all()
      .filter((p) => p.group.isLeader)
      .map((p) => p.partition);
  }

  dirty(): number {
    return this.#o.partitions
      .all()
      .filter((p) => p.group.isLeader)
      .reduce((n, p) => n + p.machine.dirtyCount, 0);
  }

  /** The holders of `key` with the time left on each (CACHE_STATE), or null when this node is not its home. */
  holdersOf(key: string): { node: string; leaseMs: number }[] | null {
    const part = this.#o.partitions.partFor(key);
    if (!part.group.isLeader) return null;
    const now = monoNow();
    return [...(this.#holders.get(key) ?? [])].filter(([, until]) => until > now).map(([node, until]) => ({ node, leaseMs: Math.ceil(until - now) }));
  }

  /** A partition's leadership changed on this node. */
  onRoleChange(part: CachePartition, leader: boolean): void {
    const p = part.partition;
    if (leader) {
      this.#tenures.set(p, { readyAt: monoNow() + electionFenceMs(this.#o.leaseMs) });
      this.#o.log.info({ partition: p, fenceMs: Math.round(electionFenceMs(this.#o.leaseMs)) }, "cache: home of a partition; serving once earlier copies' leases have run out");
      if (this.#o.redis !== null && part.machine.dirtyCount > 0) this.#scheduleFlush(0);
      return;
    }
    if (!this.#tenures.delete(p)) return;
    // Copies granted in the ended tenure stay fenced by their leases: the next home waits them out.
    for (const key of [...this.#holders.keys()]) if (this.#o.partitions.partitionOf(key) === p) this.#holders.delete(key);
  }

  /** Grants `from` a leased copy of `key`. */
  read(from: string, key: string): Promise<ReadGrant> {
    const part = this.#partOf(key);
    return this.#queue.run(key, async () => {
      const tenure = await this.#ready(part, key);
      await this.#barrier(part);
      let v: StoredValue & { gen: number };
      const e = part.machine.get(key);
      if (e !== undefined) v = e;
      else if (this.#o.redis !== null) v = { ...(await this.#o.redis.read(key)), gen: 0 };
      else v = { value: null, expiresAt: 0, gen: 0 };
      this.#checkTenure(part, tenure, key);
      const grantAt = monoNow();
      let hs = this.#holders.get(key);
      if (!hs) this.#holders.set(key, (hs = new Map()));
      hs.set(from, homeLeaseEnd(grantAt, this.#o.leaseMs));
      return { value: v.value, expiresAt: v.expiresAt, gen: v.gen, leaseMs: this.#o.leaseMs };
    });
  }

  /**
   * Extends the leases of `from`'s copies that are still current (same version, no write of the
   * key under way) after one ReadIndex round, exactly as a new grant would; returns the keys
   * renewed. Keeps hot keys served locally without a miss every lease.
   */
  async renew(from: string, items: readonly (readonly [string, number])[]): Promise<string[]> {
    const parts = new Map<number, CachePartition>();
    for (const [key] of items) {
      const part = this.#o.partitions.partFor(key);
      if (part.group.isLeader && this.#tenures.has(part.partition)) parts.set(part.partition, part);
    }
    const tenures = new Map<number, Tenure>();
    for (const part of parts.values()) {
      const t = this.#tenures.get(part.partition);
      if (t === undefined || t.readyAt > monoNow()) continue;
      tenures.set(part.partition, t);
    }
    await Promise.all([...parts.values()].filter((p) => tenures.has(p.partition)).map((p) => this.#barrier(p)));
    // From here to the return, no await: a write that starts later sees the renewed holders.
    const renewed: string[] = [];
    const until = homeLeaseEnd(monoNow(), this.#o.leaseMs);
    for (const [key, gen] of items) {
      const part = parts.get(this.#o.partitions.partitionOf(key));
      if (!part || tenures.get(part.partition) !== this.#tenures.get(part.partition) || !part.group.isLeader) continue;
      if (this.#queue.busy(key) || (part.machine.get(key)?.gen ?? 0) !== gen) continue;
      let hs = this.#holders.get(key);
      if (!hs) this.#holders.set(key, (hs = new Map()));
      hs.set(from, until);
      renewed.push(key);
    }
    return renewed;
  }

  /** Writes `key` (null deletes): every copy dropped or expired, then committed (and, write-through, in Redis). */
  write(key: string, value: Uint8Array | null, expiresAt: number, wid: string): Promise<CacheSetResult> {
    const part = this.#partOf(key);
    return this.#queue.run(key, async () => {
      const tenure = await this.#ready(part, key);
      await this.#dropCopies(key);
      this.#checkTenure(part, tenure, key);
      const redis = this.#o.redis;
      const r = (await part.group.propose(encodeCacheCommand({ op: "cache.set", key, value, expiresAt, dirty: redis !== null, wid }), PROPOSE_TIMEOUT_MS)) as CacheSetResult;
      if (redis === null) return r;
      // A resend of an applied write: Redis gets its version if it is still the newest (a
      // newer one reaches Redis on its own).
      if (r.duplicate === true && part.machine.get(key)?.gen !== r.gen) return r;
      if (!this.#o.writeThrough) {
        this.#scheduleFlush(this.#o.writeBackMs);
        return r;
      }
      try {
        if (await redis.write(key, r.gen, { value, expiresAt }, wallNow())) this.#o.count("storeWrites");
        this.#noteStored(part, key, r.gen);
      } catch (err) {
        this.#scheduleFlush(STORE_RETRY_MS);
        throw new DsyncError(ErrorCode.CACHE_STORE_ERROR, `the write is committed in the cache (every read sees it) but Redis did not take it; it is retried until Redis does: ${(err as Error).message}`);
      }
      return r;
    });
  }

  /** Drops every copy of `key` cluster-wide (CACHE_INVALIDATE). */
  drop(key: string): Promise<void> {
    const part = this.#partOf(key);
    return this.#queue.run(key, async () => {
      const tenure = await this.#ready(part, key);
      await this.#dropCopies(key);
      this.#checkTenure(part, tenure, key);
    });
  }

  // ---------------------------------------------------------------- tenure and fencing

  #partOf(key: string): CachePartition {
    const part = this.#o.partitions.partFor(key);
    if (!part.group.isLeader || !this.#tenures.has(part.partition)) throw wrongHome(this.#o.self, key);
    return part;
  }

  /** Waits out the election fence; returns the tenure the request runs under. */
  async #ready(part: CachePartition, key: string): Promise<Tenure> {
    const t = this.#tenures.get(part.partition);
    if (t === undefined || !part.group.isLeader) throw wrongHome(this.#o.self, key);
    const wait = t.readyAt - monoNow();
    if (wait > 0) await sleep(wait);
    this.#checkTenure(part, t, key);
    return t;
  }

  #checkTenure(part: CachePartition, t: Tenure, key: string): void {
    if (this.#tenures.get(part.partition) !== t || !part.group.isLeader) throw wrongHome(this.#o.self, key);
  }

  /** One ReadIndex round per partition per event-loop turn, shared by every read that asked before it was sent. */
  #barrier(part: CachePartition): Promise<void> {
    let b = this.#barriers.get(part.partition);
    if (b === undefined) {
      b = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.#barriers.delete(part.partition);
        return part.group.readBarrier(PROPOSE_TIMEOUT_MS);
      });
      this.#barriers.set(part.partition, b);
    }
    return b.catch((err: unknown) => {
      if (err instanceof DsyncError && err.code === ErrorCode.NOT_LEADER) throw new CacheHomeUnavailableError(`this node stopped being the home of the key's partition; retry`);
      throw err;
    });
  }

  /** Drops every copy of `key` this tenure granted: each holder confirms, or its lease runs out. */
  async #dropCopies(key: string): Promise<void> {
    const hs = this.#holders.get(key);
    if (!hs) return;
    this.#holders.delete(key);
    const live = [...hs].filter(([, until]) => until > monoNow());
    this.#o.count("invSent", live.length);
    await Promise.all(live.map(([node, until]) => this.#dropCopy(node, key, until)));
  }

  async #dropCopy(node: string, key: string, until: number): Promise<void> {
    const left = until - monoNow();
    if (left <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((r) => (timer = setTimeout(r, left)));
    const asked = node === this.#o.self ? this.#o.invalidateLocal([key]) : this.#o.peers.request(node, Op.CACHE_INVALIDATE_COPY, { keys: [key] }, left);
    // A holder that does not confirm (unreachable, paused, slow) stops serving when its lease ends.
    await Promise.race([asked.then(() => undefined, () => expired), expired]);
    clearTimeout(timer);
  }

  // ---------------------------------------------------------------- Redis

  #noteStored(part: CachePartition, key: string, gen: number): void {
    let items = this.#stored.get(part.partition);
    if (items) {
      items.push([key, gen]);
      return;
    }
    this.#stored.set(part.partition, (items = [[key, gen]]));
    // Recorded in batches: one log entry for every version stored during one turn.
    setImmediate(() => {
      this.#stored.delete(part.partition);
      if (!part.group.isLeader) return;
      part.group.propose(encodeCacheCommand({ op: "cache.stored", items }), PROPOSE_TIMEOUT_MS).catch(() => {
        // Still dirty in the log: the next flush writes them again (Redis refuses nothing newer).
        this.#scheduleFlush(STORE_RETRY_MS);
      });
    });
  }

  #scheduleFlush(ms: number): void {
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = null;
      void this.#flush();
    }, ms);
    this.#flushTimer.unref();
  }

  /** Writes every dirty version of the partitions this node leads to Redis. */
  async #flush(): Promise<void> {
    const redis = this.#o.redis;
    if (redis === null) return;
    if (this.#flushing) {
      this.#scheduleFlush(Math.max(this.#o.writeBackMs, 1));
      return;
    }
    this.#flushing = true;
    let failed = false;
    try {
      for (const part of this.#o.partitions.all()) {
        if (!part.group.isLeader) continue;
        const batch = [...part.machine.dirtyEntries()];
        await Promise.all(
          batch.map(async ([key, e]) => {
            try {
              if (await redis.write(key, e.gen, e, wallNow())) this.#o.count("storeWrites");
              this.#noteStored(part, key, e.gen);
            } catch (err) {
              failed = true;
              this.#o.log.warn({ key, err: (err as Error).message }, "cache: writing a version to Redis failed; retrying");
            }
          }),
        );
      }
    } finally {
      this.#flushing = false;
    }
    if (failed) this.#scheduleFlush(STORE_RETRY_MS);
  }

  #purge(): void {
    const now = wallNow();
    for (const part of this.#o.partitions.all()) {
      if (!part.group.isLeader || !part.machine.hasExpired(now)) continue;
      part.group.propose(encodeCacheCommand({ op: "cache.purge", now }), PROPOSE_TIMEOUT_MS).catch(() => {});
    }
  }
}

function wrongHome(self: string, key: string): DsyncError {
  return new DsyncError(ErrorCode.CACHE_WRONG_HOME, `${self} is not the home of ${JSON.stringify(key)} (not the leader of its partition)`);
}

