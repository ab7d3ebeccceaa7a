import { Counter, Gauge } from "prom-client";
import { CacheHomeUnavailableError, DsyncError, ErrorCode, InvalidArgumentError, Op, int, str, type CacheCopy, type CacheKeyState, type CacheStats, type Envelope } from "../../protocol/index.ts";
import { Directory, HomeTable, KeyQueue, LineStore, type EvictionPolicy, type Holder, type Line, type Takeover } from "../services/cache/index.ts";
import type { PeerLinks } from "../transport/peer-links.ts";
import { EmbeddedStore, type BackingStore, type StoredValue } from "./cache-store.ts";
import { NearHolders } from "./cache-near.ts";
import { CACHE_TTL_MS_MAX, boolOf, expiresAtOf, fieldsOf, genOf, keyOf, keysOf, valueOf, viewOf } from "./cache-wire.ts";
import type { CacheWritePolicy } from "./config.ts";
import type { Logger } from "./logger.ts";
import { wallNow } from "./wall-clock.ts";
import type { NodeMetrics } from "./metrics.ts";
import type { RequestContext, RequestRouter } from "./request-router.ts";

export interface CacheServiceOptions {
  readonly nodeId: string;
  readonly capacity: number;
  readonly capacityBytes: number;
  readonly writeBackMs: number;
  readonly writePolicy: CacheWritePolicy;
  readonly evictionPolicy: EvictionPolicy;
  /** How long a home waits for a holder to drop (or hand over) its copy; a write fails after. */
  readonly invalidationTimeoutMs: number;
  readonly store: BackingStore;
  readonly peers: PeerLinks;
  /** The cluster's members (group 0's voters), over which homes are placed. */
  readonly members: () => readonly string[];
  readonly metrics: NodeMetrics;
  readonly log: Logger;
}

/** What a read returns to the client. */
export interface CacheValue {
  readonly found: boolean;
  readonly value: Uint8Array | null;
  readonly expiresAt: number;
}

/** A home's answer to CACHE_READ. */
interface ReadGrant extends StoredValue {
  readonly state: "E" | "S";
  readonly gen: number;
  readonly stamp: number;
}

/** A holder's answer to CACHE_FETCH. */
interface FetchReply extends StoredValue {
  readonly has: boolean;
  readonly dirty: boolean;
}

type CounterName = "hits" | "misses" | "evictions" | "invSent" | "invReceived" | "writeBacks" | "lost" | "takeovers";

/** How long a node waits for the members of its view to accept a takeover. */
const TAKEOVER_TIMEOUT_MS = 2000;
/** How long a request keeps retrying while a key has no reachable home (a takeover runs). */
const RETRY_WINDOW_MS = 3000;
const TAKEOVER_CHECK_MS = 200;
const WRITE_BACK_RETRY_MS = 100;

const RETRY_CODES = new Set<number>([ErrorCode.CACHE_WRONG_HOME, ErrorCode.CACHE_HOME_UNAVAILABLE, ErrorCode.UNAVAILABLE, ErrorCode.CONNECTION_CLOSED]);

/**
 * The distributed cache on one node. Three roles in one object:
 * - holder: the node's lines (MESI, LRU), served locally on a hit; misses and upgrades go to the
 *   key's home; dirty lines are written back after `writeBackMs` (or at once, write-through);
 * - home: for the keys it owns, a directory and a per-key queue that serializes every request,
 *   invalidating and fetching copies before it grants, and reading or writing the backing store;
 * - relay for near-cache clients, which hold copies through the node (see NearHolders).
 * Which node is home of a key is settled by takeovers (see HomeTable): whenever the set of
 * reachable members changes, each node with a majority in view claims its share of the ring,
 * and every copy of a claimed key is dropped (dirty data handed to the new home) before the new
 * home serves it. A key whose home is unreachable and not yet taken over is unavailable, never
 * served from a copy the new home does not know about.
 */
export class CacheService {
  readonly #o: CacheServiceOptions;
  readonly #self: string;
  readonly #lines: LineStore;
  /** Dirty lines out of the line store (evicted, or their home's link dropped), until written back or handed over. */
  readonly #victims = new Map<string, Line>();
  readonly #dir = new Directory(Date.now() * 1000);
  readonly #table = new HomeTable();
  readonly #queue = new KeyQueue();
  readonly #near: NearHolders;
  /** A home waits `invalidationTimeoutMs` for a holder; the requester waits longer for the home. */
  readonly #homeTimeoutMs: number;
  readonly #readBatches = new Map<string, { readers: string[]; started: boolean; result: Promise<Map<string, ReadGrant>> }>();
  readonly #pendingReads = new Map<string, Promise<{ v: StoredValue; installed: boolean }>>();
  readonly #dirty = new Set<string>();
  #flushTimer: NodeJS.Timeout | null = null;
  #checkTimer: NodeJS.Timeout | null = null;
  #takeoverRunning = false;
  #takeoverAgain = false;
  #takeoverFailures = 0;
  /** Our own takeover, once every member of its view accepted it. */
  #myTakeover: Takeover | null = null;
  #stopped = false;
  readonly #c: Record<CounterName, Counter<string>>;
  readonly #g: { lines: Gauge<string>; hitRatio: Gauge<string>; bytes: Gauge<string>; directory: Gauge<string> };

