import { everyOnGrid } from "../../host/grid.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { CacheHomeUnavailableError, DsyncError, ErrorCode, Op } from "../../../protocol/index.ts";
import type { Logger } from "../../host/logger.ts";
import { PROPOSE_TIMEOUT_MS } from "../../host/proposer.ts";
import { wallNow } from "../../host/wall-clock.ts";
import type { PeerLinks } from "../../transport/peer-links.ts";
import { KeyQueue } from "./key-queue.ts";
import { electionFenceMs, homeLeaseEnd, monoNow } from "./lease.ts";
import { encodeCacheCommand, type CacheSetResult, type WriteBackOwner } from "./machine/index.ts";
import type { CachePartition, CachePartitions } from "./partitions.ts";
import type { RedisStore, StoredValue } from "./store.ts";
import { handoffReplyOf } from "./wire.ts";
import { WriteBack, type HandoffRecord, type HandoffReply } from "./write-back.ts";

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
  readonly count: (what: "invSent" | "storeWrites" | "writeBackLost", by?: number) => void;
}

/** One leadership period of a partition on this node. */
interface Tenure {
  readonly readyAt: number;
  readonly term: number;
  /** Write-back: the writes this home acknowledged from memory; null with write-through. */
  readonly wb: WriteBack | null;
  /** Whether the log lacks no write an earlier home acknowledged (its handoff is done). */
  takenOver: boolean;
  /** The earlier home whose handoff this tenure waits for. */
  waitingFor: string | null;
  takeover: Promise<void>;
}

