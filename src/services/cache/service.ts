import { setTimeout as sleep } from "node:timers/promises";
import { randomBytes } from "node:crypto";
import { Counter, Gauge } from "prom-client";
import { CacheHomeUnavailableError, DsyncError, ErrorCode, Op, bool, int, str, type CacheCopy, type CacheKeyState, type CacheStats, type Fields } from "../../../protocol/index.ts";
import type { Logger } from "../../host/logger.ts";
import type { NodeMetrics } from "../../host/metrics.ts";
import type { RequestContext } from "../../host/request-router.ts";
import type { Handlers, Service } from "../../host/service.ts";
import { wallNow } from "../../host/wall-clock.ts";
import type { PeerLinks } from "../../transport/peer-links.ts";
import { CacheHolder, type HeldValue } from "./holder.ts";
import { CacheHome, type ReadGrant } from "./home.ts";
import { monoNow } from "./lease.ts";
import type { EvictionPolicy } from "./machine/index.ts";
import { NearHolders } from "./near-relay.ts";
import type { CachePartitions } from "./partitions.ts";
import type { RedisStore } from "./store.ts";
import type { CacheWritePolicy } from "./write-back.ts";
import { CACHE_TTL_MS_MAX, WID_BYTES_MAX, expiresAtOf, fieldsOf, genOf, keyOf, keysOf, renewItemsOf, valueOf } from "./wire.ts";

export interface CacheServiceOptions {
  readonly nodeId: string;
  readonly capacity: number;
  readonly capacityBytes: number;
  readonly writeBackMs: number;
  readonly writePolicy: CacheWritePolicy;
  readonly evictionPolicy: EvictionPolicy;
  /** The copies' lease, and so the longest a write waits for a holder it cannot reach. */
  readonly invalidationTimeoutMs: number;
  readonly redis: RedisStore | null;
  readonly partitions: CachePartitions;
  readonly peers: PeerLinks;
  /** The client address (host:port) of node `id`, this node's included, when known. */
  readonly clientAddrOf: (id: string) => string | null;
  /** The cluster's members (group 0's voters), asked for CACHE_STATE. */
  readonly members: () => readonly string[];
  readonly metrics: NodeMetrics;
  readonly log: Logger;
}

/** What CACHE_GET answers. `leaseMs` > 0: a near-cache client may serve the value that long after it sent the get. */
export interface CacheGetReply {
  readonly found: boolean;
  readonly value: Uint8Array | null;
  readonly expiresAt: number;
  readonly near: boolean;
  readonly leaseMs: number;
  /** The version of the value (the log index that wrote it), named in CACHE_NEAR_RENEW. */
  readonly gen: number;
}

type CounterName = "hits" | "misses" | "evictions" | "invSent" | "invReceived" | "storeWrites" | "writeBackLost";

/** How long a request keeps retrying while its key has no reachable home (an election runs). */
const RETRY_WINDOW_MS = 3000;
/** Codes that mean the home did not act on the request: safe to send it again, writes included. */
const NOT_DONE = new Set<number>([ErrorCode.CACHE_WRONG_HOME, ErrorCode.CACHE_HOME_UNAVAILABLE, ErrorCode.UNAVAILABLE, ErrorCode.NOT_LEADER]);

/**
 * The distributed cache on one node: the holder role (leased copies, near-cache relay), the home
 * role for the partitions it leads (see CacheHome), and the client and peer handlers. Values live
 * in the cache partitions' Raft groups (the embedded store) and, optionally, in Redis.
 */
export class CacheService implements Service {
  readonly name = "cache";
  readonly #o: CacheServiceOptions;
  readonly #self: string;
  readonly #holder: CacheHolder;
  readonly #home: CacheHome;
  readonly #near: NearHolders;
  /** The longest a home may take: waiting out an election fence and a lease, then a commit. */
  readonly #homeTimeoutMs: number;
  #stopped = false;
  readonly #n: Record<CounterName, number> = { hits: 0, misses: 0, evictions: 0, invSent: 0, invReceived: 0, storeWrites: 0, writeBackLost: 0 };
  /** What the Prometheus counters have been given of #n. */
  readonly #exported: Record<CounterName, number> = { hits: 0, misses: 0, evictions: 0, invSent: 0, invReceived: 0, storeWrites: 0, writeBackLost: 0 };
  readonly #c: Record<CounterName, Counter<string>>;
  readonly #g: { lines: Gauge<string>; hitRatio: Gauge<string>; bytes: Gauge<string>; holders: Gauge<string>; dirty: Gauge<string> };