  constructor(o: CacheServiceOptions) {
    this.#o = o;
    this.#self = o.nodeId;
    this.#lines = new LineStore(o.capacity, o.capacityBytes, o.evictionPolicy);
    this.#homeTimeoutMs = 2 * o.invalidationTimeoutMs + 2000;
    // A holder answers its home only after its near-cache clients answered it, so they get half.
    this.#near = new NearHolders(Math.floor(o.invalidationTimeoutMs / 2));
    const registers = [o.metrics.registry];
    this.#c = {
      hits: new Counter({ name: "dsync_cache_hits_total", help: "Cache reads served from this node's own line.", registers }),
      misses: new Counter({ name: "dsync_cache_misses_total", help: "Cache reads that had to ask the key's home.", registers }),
      evictions: new Counter({ name: "dsync_cache_evictions_total", help: "Lines evicted past the capacity bounds, by eviction policy.", labelNames: ["policy"] as const, registers }),
      invSent: new Counter({ name: "dsync_cache_invalidations_sent_total", help: "Copies this node, as home, invalidated or fetched away from holders.", registers }),
      invReceived: new Counter({ name: "dsync_cache_invalidations_received_total", help: "Invalidations of this node's copies received from homes.", registers }),
      writeBacks: new Counter({ name: "dsync_cache_write_backs_total", help: "Dirty lines written back to the backing store (accepted by the home).", registers }),
      lost: new Counter({ name: "dsync_cache_owner_lines_lost_total", help: "Exclusive (E/M) copies held by a node that failed: a write not yet written back is lost.", registers }),
      takeovers: new Counter({ name: "dsync_cache_takeovers_total", help: "Takeovers this node completed as a home (after a membership change).", registers }),
    };
    this.#g = {
      lines: new Gauge({ name: "dsync_cache_lines", help: "Lines held by this node, per MESI state.", labelNames: ["state"] as const, registers }),
      hitRatio: new Gauge({ name: "dsync_cache_hit_ratio", help: "hits / (hits + misses) since start.", registers }),
      bytes: new Gauge({ name: "dsync_cache_bytes", help: "Bytes charged to this node's lines.", registers }),
      directory: new Gauge({ name: "dsync_cache_directory_entries", help: "Keys with copies in this node's directory (as their home).", registers }),
    };
  }

  /** The counters' values, kept beside the Prometheus counters for `stats()`. */
  readonly #n: Record<CounterName, number> = { hits: 0, misses: 0, evictions: 0, invSent: 0, invReceived: 0, writeBacks: 0, lost: 0, takeovers: 0 };

  /** Debug aid: DSYNC_CACHE_TRACE=<key prefix> logs every coherence step on matching keys. */
  readonly #tracePrefix = process.env.DSYNC_CACHE_TRACE ?? null;
  #trace(key: string, what: string, extra: Record<string, unknown> = {}): void {
    if (this.#tracePrefix !== null && key.startsWith(this.#tracePrefix)) this.#o.log.warn({ key, t: performance.now().toFixed(1), ...extra }, `trace ${what}`);
  }

  #bump(name: CounterName, by = 1): void {
    this.#n[name] += by;
    if (name === "evictions") this.#c.evictions.inc({ policy: this.#lines.policy }, by);
    else this.#c[name].inc(by);
  }

  // ---------------------------------------------------------------- wiring

  register(router: RequestRouter, onPeerRequest: (op: number, h: (from: string, env: Envelope) => Promise<unknown>) => void, onPeerMessage: (op: number, h: (from: string, env: Envelope) => void) => void): void {
    router.register(Op.CACHE_GET, async (body, ctx) => {
      const f = fieldsOf(body, "CACHE_GET");
      return this.get(keyOf(f, "CACHE_GET"), boolOf(f, "near", "CACHE_GET") ? ctx : null);
    });
    router.register(Op.CACHE_SET, async (body) => {
      const f = fieldsOf(body, "CACHE_SET");
      const key = keyOf(f, "CACHE_SET");
      const value = valueOf(f, "CACHE_SET", false);
      const ttlMs = int(f, "ttlMs", "CACHE_SET", { optional: true, min: 1, max: CACHE_TTL_MS_MAX });
      await this.set(key, value, ttlMs === undefined ? 0 : wallNow() + ttlMs);
      return { key };
    });
    router.register(Op.CACHE_DELETE, async (body) => {
      const key = keyOf(fieldsOf(body, "CACHE_DELETE"), "CACHE_DELETE");
      await this.set(key, null, 0);
      return { key };
    });
    router.register(Op.CACHE_INVALIDATE, async (body) => {
      const key = keyOf(fieldsOf(body, "CACHE_INVALIDATE"), "CACHE_INVALIDATE");
      await this.#withHome(key, (home) => this.#call(home, Op.CACHE_DROP, { key }, this.#homeTimeoutMs));
      return { key };
    });
    router.register(Op.CACHE_STATE, async (body) => this.state(keyOf(fieldsOf(body, "CACHE_STATE"), "CACHE_STATE")));
    router.register(Op.CACHE_STATS, (body) => {
      fieldsOf(body, "CACHE_STATS");
      return this.stats();
    });
    router.register(Op.CACHE_NEAR_ACK, (body, ctx) => {
      const f = fieldsOf(body, "CACHE_NEAR_ACK");
      this.#near.ack(int(f, "seq", "CACHE_NEAR_ACK", { min: 1 }), ctx.conn);
      return {};
    });
    for (const op of [Op.CACHE_READ, Op.CACHE_WRITE, Op.CACHE_FETCH, Op.CACHE_INVALIDATE_COPY, Op.CACHE_WRITE_BACK, Op.CACHE_TAKEOVER, Op.CACHE_DROP, Op.CACHE_PEEK]) {
      onPeerRequest(op, (from, env) => this.#onPeer(from, env.type, env.body));
    }
    onPeerMessage(Op.CACHE_EVICTED, (from, env) => {
      try {
        const f = fieldsOf(env.body, "CACHE_EVICTED");
        this.#homeEvicted(from, keyOf(f, "CACHE_EVICTED"), genOf(f, "CACHE_EVICTED"));
      } catch (err) {
        this.#o.log.warn({ from, err: (err as Error).message }, "bad CACHE_EVICTED from a peer");
      }
    });
  }

  start(): void {
    this.#checkTimer = setInterval(() => this.#maybeTakeover(), TAKEOVER_CHECK_MS);
    this.#checkTimer.unref();
    this.#maybeTakeover();
  }

  /** A peer link came up or went down. */
  onLinkChange(peer: string, up: boolean): void {
    if (!up) {
      this.#o.log.warn({ peer }, "cache: peer link lost; dropping its copies from the directory and the copies it granted");
      // As home: the peer's copies are gone with it (or it drops them now, see below).
      for (const key of this.#dir.removeNode(peer)) {
        this.#bump("lost");
        this.#o.log.warn({ key, holder: peer }, "cache: the exclusive holder of a key failed; a write it had not written back is lost");
      }
      // As holder: copies granted by a home we cannot hear from may be invalidated without us.
      this.#dropLinesOf((l) => l.home === peer);
    }
    this.#maybeTakeover();
  }

  /** Writes back every dirty line (graceful stop). */
  async flush(): Promise<void> {
    this.#stopped = true;
    if (this.#checkTimer) clearInterval(this.#checkTimer);
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    const keys = [...this.#lines.lines()].filter((l) => l.state === "M").map((l) => l.key);
    keys.push(...this.#victims.keys());
    await Promise.allSettled(keys.map((k) => this.#writeBack(k)));
    // Give clean exclusive copies back too: the home cannot tell E from M, and would otherwise
    // count and log them as lost writes when our link drops.
    for (const l of this.#lines.lines()) {
      if (l.state !== "E" || l.home === this.#self) continue;
      this.#lines.delete(l.key);
      this.#o.peers.send(l.home, Op.CACHE_EVICTED, { key: l.key, gen: l.gen });
    }
  }

  async close(): Promise<void> {
    await this.#o.store.close();
  }

  // ---------------------------------------------------------------- client operations

  /** Reads `key`: a hit is served from the line; a miss asks the home. `near` registers a near-cache copy. */
  async get(key: string, near: RequestContext | null): Promise<CacheValue & { near: boolean }> {
    // A write here makes its value visible in the line before this node's near-cache clients have
    // dropped the old one: serving the new value meanwhile would let a near client read the old
    // value after someone read the new (a read inversion). Wait until they have acked.
    const unsettled = this.#near.settled(key);
    if (unsettled) await unsettled;
    const line = this.#lines.touch(key);
    if (line) {
      this.#bump("hits");
      if (near) this.#near.add(key, near.conn, (fn) => near.onClose(fn));
      return { ...present(line), near: near !== null };
    }
    this.#bump("misses");
    let p = this.#pendingReads.get(key);
    if (!p) {
      // Concurrent misses on this node share one request to the home.
      p = this.#readMiss(key).finally(() => this.#pendingReads.delete(key));
      this.#pendingReads.set(key, p);
    }
    // An invalidation of the key may pass between the line's install and this continuation (it
    // can arrive right behind the read grant): a near copy registered after it would never be
    // invalidated, so such a read is answered without letting the client cache it.
    const watch = near ? this.#near.watch(key) : null;
    let r: { v: StoredValue; installed: boolean };
    try {
      r = await p;
    } catch (err) {
      watch?.end();
      throw err;
    }
    const invalidated = watch?.end() ?? false;
    const registered = near !== null && r.installed && !invalidated;
    if (registered) this.#near.add(key, near.conn, (fn) => near.onClose(fn));
    return { ...present(r.v), near: registered };
  }

  /** Writes `key` (null deletes it). Resolves once every other copy is invalidated (and, write-through, the store has it). */
  async set(key: string, value: Uint8Array | null, expiresAt: number): Promise<void> {
    await this.#withHome(key, async (home) => {
      const line = this.#lines.peek(key);
      if (line && line.state !== "S") {
        // E or M: nobody else has a copy; the write is local (E becomes M silently).
        const old = line.value;
        line.value = value;
        line.expiresAt = expiresAt;
        line.state = "M";
        line.writeSeq++;
        this.#trace(key, "local write", { gen: line.gen, value: str8(value) });
        this.#evicted(this.#lines.resize(line, old));
      } else {
        const g = await this.#call(home, Op.CACHE_WRITE, { key }, this.#homeTimeoutMs);
        const f = fieldsOf(g, "CACHE_WRITE reply");
        const gen = genOf(f, "CACHE_WRITE reply");
        const stamp = int(f, "stamp", "CACHE_WRITE reply");
        // Granted by a home that has since lost the key: the grant is void, ask the new one.
        if (!this.#isHome(key, home, stamp)) throw new DsyncError(ErrorCode.CACHE_WRONG_HOME, "the key's home changed during the write");
        this.#victims.delete(key);
        this.#trace(key, "install write", { gen, home, value: str8(value) });
        this.#evicted(this.#lines.put({ key, state: "M", value, expiresAt, gen, home, stamp, writeSeq: 1 }));
      }
    });
    await this.#near.invalidate([key]);
    if (this.#o.writePolicy === "write-through") await this.#writeBack(key, false, true);
    else this.#scheduleWriteBack(key);
  }

  /** The line of `key` on every reachable member, with the home's directory entry. */
  async state(key: string): Promise<CacheKeyState> {
    const members = this.#o.members();
    const copies: CacheCopy[] = [];
    const unreachable: string[] = [];
    await Promise.all(
      members.map(async (m) => {
        try {
          copies.push((await this.#call(m, Op.CACHE_PEEK, { key }, this.#o.invalidationTimeoutMs)) as CacheCopy);
        } catch {
          unreachable.push(m);
        }
      }),
    );
    copies.sort((a, b) => (a.node < b.node ? -1 : 1));
    return { key, home: this.#table.homeOf(key)?.node ?? null, copies, unreachable: unreachable.sort() };
  }

  stats(): CacheStats {
    const n = this.#n;
    const { hits, misses } = n;
    return {
      nodeId: this.#self,
      hits,
      misses,
      hitRatio: hits + misses === 0 ? 0 : hits / (hits + misses),
      evictions: n.evictions,
      invalidationsSent: n.invSent,
      invalidationsReceived: n.invReceived,
      writeBacks: n.writeBacks,
      ownerLinesLost: n.lost,
      lines: this.#lines.counts(),
      bytes: this.#lines.bytes,
      capacity: this.#o.capacity,
      capacityBytes: this.#o.capacityBytes,
      directoryEntries: this.#dir.size,
      nearClients: this.#near.connections,
      nearKeys: this.#near.keys,
      store: this.#o.store.kind,
      writePolicy: this.#o.writePolicy,
      homeOf: this.#table.takeovers(),
    };
  }

  refreshGauges(): void {
    const s = this.stats();
    for (const st of ["M", "E", "S"] as const) this.#g.lines.labels(st).set(s.lines[st]);
    this.#g.hitRatio.set(s.hitRatio);
    this.#g.bytes.set(s.bytes);
    this.#g.directory.set(s.directoryEntries);
  }

  // ---------------------------------------------------------------- requester side

  async #readMiss(key: string): Promise<{ v: StoredValue; installed: boolean }> {
    return this.#withHome(key, async (home) => {
      // A dirty copy we evicted must reach the home before we read the key again.
      const victim = this.#victims.get(key);
      if (victim && !this.#isHome(key, victim.home, victim.stamp)) {
        // Newer data than the store's waits here for the key's next home: not readable until then.
        throw new CacheHomeUnavailableError(`${JSON.stringify(key)} has dirty data waiting for its new home`);
      }
      if (victim) await this.#writeBack(key, false, true);
      const g = this.#readGrantOf(await this.#call(home, Op.CACHE_READ, { key }, this.#homeTimeoutMs));
      // Install at once (no await in between): a later invalidation from the home is only
      // handled after this, see #deferred.
      const v = { value: g.value, expiresAt: g.expiresAt };
      if (!this.#isHome(key, home, g.stamp)) {
        this.#trace(key, "read grant void", { gen: g.gen, home });
        return { v, installed: false };
      }
      const cur = this.#lines.peek(key);
      if (cur && cur.home === home && cur.gen > g.gen) return { v, installed: false };
      this.#trace(key, "install read", { state: g.state, gen: g.gen, home, value: str8(g.value) });
      this.#evicted(this.#lines.put({ key, state: g.state, value: g.value, expiresAt: g.expiresAt, gen: g.gen, home, stamp: g.stamp, writeSeq: 0 }));
      return { v, installed: true };
    });
  }

  #readGrantOf(body: unknown): ReadGrant {
    const f = fieldsOf(body, "CACHE_READ reply");
    const state = f.state === "E" ? "E" : "S";
    return { value: valueOf(f, "CACHE_READ reply", true), expiresAt: expiresAtOf(f, "CACHE_READ reply"), state, gen: genOf(f, "CACHE_READ reply"), stamp: int(f, "stamp", "CACHE_READ reply") };
  }

  /** Runs `fn` against the key's home, retrying while no home is reachable or it moves. */
  async #withHome<T>(key: string, fn: (home: string) => Promise<T>): Promise<T> {
    const deadline = Date.now() + RETRY_WINDOW_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        const home = this.#table.homeOf(key);
        if (home === null) throw new CacheHomeUnavailableError(`no reachable node is home of ${JSON.stringify(key)} right now`);
        return await fn(home.node);
      } catch (err) {
        if (!(err instanceof DsyncError) || !RETRY_CODES.has(err.code) || Date.now() > deadline || this.#stopped) throw err;
        await sleep(Math.min(50, 2 << Math.min(attempt, 5)));
      }
    }
  }

  #isHome(key: string, node: string, stamp: number): boolean {
    const h = this.#table.homeOf(key);
    return h !== null && h.node === node && h.stamp === stamp;
  }

  /** A request to `node`, or a direct call when it is this node. */
  #call(node: string, op: number, body: unknown, timeoutMs: number): Promise<unknown> {
    if (node === this.#self) return this.#onPeer(this.#self, op, body);
    return this.#o.peers.request(node, op, body, timeoutMs);
  }

  #evicted(lines: Line[]): void {
    for (const l of lines) {
      this.#bump("evictions");
      this.#trace(l.key, "evicted", { state: l.state, gen: l.gen, near: this.#near.has(l.key) });
      if (l.state === "M") {
        // Kept aside (and still answerable to a fetch) until the home has the data.
        this.#victims.set(l.key, l);
        void this.#writeBack(l.key, !this.#near.has(l.key)).catch(() => {});
      } else if (!this.#near.has(l.key)) {
        // Near-cache clients still hold the key through us: stay in the directory for them.
        if (l.home === this.#self) this.#homeEvicted(this.#self, l.key, l.gen);
        else this.#o.peers.send(l.home, Op.CACHE_EVICTED, { key: l.key, gen: l.gen });
      }
    }
  }

  #scheduleWriteBack(key: string): void {
    this.#dirty.add(key);
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = null;
      const keys = [...this.#dirty];
      this.#dirty.clear();
      for (const k of keys) void this.#writeBack(k).catch(() => {});
    }, this.#o.writeBackMs);
  }

  /**
   * Sends the dirty line (or evicted victim) of `key` to its home for the backing store. `drop`:
   * leave the directory too. `strict`: throw on failure instead of retrying later.
   */
  async #writeBack(key: string, drop = false, strict = false): Promise<void> {
    const victim = this.#victims.get(key);
    const line = victim ?? this.#lines.peek(key);
    if (!line || line.state !== "M") return;
    const seq = line.writeSeq;
    try {
      const r = fieldsOf(await this.#call(line.home, Op.CACHE_WRITE_BACK, { key, gen: line.gen, value: line.value, expiresAt: line.expiresAt, drop }, this.#homeTimeoutMs), "CACHE_WRITE_BACK reply");
      if (r.accepted === true) this.#bump("writeBacks");
      this.#trace(key, "write-back reply", { accepted: r.accepted, victim: victim !== undefined, gen: line.gen, value: str8(line.value), drop });
      // Accepted, or refused because the home already took the data (a fetch): clean either way,
      // unless the line changed meanwhile or was handed over elsewhere.
      if (victim) {
        // A refusal from the key's current home means it already took the data (a fetch); from
        // a home that lost the key, nothing: the line waits for the takeover that claims it.
        const taken = r.accepted === true || this.#isHome(key, victim.home, victim.stamp);
        if (this.#victims.get(key) === victim && taken) this.#victims.delete(key);
      } else if (r.accepted === true && line.writeSeq === seq && line.state === "M") {
        line.state = "E";
      }
    } catch (err) {
      if (strict) throw err;
      // The home is unreachable: try again later, unless a takeover hands the line over first.
      setTimeout(() => {
        if (this.#victims.get(key) === line || this.#lines.peek(key) === line) this.#scheduleWriteBack(key);
      }, WRITE_BACK_RETRY_MS).unref();
    }
  }

  /** Drops lines `pred` selects: clean ones go, dirty ones wait aside for a write-back or a takeover. */
  #dropLinesOf(pred: (l: Line) => boolean): void {
    const keys: string[] = [];
    for (const l of [...this.#lines.lines()]) {
      if (!pred(l)) continue;
      this.#lines.delete(l.key);
      if (l.state === "M") this.#victims.set(l.key, l);
      keys.push(l.key);
    }
    void this.#near.invalidate(keys).catch(() => {});
  }

  // ---------------------------------------------------------------- peer requests (both roles)

  async #onPeer(from: string, op: number, body: unknown): Promise<unknown> {
    const f = fieldsOf(body, `cache peer request ${op}`);
    switch (op) {
      case Op.CACHE_READ:
        return this.#homeRead(from, keyOf(f, "CACHE_READ"));
      case Op.CACHE_WRITE: {
        const key = keyOf(f, "CACHE_WRITE");
        return this.#homeTask(key, (stamp) => this.#writeTx(key, from, stamp));
      }
      case Op.CACHE_WRITE_BACK: {
        const key = keyOf(f, "CACHE_WRITE_BACK");
        const gen = genOf(f, "CACHE_WRITE_BACK");
        const v = { value: valueOf(f, "CACHE_WRITE_BACK", true), expiresAt: expiresAtOf(f, "CACHE_WRITE_BACK") };
        const drop = boolOf(f, "drop", "CACHE_WRITE_BACK");
        return this.#homeTask(key, async (stamp) => {
          this.#trace(key, "home write-back", { from, gen, owner: this.#dir.isOwner(key, from, gen), value: str8(v.value) });
          if (!this.#dir.isOwner(key, from, gen)) return { accepted: false };
          await this.#o.store.write(key, v);
          this.#checkTenure(key, stamp);
          if (drop) this.#dir.removeHolder(key, from, gen);
          return { accepted: true };
        });
      }
      case Op.CACHE_DROP: {
        const key = keyOf(f, "CACHE_DROP");
        return this.#homeTask(key, (stamp) => this.#dropTx(key, stamp));
      }
      case Op.CACHE_FETCH:
        return this.#holderFetch(keyOf(f, "CACHE_FETCH"), f.mode === "invalidate" ? "invalidate" : "share");
      case Op.CACHE_INVALIDATE_COPY:
        return this.#holderInvalidate(keysOf(f, "CACHE_INVALIDATE_COPY"));
      case Op.CACHE_TAKEOVER:
        return this.#acceptTakeover({ stamp: int(f, "stamp", "CACHE_TAKEOVER", { min: 1 }), taker: str(f, "taker", "CACHE_TAKEOVER", { maxBytes: 64 }), view: viewOf(f, "CACHE_TAKEOVER") });
      case Op.CACHE_PEEK:
        return this.#peek(keyOf(f, "CACHE_PEEK"));
      default:
        throw new InvalidArgumentError(`cache peer request type ${op} is not handled`);
    }
  }

  #peek(key: string): CacheCopy {
    const line = this.#lines.peek(key);
    const isHome = this.#table.homeOf(key)?.node === this.#self && this.#myTakeover !== null;
    return {
      node: this.#self,
      state: line?.state ?? "I",
      gen: line?.gen ?? null,
      home: line?.home ?? null,
      near: this.#near.count(key),
      directory: isHome ? [...this.#dir.holders(key)].map(([node, h]: [string, Holder]) => ({ node, state: h.state, gen: h.gen })) : null,
    };
  }

  /**
   * Holder side: the home wants our copy's data, and either shares it (M/E → S) or takes it
   * away. Deferred past pending grant installs (see #deferred).
   */
  async #holderFetch(key: string, mode: "share" | "invalidate"): Promise<FetchReply> {
    await deferred();
    // Our near-cache clients may still hold the value this write replaced: another node must not
    // read the new one before they dropped it (see get).
    const unsettled = this.#near.settled(key);
    if (unsettled) await unsettled;
    this.#bump("invReceived");
    const victim = this.#victims.get(key);
    const line = victim ?? this.#lines.peek(key);
    if (!line) {
      // The home will forget us: near-cache clients must not keep copies it cannot reach.
      await this.#near.invalidate([key]);
      return { has: false, dirty: false, value: null, expiresAt: 0 };
    }
    const reply: FetchReply = { has: true, dirty: line.state === "M", value: line.value, expiresAt: line.expiresAt };
    this.#trace(key, "fetched", { mode, state: line.state, victim: victim !== undefined, gen: line.gen, value: str8(line.value) });
    this.#dirty.delete(key);
    if (victim) this.#victims.delete(key);
    if (mode === "share" && !victim) {
      line.state = "S";
    } else {
      if (!victim) this.#lines.delete(key);
      await this.#near.invalidate([key]);
    }
    return reply;
  }

  async #holderInvalidate(keys: string[]): Promise<Record<string, never>> {
    await deferred();
    for (const key of keys) {
      this.#bump("invReceived");
      this.#trace(key, "invalidated", { had: this.#lines.peek(key)?.state ?? "I" });
      this.#lines.delete(key);
    }
    await this.#near.invalidate(keys);
    return {};
  }

  // ---------------------------------------------------------------- home side

  /** The stamp of our takeover that makes us home of `key`. @throws CACHE_WRONG_HOME */
  #homeStamp(key: string): number {
    const h = this.#table.homeOf(key);
    if (h === null || h.node !== this.#self || this.#myTakeover === null || this.#myTakeover.stamp !== h.stamp) {
      throw new DsyncError(ErrorCode.CACHE_WRONG_HOME, `${this.#self} is not the home of ${JSON.stringify(key)}`);
    }
    return h.stamp;
  }

  /** Checks, after every wait, that we are still home under the same takeover. */
  #checkTenure(key: string, stamp: number): void {
    if (this.#homeStamp(key) !== stamp) throw new DsyncError(ErrorCode.CACHE_WRONG_HOME, `the home of ${JSON.stringify(key)} moved`);
  }

  /** Runs a home transaction for `key` in its queue. */
  #homeTask<T>(key: string, tx: (stamp: number) => Promise<T>): Promise<T> {
    this.#homeStamp(key);
    return this.#queue.run(key, async () => {
      await deferred();
      return tx(this.#homeStamp(key));
    });
  }

  /** Misses for one key queued behind a running transaction join into one batch: one fetch or store read for all. */
  async #homeRead(from: string, key: string): Promise<ReadGrant> {
    this.#homeStamp(key);
    let batch = this.#readBatches.get(key);
    if (!batch || batch.started) {
      const b: { readers: string[]; started: boolean; result: Promise<Map<string, ReadGrant>> } = { readers: [], started: false, result: Promise.resolve(new Map()) };
      b.result = this.#queue.run(key, async () => {
        await deferred();
        b.started = true;
        if (this.#readBatches.get(key) === b) this.#readBatches.delete(key);
        return this.#readTx(key, b.readers, this.#homeStamp(key));
      });
      this.#readBatches.set(key, b);
      batch = b;
    }
    if (!batch.readers.includes(from)) batch.readers.push(from);
    const grant = (await batch.result).get(from);
    if (!grant) throw new DsyncError(ErrorCode.INTERNAL, "read batch lost a reader");
    return grant;
  }

  async #readTx(key: string, readers: string[], stamp: number): Promise<Map<string, ReadGrant>> {
    const plan = this.#dir.planRead(key, readers);
    let v: StoredValue | null = null;
    let ownerKept = false;
    if (plan.fetchFrom) {
      this.#bump("invSent");
      const r = await this.#askHolder(plan.fetchFrom.node, Op.CACHE_FETCH, { key, gen: plan.fetchFrom.gen, mode: "share" });
      this.#checkTenure(key, stamp);
      if (r !== null && r.has === true) {
        const f = fieldsOf(r, "CACHE_FETCH reply");
        v = { value: valueOf(f, "CACHE_FETCH reply", true), expiresAt: expiresAtOf(f, "CACHE_FETCH reply") };
        ownerKept = true;
        if (r.dirty === true) await this.#o.store.write(key, v);
      }
    }
    v ??= await this.#o.store.read(key);
    this.#checkTenure(key, stamp);
    this.#trace(key, "home read", { readers, fetchFrom: plan.fetchFrom, ownerKept, value: str8(v.value) });
    const out = new Map<string, ReadGrant>();
    for (const g of this.#dir.completeRead(key, readers, ownerKept)) out.set(g.node, { ...v, state: g.state === "E" ? "E" : "S", gen: g.gen, stamp });
    return out;
  }

  async #writeTx(key: string, writer: string, stamp: number): Promise<{ gen: number; stamp: number }> {
    const plan = this.#dir.planWrite(key, writer);
    this.#trace(key, "home write", { writer, plan });
    await this.#invalidateCopies(key, plan, false);
    this.#checkTenure(key, stamp);
    return { gen: this.#dir.completeWrite(key, writer).gen, stamp };
  }

  async #dropTx(key: string, stamp: number): Promise<Record<string, never>> {
    await this.#invalidateCopies(key, this.#dir.planDrop(key), true);
    this.#checkTenure(key, stamp);
    this.#dir.forget(key);
    return {};
  }

  /** Invalidates every copy in `plan`, in parallel, and waits for all; `keepData` writes a dirty X copy to the store. */
  async #invalidateCopies(key: string, plan: { invalidate: { node: string }[]; fetchFrom: { node: string; gen: number } | null }, keepData: boolean): Promise<void> {
    const tasks: Promise<unknown>[] = plan.invalidate.map((h) => this.#askHolder(h.node, Op.CACHE_INVALIDATE_COPY, { keys: [key] }));
    const owner = plan.fetchFrom;
    if (owner) {
      tasks.push(
        this.#askHolder(owner.node, Op.CACHE_FETCH, { key, gen: owner.gen, mode: "invalidate" }).then(async (r) => {
          if (!keepData || r === null || r.has !== true || r.dirty !== true) return;
          const f = fieldsOf(r, "CACHE_FETCH reply");
          await this.#o.store.write(key, { value: valueOf(f, "CACHE_FETCH reply", true), expiresAt: expiresAtOf(f, "CACHE_FETCH reply") });
        }),
      );
    }
    this.#bump("invSent", tasks.length);
    await Promise.all(tasks);
  }

  /**
   * A request to a holder. Resolves null when the holder's link is down: a node we cannot reach
   * has dropped the copies we granted (it does so when it loses the link to us).
   */
  async #askHolder(node: string, op: number, body: unknown): Promise<Record<string, unknown> | null> {
    if (node !== this.#self && !this.#o.peers.isConnected(node)) {
      this.#dir.removeNode(node);
      return null;
    }
    try {
      return fieldsOf(await this.#call(node, op, body, this.#o.invalidationTimeoutMs), "holder reply") as Record<string, unknown>;
    } catch (err) {
      if (err instanceof DsyncError && err.code === ErrorCode.UNAVAILABLE && !this.#o.peers.isConnected(node)) return null;
      throw err;
    }
  }

  #homeEvicted(from: string, key: string, gen: number): void {
    if (this.#table.homeOf(key)?.node !== this.#self) return;
    void this.#queue.run(key, async () => {
      this.#dir.removeHolder(key, from, gen);
    });
  }

  // ---------------------------------------------------------------- takeovers

  #maybeTakeover(): void {
    if (this.#stopped) return;
    if (this.#takeoverRunning) {
      this.#takeoverAgain = true;
      return;
    }
    const members = [...this.#o.members()].sort();
    const view = members.filter((m) => m === this.#self || this.#o.peers.isConnected(m));
    const mine = this.#myTakeover;
    if (mine !== null && mine.view.join(",") === view.join(",") && this.#table.takeovers().some((t) => t.taker === this.#self)) return;
    if (!members.includes(this.#self) || view.length * 2 <= members.length) {
      if (mine !== null || this.#table.takeovers().length > 0) this.#loseMajority();
      return;
    }
    this.#takeoverRunning = true;
    void this.#takeover(view)
      .catch((err: unknown) => this.#o.log.debug({ err: (err as Error).message }, "cache takeover failed; will retry"))
      .finally(() => {
        this.#takeoverRunning = false;
        if (this.#takeoverAgain) {
          this.#takeoverAgain = false;
          setTimeout(() => this.#maybeTakeover(), 5 + Math.random() * 20).unref();
        }
      });
  }

  async #takeover(view: string[]): Promise<void> {
    const t: Takeover = { stamp: this.#table.clock + 1, taker: this.#self, view };
    // Stop serving as home until every member of the view has accepted.
    this.#myTakeover = null;
    this.#table.remove(this.#self);
    this.#table.see(t);
    const handoff = await this.#release(t);
    const replies = await Promise.allSettled(view.filter((m) => m !== this.#self).map((m) => this.#o.peers.request(m, Op.CACHE_TAKEOVER, t, TAKEOVER_TIMEOUT_MS)));
    let ok = true;
    for (const r of replies) {
      if (r.status === "rejected") {
        ok = false;
        this.#o.log.debug({ stamp: t.stamp, err: (r.reason as Error).message }, "cache takeover: a member did not answer");
        continue;
      }
      const f = fieldsOf(r.value, "CACHE_TAKEOVER reply");
      const clock = int(f, "clock", "CACHE_TAKEOVER reply", { optional: true }) ?? 0;
      this.#table.see({ stamp: clock, taker: "" });
      if (f.accepted !== true) ok = false;
      else handoff.push(...handoffOf(f));
    }
    // Data handed over is written before we serve: values first, dirty copies (newer) last.
    for (const h of newestPerKey(handoff)) await this.#o.store.write(h.key, h.v);
    if (!ok) {
      this.#takeoverAgain = true;
      if (++this.#takeoverFailures % 20 === 0) this.#o.log.warn({ failures: this.#takeoverFailures, view }, "cache: takeovers keep failing; this node's keys stay unavailable");
      return;
    }
    this.#takeoverFailures = 0;
    this.#table.install(t);
    this.#myTakeover = t;
    this.#bump("takeovers");
    this.#o.log.info({ stamp: t.stamp, view }, "cache: home of its share of the ring");
  }

  /** Another node claims keys: stop serving them, drop our copies, hand over dirty data. */
  async #acceptTakeover(t: Takeover): Promise<{ accepted: boolean; clock: number; lines?: unknown[] }> {
    if (t.taker === this.#self || !this.#table.canAccept(t)) return { accepted: false, clock: this.#table.clock };
    // A member we can reach but the taker cannot may be serving some of the claimed keys as their
    // home (it claimed them under a view without the taker): the taker must wait until it sees
    // that member too, or until we lose it as well.
    const unseen = this.#o.members().filter((m) => m !== this.#self && !t.view.includes(m) && this.#o.peers.isConnected(m));
    if (unseen.length > 0) return { accepted: false, clock: this.#table.clock };
    // Routing changes at once: from now on requests for claimed keys go to the taker.
    this.#table.install(t);
    const handoff = await this.#release(t);
    return { accepted: true, clock: this.#table.clock, lines: handoff.map((h) => [h.key, h.v.value, h.v.expiresAt, h.stamp, h.gen]) };
  }

  /**
   * Gives up everything `t` claims: our directory for it (after running tasks end), our copies,
   * our embedded values. Copies granted by the taker go too, whatever the key: its new tenure
   * starts with an empty directory, and keys its previous takeover claimed but `t` does not fall
   * to another home that never knew of those copies.
   */
  async #release(t: Takeover): Promise<Handoff[]> {
    const claimed = (key: string): boolean => this.#table.claims(t, key);
    const mine = t.taker === this.#self;
    await this.#queue.settled(mine ? () => true : claimed);
    this.#dir.forgetWhere(mine ? () => true : claimed);
    const out: Handoff[] = [];
    const dropped: string[] = [];
    for (const l of [...this.#lines.lines()]) {
      if (!claimed(l.key) && l.home !== t.taker) continue;
      this.#lines.delete(l.key);
      this.#dirty.delete(l.key);
      dropped.push(l.key);
      if (l.state !== "M") continue;
      // Dirty data goes to the node that claims its key. A copy the taker granted for a key it no
      // longer claims waits aside, unserved, for the takeover that claims the key: handing it to
      // the taker would let it reach the store after the key's next home began serving it.
      if (claimed(l.key)) out.push(handoffOfLine(l));
      else this.#victims.set(l.key, l);
    }
    for (const [key, l] of [...this.#victims]) {
      if (!claimed(key)) continue;
      this.#victims.delete(key);
      out.push(handoffOfLine(l));
    }
    const store = this.#o.store;
    if (t.taker !== this.#self && store instanceof EmbeddedStore) for (const [key, v] of store.take(claimed)) out.push({ key, v, stamp: -1, gen: 0 });
    await this.#near.invalidate([...dropped, ...this.#near.keysWhere(claimed)]);
    return out;
  }

  /** We cannot see a majority: serve nothing, hold nothing another home could not invalidate. */
  #loseMajority(): void {
    this.#o.log.warn("cache: no majority of members in view; not serving until one is");
    this.#myTakeover = null;
    this.#table.clear();
    this.#dir.forgetWhere(() => true);
    this.#dropLinesOf(() => true);
  }
}

/** The client-facing view of a value: an expired value reads as absent. */
function present(v: StoredValue): CacheValue {
  const live = v.value !== null && (v.expiresAt === 0 || v.expiresAt > wallNow());
  return live ? { found: true, value: v.value, expiresAt: v.expiresAt } : { found: false, value: null, expiresAt: 0 };
}

/**
 * Data handed to a new home in a takeover: a dirty copy (with the tenure stamp and grant number
 * it was written under) or, stamp -1, a value from an embedded store.
 */
interface Handoff {
  readonly key: string;
  readonly v: StoredValue;
  readonly stamp: number;
  readonly gen: number;
}

function handoffOfLine(l: Line): Handoff {
  return { key: l.key, v: { value: l.value, expiresAt: l.expiresAt }, stamp: l.stamp, gen: l.gen };
}

function handoffOf(f: Record<string, unknown>): Handoff[] {
  const lines = Array.isArray(f.lines) ? f.lines : [];
  const out: Handoff[] = [];
  for (const item of lines) {
    if (!Array.isArray(item) || item.length !== 5) continue;
    const [key, value, expiresAt, stamp, gen] = item as unknown[];
    if (typeof key !== "string" || !(value === null || value instanceof Uint8Array) || typeof expiresAt !== "number" || typeof stamp !== "number" || typeof gen !== "number") continue;
    out.push({ key, v: { value: value as Uint8Array | null, expiresAt }, stamp, gen });
  }
  return out;
}

/**
 * The newest of each key's handed-over data. Two dirty copies of one key can meet here when the
 * old home kept granting while the takeover was under way; the later grant (higher tenure stamp,
 * then higher grant number within one home's tenure) holds the later write.
 */
function newestPerKey(hs: readonly Handoff[]): Handoff[] {
  const best = new Map<string, Handoff>();
  for (const h of hs) {
    const b = best.get(h.key);
    if (!b || h.stamp > b.stamp || (h.stamp === b.stamp && h.gen > b.gen)) best.set(h.key, h);
  }
  return [...best.values()];
}

/**
 * Resolves after every pending microtask. Ordering on the wire rests on it, both ways:
 * - a home starts a key's next request only after this, so the reply to the previous one (sent a
 *   few promise hops after the transaction ends) leaves before the next one's invalidations;
 * - a holder handles a home's fetch or invalidation only after this, so a grant that arrived
 *   before it (or a local grant just resolved) has been installed: installs follow their reply
 *   with no I/O in between.
 */
function deferred(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function str8(v: Uint8Array | null): string | null {
  return v === null ? null : Buffer.from(v).toString("utf8").slice(0, 40);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