const STORE_RETRY_MS = 200;
const PURGE_EVERY_MS = 10_000;
/** A write-back home idle this long records in the log that it holds no writes (a failover then needs no handoff). */
const CLEAN_AFTER_MS = 1000;
/** How long a request waits for a handoff before its answer is CACHE_HOME_UNAVAILABLE (retryable). */
const HANDOFF_WAIT_MS = 2000;

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
  #stopPurging: (() => void) | null = null;
  /** Versions Redis confirmed, waiting to be recorded in their partition's log. */
  readonly #stored = new Map<number, [string, number][]>();
  /** Write-back: what this node held when a term of leading a partition ended, for the next home ("partition:term"). */
  readonly #handoffs = new Map<string, { partition: number; owner: WriteBackOwner; record: HandoffRecord }>();

  constructor(o: CacheHomeOptions) {
    this.#o = o;
  }

  start(): void {
    this.#stopPurging = everyOnGrid(PURGE_EVERY_MS, () => this.#purge());
  }

  stop(): void {
    this.#stopPurging?.();
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
    const part = this.#o.partitions.localPart(key);
    if (!part?.group.isLeader) return null;
    const now = monoNow();
    return [...(this.#holders.get(key) ?? [])].filter(([, until]) => until > now).map(([node, until]) => ({ node, leaseMs: Math.ceil(until - now) }));
  }

  /** A partition's leadership changed on this node. */
  onRoleChange(part: CachePartition, leader: boolean): void {
    const p = part.partition;
    if (leader) {
      const term = part.group.status().term;
      const t: Tenure = { readyAt: monoNow() + electionFenceMs(this.#o.leaseMs), term, wb: this.#writeBack(part, term), takenOver: false, waitingFor: null, takeover: Promise.resolve() };
      this.#tenures.set(p, t);
      t.takeover = this.#takeOver(part, t);
      this.#o.log.info({ partition: p, fenceMs: Math.round(electionFenceMs(this.#o.leaseMs)) }, "cache: home of a partition; serving once earlier copies' leases have run out");
      if (this.#o.redis !== null && part.machine.dirtyCount > 0) this.#scheduleFlush(0);
      return;
    }
    const t = this.#tenures.get(p);
    if (t === undefined) return;
    this.#tenures.delete(p);
    if (t.wb !== null) this.#handoffs.set(`${p}:${t.term}`, { partition: p, owner: t.wb.owner, record: t.wb.freeze() });
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
      // A write acknowledged from memory has no log index yet: gen 0, which is never renewed.
      const held = tenure.wb?.lookup(key);
      if (held !== undefined) v = { ...held, gen: 0 };
      else if (e !== undefined) v = e;
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
      const part = this.#o.partitions.localPart(key);
      if (part?.group.isLeader && this.#tenures.has(part.partition)) parts.set(part.partition, part);
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
      if (gen === 0 || this.#queue.busy(key) || this.#tenures.get(part.partition)?.wb?.lookup(key) !== undefined || part.machine.get(key)?.gen !== gen) continue;
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
    if (!this.#queue.busy(key)) {
      const done = this.#writeNow(part, key, value, expiresAt, wid);
      if (done !== null) return Promise.resolve(done);
    }
    return this.#queue.run(key, async () => {
      const tenure = await this.#ready(part, key);
      await this.#dropCopies(key);
      this.#checkTenure(part, tenure, key);
      if (tenure.wb !== null) {
        if (part.machine.hasWid(wid) || tenure.wb.holds(wid)) return { gen: 0, duplicate: true };
        await tenure.wb.add(key, value, expiresAt, wid);
        return { gen: 0 };
      }
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

  /**
   * The common write-back case, done in this turn: nothing queued for the key, the tenure ready,
   * no copy to drop and the write acknowledgeable at once. The same steps as the queued path, with
   * nothing to wait for, so no other request for the key can come between them. Null: take the
   * queued path.
   */
  #writeNow(part: CachePartition, key: string, value: Uint8Array | null, expiresAt: number, wid: string): CacheSetResult | null {
    const t = this.#readyNow(part);
    if (t?.wb == null || this.#holders.has(key) || !t.wb.canAckNow) return null;
    if (part.machine.hasWid(wid) || t.wb.holds(wid)) return { gen: 0, duplicate: true };
    t.wb.take(key, value, expiresAt, wid);
    return { gen: 0 };
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
    const part = this.#o.partitions.localPart(key);
    if (!part?.group.isLeader || !this.#tenures.has(part.partition)) throw wrongHome(this.#o.self, key);
    return part;
  }

  /** Waits out the election fence; returns the tenure the request runs under. */
  async #ready(part: CachePartition, key: string): Promise<Tenure> {
    const now = this.#readyNow(part);
    if (now !== null) return now;
    const t = this.#tenures.get(part.partition);
    if (t === undefined || !part.group.isLeader) throw wrongHome(this.#o.self, key);
    const wait = t.readyAt - monoNow();
    if (wait > 0) await sleep(wait);
    if (!t.takenOver) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([t.takeover, new Promise<void>((r) => (timer = setTimeout(r, HANDOFF_WAIT_MS)))]);
      clearTimeout(timer);
      if (!t.takenOver) {
        this.#checkTenure(part, t, key);
        throw new CacheHomeUnavailableError(`the previous home of this key's partition (${t.waitingFor ?? "?"}) acknowledged writes the log may lack and has not handed them on yet (it is unreachable); retry`);
      }
    }
    this.#checkTenure(part, t, key);
    return t;
  }

  /** The tenure a request may run under with nothing to wait for (fence over, handoff done), or null. */
  #readyNow(part: CachePartition): Tenure | null {
    const t = this.#tenures.get(part.partition);
    return t !== undefined && t.takenOver && t.readyAt <= monoNow() && part.group.isLeader ? t : null;
  }

  #writeBack(part: CachePartition, term: number): WriteBack | null {
    if (this.#o.writeThrough) return null;
    return new WriteBack({
      owner: { node: this.#o.self, term },
      windowMs: this.#o.writeBackMs,
      storeDirty: this.#o.redis !== null,
      cleanAfterMs: CLEAN_AFTER_MS,
      propose: (data) => part.group.propose(data, PROPOSE_TIMEOUT_MS),
      onCommitted: () => {
        if (this.#o.redis !== null) this.#scheduleFlush(this.#o.writeBackMs);
      },
    });
  }

  // ---------------------------------------------------------------- write-back handoff

  /**
   * A new tenure serves nothing until the log lacks no write an earlier home acknowledged from
   * memory: it gets them from that home (which stopped acknowledging when it stopped leading) and
   * commits them, or, if that home restarted since, records them lost.
   */
  async #takeOver(part: CachePartition, t: Tenure): Promise<void> {
    const p = part.partition;
    while (this.#tenures.get(p) === t && part.group.isLeader) {
      try {
        // Everything committed before this term is applied (the last record of an earlier home).
        await part.group.readBarrier(PROPOSE_TIMEOUT_MS);
        const d = part.machine.dirtyBy;
        if (d === null || (d.node === this.#o.self && d.term === t.term)) {
          t.takenOver = true;
          return;
        }
        if (t.waitingFor === null) this.#o.log.info({ partition: p, previousHome: d.node, term: d.term }, "cache: write-back: taking over the previous home's unwritten writes before serving the partition");
        t.waitingFor = d.node;
        const reply = d.node === this.#o.self ? this.handoff(p, d.term) : handoffReplyOf(await this.#o.peers.request(d.node, Op.CACHE_HANDOFF, { partition: p, term: d.term }, 1000));
        if (reply.state === "home") {
          await sleep(50);
          continue;
        }
        if (reply.state === "held") {
          await part.group.propose(encodeCacheCommand({ op: "cache.flush", by: d, sets: reply.sets, wids: reply.wids, clean: true, dirty: this.#o.redis !== null }), PROPOSE_TIMEOUT_MS);
          if (this.#o.redis !== null) this.#scheduleFlush(0);
          continue;
        }
        await part.group.propose(encodeCacheCommand({ op: "cache.lost", by: d }), PROPOSE_TIMEOUT_MS);
        this.#o.count("writeBackLost");
        this.#o.log.warn({ partition: p, home: d.node, term: d.term, windowMs: this.#o.writeBackMs }, "cache: write-back: the previous home restarted before handing on its buffer; writes it acknowledged from memory and had not yet written to the log (at most its last write-back window, possibly none) are lost");
      } catch (err) {
        // Unreachable (cut off, paused, down) or not answering yet: the partition keeps waiting.
        this.#o.log.debug({ partition: p, err: (err as Error).message }, "cache: write-back handoff not done yet; retrying");
        await sleep(200);
      }
    }
  }

  /** CACHE_HANDOFF: what this node holds of the writes it acknowledged while leading `partition` in `term`. */
  handoff(partition: number, term: number): HandoffReply {
    if (this.#tenures.get(partition)?.term === term) return { state: "home" };
    const h = this.#handoffs.get(`${partition}:${term}`);
    return h === undefined ? { state: "none" } : { state: "held", ...h.record };
  }

  /** Graceful stop: writes everything acknowledged from memory to the log before leadership moves. */
  async drain(timeoutMs: number): Promise<void> {
    await Promise.all(
      [...this.#tenures.values()].map((t) =>
        t.wb?.drain(timeoutMs).catch((err: unknown) => this.#o.log.warn({ err: (err as Error).message }, "cache: could not write back every acknowledged write before stopping; the next home gets them by handoff while this node runs")),
      ),
    );
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
    // Recorded in batches: one log entry for every version stored during one turn, or, with
    // write-back under way, in the home's next flush (no entry of its own).
    setImmediate(() => {
      this.#stored.delete(part.partition);
      if (!part.group.isLeader) return;
      if (this.#tenures.get(part.partition)?.wb?.carryStored(items) === true) return;
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
        const batch = [...part.machine.dirtyEntries()].map(([key, e]) => ({ key, gen: e.gen, v: e }));
        if (batch.length === 0) continue;
        try {
          const written = await redis.writeMany(batch, wallNow());
          this.#o.count("storeWrites", written.filter(Boolean).length);
          for (const { key, gen } of batch) this.#noteStored(part, key, gen);
        } catch (err) {
          failed = true;
          this.#o.log.warn({ partition: part.partition, keys: batch.length, err: (err as Error).message }, "cache: writing versions to Redis failed; retrying");
        }
      }
    } finally {
      this.#flushing = false;
    }
    if (failed) this.#scheduleFlush(STORE_RETRY_MS);
  }

  #purge(): void {
    // A term's record is kept until its partition's log no longer names it (its handoff is done).
    for (const [id, h] of this.#handoffs) {
      const d = this.#o.partitions.all().find((p) => p.partition === h.partition)?.machine.dirtyBy ?? null;
      if (d === null || d.node !== h.owner.node || d.term !== h.owner.term) this.#handoffs.delete(id);
    }
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