  constructor(o: CacheServiceOptions) {
    this.#o = o;
    this.#self = o.nodeId;
    this.#homeTimeoutMs = 3 * o.invalidationTimeoutMs + 6000;
    // A holder answers its home only after its near-cache clients answered it, so they get half.
    this.#near = new NearHolders(Math.floor(o.invalidationTimeoutMs / 2));
    const count = (what: CounterName, by = 1): void => this.#bump(what, by);
    this.#holder = new CacheHolder({
      capacity: o.capacity,
      capacityBytes: o.capacityBytes,
      evictionPolicy: o.evictionPolicy,
      leaseMs: o.invalidationTimeoutMs,
      fetch: (key) => this.#withHome(key, true, async (home) => ({ grant: grantOf(await this.#call(home, Op.CACHE_READ, { key })), home })),
      renew: (items) => this.#renew(items),
      count,
    });
    this.#home = new CacheHome({
      self: o.nodeId,
      partitions: o.partitions,
      peers: o.peers,
      leaseMs: o.invalidationTimeoutMs,
      redis: o.redis,
      writeThrough: o.writePolicy === "write-through",
      writeBackMs: o.writeBackMs,
      log: o.log,
      invalidateLocal: (keys) => this.#invalidateLocal(keys),
      count,
    });
    const registers = [o.metrics.registry];
    this.#c = {
      hits: new Counter({ name: "dsync_cache_hits_total", help: "Cache reads served from this node's own leased copy.", registers }),
      misses: new Counter({ name: "dsync_cache_misses_total", help: "Cache reads that had to ask the key's home.", registers }),
      evictions: new Counter({ name: "dsync_cache_evictions_total", help: "Copies evicted past the capacity bounds, by eviction policy.", labelNames: ["policy"] as const, registers }),
      invSent: new Counter({ name: "dsync_cache_invalidations_sent_total", help: "Copies this node, as home, invalidated before a write or an invalidate.", registers }),
      invReceived: new Counter({ name: "dsync_cache_invalidations_received_total", help: "Invalidations of this node's copies received from homes.", registers }),
      storeWrites: new Counter({ name: "dsync_cache_store_writes_total", help: "Versions this node, as home, wrote to Redis.", registers }),
      writeBackLost: new Counter({
        name: "dsync_cache_writeback_lost_total",
        help: "Write-back: times this node, as the next home, found that the previous home restarted before handing on its buffer; each time, writes it acknowledged in its last CACHE_WRITE_BACK_MS and had not written to the log (possibly none) are lost.",
        registers,
      }),
    };
    this.#g = {
      lines: new Gauge({ name: "dsync_cache_lines", help: "Leased copies held by this node.", registers }),
      hitRatio: new Gauge({ name: "dsync_cache_hit_ratio", help: "hits / (hits + misses) since start.", registers }),
      bytes: new Gauge({ name: "dsync_cache_bytes", help: "Bytes charged to this node's copies.", registers }),
      holders: new Gauge({ name: "dsync_cache_holder_entries", help: "Copies this node, as home, granted whose lease has not run out.", registers }),
      dirty: new Gauge({ name: "dsync_cache_dirty_versions", help: "Committed versions in this node's partitions that Redis does not have yet (write-back backlog).", registers }),
    };
  }

  /** Counts in plain numbers on the hot path; the Prometheus counters catch up on each scrape. */
  #bump(name: CounterName, by = 1): void {
    this.#n[name] += by;
  }

  /** Hands what was counted since the last scrape to the Prometheus counters. */
  #syncCounters(): void {
    for (const name of Object.keys(this.#n) as CounterName[]) {
      const delta = this.#n[name] - this.#exported[name];
      if (delta <= 0) continue;
      this.#exported[name] = this.#n[name];
      if (name === "evictions") this.#c.evictions.inc({ policy: this.#holder.lines.policy }, delta);
      else this.#c[name].inc(delta);
    }
  }

  // ---------------------------------------------------------------- wiring

  register({ client: router, peer }: Handlers): void {
    router.register(Op.CACHE_GET, (body, ctx) => {
      const f = fieldsOf(body, "CACHE_GET");
      return this.get(keyOf(f, "CACHE_GET"), bool(f, "near", "CACHE_GET") ? ctx : null);
    });
    router.register(Op.CACHE_SET, async (body) => {
      const f = fieldsOf(body, "CACHE_SET");
      const key = keyOf(f, "CACHE_SET");
      const value = valueOf(f, "CACHE_SET", false);
      const ttlMs = int(f, "ttlMs", "CACHE_SET", { optional: true, min: 1, max: CACHE_TTL_MS_MAX });
      const home = await this.set(key, value, ttlMs === undefined ? 0 : wallNow() + ttlMs, widOf(f, "CACHE_SET"));
      return { key, homeAddr: this.#o.clientAddrOf(home) };
    });
    router.register(Op.CACHE_DELETE, async (body) => {
      const f = fieldsOf(body, "CACHE_DELETE");
      const key = keyOf(f, "CACHE_DELETE");
      const home = await this.set(key, null, 0, widOf(f, "CACHE_DELETE"));
      return { key, homeAddr: this.#o.clientAddrOf(home) };
    });
    router.register(Op.CACHE_INVALIDATE, async (body) => {
      const key = keyOf(fieldsOf(body, "CACHE_INVALIDATE"), "CACHE_INVALIDATE");
      const home = await this.#withHome(key, true, async (h) => {
        await this.#call(h, Op.CACHE_DROP, { key });
        return h;
      });
      return { key, homeAddr: this.#o.clientAddrOf(home) };
    });
    router.register(Op.CACHE_STATE, async (body) => this.state(keyOf(fieldsOf(body, "CACHE_STATE"), "CACHE_STATE")));
    router.register(Op.CACHE_STATS, (body) => {
      fieldsOf(body, "CACHE_STATS");
      return this.stats();
    });
    router.register(Op.CACHE_NEAR_RENEW, (body, ctx) => ({ leases: this.#nearRenew(renewItemsOf(fieldsOf(body, "CACHE_NEAR_RENEW"), "CACHE_NEAR_RENEW"), ctx) }));
    router.register(Op.CACHE_NEAR_ACK, (body, ctx) => {
      const f = fieldsOf(body, "CACHE_NEAR_ACK");
      this.#near.ack(int(f, "seq", "CACHE_NEAR_ACK", { min: 1 }), ctx.conn);
      return {};
    });
    for (const op of [Op.CACHE_READ, Op.CACHE_WRITE, Op.CACHE_INVALIDATE_COPY, Op.CACHE_DROP, Op.CACHE_PEEK, Op.CACHE_RENEW, Op.CACHE_HANDOFF]) {
      peer(op, (from, env) => this.#onPeer(from, env.type, env.body));
    }
  }

  start(): void {
    this.#o.partitions.startBalancer();
    this.#home.start();
    this.#holder.start();
  }

  /** A Raft group's leadership changed on this node (cache partitions only matter here). */
  onRoleChange(group: number, leader: boolean): void {
    const part = this.#o.partitions.byGroup(group);
    if (part) this.#home.onRoleChange(part, leader);
  }

  /** Graceful stop, before leadership moves: every write acknowledged from memory goes to the log. */
  drain(): Promise<void> {
    return this.#home.drain(2000);
  }

  stop(): void {
    this.#stopped = true;
    this.#o.partitions.stop();
    this.#home.stop();
    this.#holder.stop();
  }

  async close(): Promise<void> {
    await this.#o.redis?.close();
  }

  // ---------------------------------------------------------------- client operations

  /**
   * Reads `key`; `near` lets the client keep the value for the lease the reply carries. A live
   * copy here answers at once (no promise: the hot path of a read-mostly cache), else the home
   * is asked.
   */
  get(key: string, near: RequestContext | null): CacheGetReply | Promise<CacheGetReply> {
    const line = this.#holder.hit(key);
    if (line === undefined) return this.#getFromHome(key, near);
    this.#n.hits++;
    return this.#answer(key, line, near, false);
  }

  async #getFromHome(key: string, near: RequestContext | null): Promise<CacheGetReply> {
    const watch = near ? this.#near.watch(key) : null;
    let held;
    try {
      held = await this.#holder.get(key);
    } catch (err) {
      watch?.end();
      throw err;
    }
    // An invalidation that passed while we read would have missed a near copy registered after it.
    return this.#answer(key, held, near, watch?.end() ?? false);
  }

  #answer(key: string, held: HeldValue, near: RequestContext | null, invalidated: boolean): CacheGetReply {
    const leaseMs = Math.floor(held.leaseUntil - monoNow());
    const registered = near !== null && !invalidated && leaseMs > 0;
    if (registered) this.#near.add(key, near.conn, (fn) => near.onClose(fn));
    const live = held.value !== null && (held.expiresAt === 0 || held.expiresAt > wallNow());
    return { found: live, value: live ? held.value : null, expiresAt: live ? held.expiresAt : 0, near: registered, leaseMs: registered ? leaseMs : 0, gen: held.gen };
  }

  /**
   * Writes `key` (null deletes it) at its home; resolves with that home's node id once committed
   * with every other copy dropped. `wid` names the write: resends of it (after a lost reply) are
   * applied once.
   */
  async set(key: string, value: Uint8Array | null, expiresAt: number, wid: string = randomWid()): Promise<string> {
    return this.#withHome(key, false, async (home) => {
      // This node is home: no request to build and check again.
      if (home === this.#self) await this.#home.write(key, value, expiresAt, wid);
      else await this.#call(home, Op.CACHE_WRITE, { key, value, expiresAt, wid });
      return home;
    });
  }

  /** The copy of `key` on every reachable member, with its home's grants. */
  async state(key: string): Promise<CacheKeyState> {
    const copies: CacheCopy[] = [];
    const unreachable: string[] = [];
    await Promise.all(
      this.#o.members().map(async (m) => {
        try {
          copies.push((await this.#call(m, Op.CACHE_PEEK, { key }, this.#o.invalidationTimeoutMs)) as CacheCopy);
        } catch {
          unreachable.push(m);
        }
      }),
    );
    copies.sort((a, b) => (a.node < b.node ? -1 : 1));
    let home: string | null = null;
    let partition: number | null = null;
    try {
      partition = this.#o.partitions.partitionOf(key);
      home = this.#o.partitions.localPart(key)?.group.leader ?? null;
    } catch {
      // Partitions not open yet: no home to name.
    }
    // A node without a replica of the partition learns the home from the copies: the home's lists its grants.
    home ??= copies.find((c) => c.holders !== null)?.node ?? null;
    return { key, home, partition, copies, unreachable: unreachable.sort() };
  }

  stats(): CacheStats {
    const n = this.#n;
    const lines = this.#holder.lines;
    return {
      nodeId: this.#self,
      hits: n.hits,
      misses: n.misses,
      hitRatio: n.hits + n.misses === 0 ? 0 : n.hits / (n.hits + n.misses),
      evictions: n.evictions,
      invalidationsSent: n.invSent,
      invalidationsReceived: n.invReceived,
      storeWrites: n.storeWrites,
      lines: lines.size,
      bytes: lines.bytes,
      capacity: this.#o.capacity,
      capacityBytes: this.#o.capacityBytes,
      holderEntries: this.#home.holderEntries,
      nearClients: this.#near.connections,
      nearKeys: this.#near.keys,
      store: this.#o.redis === null ? "embedded" : "redis",
      writePolicy: this.#o.writePolicy,
      homeOf: this.#home.homeOf(),
      dirty: this.#home.dirty(),
    };
  }

  refreshGauges(): void {
    this.#syncCounters();
    const s = this.stats();
    this.#g.lines.set(s.lines);
    this.#g.hitRatio.set(s.hitRatio);
    this.#g.bytes.set(s.bytes);
    this.#g.holders.set(s.holderEntries);
    this.#g.dirty.set(s.dirty);
  }

  // ---------------------------------------------------------------- routing

  /**
   * Runs `fn` against the key's home (its partition's leader), retrying while there is none or it
   * moves. `safeToRepeat`: a read may be sent again after any failure; a write only after one that
   * says the home did not act on it.
   */
  async #withHome<T>(key: string, safeToRepeat: boolean, fn: (home: string) => Promise<T>): Promise<T> {
    const deadline = Date.now() + RETRY_WINDOW_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        const homes = this.#o.partitions.homeCandidates(key);
        if (homes.length === 0) throw new CacheHomeUnavailableError(`the partition of ${JSON.stringify(key)} has no leader (home) right now; retry shortly`);
        return await fn(homes[attempt % homes.length]!);
      } catch (err) {
        const retry = err instanceof DsyncError && (NOT_DONE.has(err.code) || (safeToRepeat && err.retryable));
        if (!retry || Date.now() > deadline || this.#stopped) throw err;
        await sleep(Math.min(50, 2 << Math.min(attempt, 5)));
      }
    }
  }

  /** A request to `node`, or a direct call when it is this node. */
  #call(node: string, op: number, body: unknown, timeoutMs = this.#homeTimeoutMs): Promise<unknown> {
    if (node === this.#self) return this.#onPeer(this.#self, op, body);
    return this.#o.peers.request(node, op, body, timeoutMs);
  }

  /**
   * A near-cache client's renewal: for each copy it still holds through this connection at the
   * version this node holds, the time left on this node's own lease (the client counts it from
   * when it sent the request, so its lease ends no later than ours).
   */
  #nearRenew(items: [string, number][], ctx: RequestContext): [string, number][] {
    const out: [string, number][] = [];
    for (const [key, gen] of items) {
      const line = this.#holder.hit(key);
      if (line === undefined || line.gen !== gen || !this.#near.holds(key, ctx.conn)) continue;
      const leaseMs = Math.floor(line.leaseUntil - monoNow());
      if (leaseMs > 0) out.push([key, leaseMs]);
    }
    return out;
  }

  /** Renewal requests, one per current home; resolves with the keys renewed. */
  async #renew(items: [string, number][]): Promise<string[]> {
    const byHome = new Map<string, [string, number][]>();
    for (const item of items) {
      const home = this.#o.partitions.homeCandidates(item[0])[0];
      if (home === undefined) continue;
      let list = byHome.get(home);
      if (!list) byHome.set(home, (list = []));
      list.push(item);
    }
    const replies = await Promise.allSettled([...byHome].map(([home, list]) => this.#call(home, Op.CACHE_RENEW, { items: list }, this.#o.invalidationTimeoutMs)));
    return replies.flatMap((r) => (r.status === "fulfilled" ? keysOf(fieldsOf(r.value, "CACHE_RENEW reply"), "CACHE_RENEW reply") : []));
  }

  async #invalidateLocal(keys: string[]): Promise<void> {
    this.#holder.invalidate(keys);
    await this.#near.invalidate(keys);
  }

  async #onPeer(from: string, op: number, body: unknown): Promise<unknown> {
    const f = fieldsOf(body, `cache peer request ${op}`);
    switch (op) {
      case Op.CACHE_READ:
        return this.#home.read(from, keyOf(f, "CACHE_READ"));
      case Op.CACHE_WRITE:
        return this.#home.write(keyOf(f, "CACHE_WRITE"), valueOf(f, "CACHE_WRITE", true), expiresAtOf(f, "CACHE_WRITE"), widOf(f, "CACHE_WRITE"));
      case Op.CACHE_DROP:
        await this.#home.drop(keyOf(f, "CACHE_DROP"));
        return {};
      case Op.CACHE_INVALIDATE_COPY:
        await this.#invalidateLocal(keysOf(f, "CACHE_INVALIDATE_COPY"));
        return {};
      case Op.CACHE_PEEK:
        return this.#peek(keyOf(f, "CACHE_PEEK"));
      case Op.CACHE_RENEW:
        return { keys: await this.#home.renew(from, renewItemsOf(f, "CACHE_RENEW")) };
      case Op.CACHE_HANDOFF:
        return this.#home.handoff(int(f, "partition", "CACHE_HANDOFF", { min: 1 }), int(f, "term", "CACHE_HANDOFF", { min: 0 }));
      default:
        throw new DsyncError(ErrorCode.UNKNOWN_TYPE, `cache peer request ${op} is not handled`);
    }
  }

  #peek(key: string): CacheCopy {
    const line = this.#holder.lines.peek(key);
    const leaseMs = line ? Math.max(0, Math.floor(line.leaseUntil - monoNow())) : 0;
    let holders: { node: string; leaseMs: number }[] | null = null;
    try {
      holders = this.#home.holdersOf(key);
    } catch {
      // Partitions not open yet.
    }
    return { node: this.#self, state: leaseMs > 0 ? "S" : "I", gen: line?.gen ?? null, home: line?.home ?? null, leaseMs, near: this.#near.count(key), holders };
  }
}

/** The write id a client sent, or a fresh one (a node's own retries then apply once too). */
function widOf(f: Fields, what: string): string {
  return str(f, "wid", what, { optional: true, maxBytes: WID_BYTES_MAX }) ?? randomWid();
}

function randomWid(): string {
  return randomBytes(12).toString("base64url");
}

function grantOf(body: unknown): ReadGrant {
  const f = fieldsOf(body, "CACHE_READ reply");
  return { value: valueOf(f, "CACHE_READ reply", true), expiresAt: expiresAtOf(f, "CACHE_READ reply"), gen: genOf(f, "CACHE_READ reply"), leaseMs: int(f, "leaseMs", "CACHE_READ reply", { min: 0 }) };
}

