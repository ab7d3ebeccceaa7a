import { DsyncError, hadNoEffect, Op, outcomeError, type CacheKeyState, type CacheStats, type Envelope } from "../../protocol/index.ts";
import type { DsyncClient } from "./client.ts";
// The module's binding, not the global: the global is a lazy getter, ~15 ns more per read on a path timed in hundreds.
import { performance } from "node:perf_hooks";

/** Options of {@link CacheClient}. */
export interface CacheClientOptions {
  /**
   * Keep an in-process near-cache: a hit costs no network at all. Each copy is leased (about a
   * second, CACHE_INVALIDATION_TIMEOUT_MS) and re-read after; the connected node relays the
   * home's invalidations (CACHE_NEAR_INVALIDATE) meanwhile, and the whole near-cache is dropped
   * whenever the connection drops. Default off.
   */
  readonly nearCache?: boolean;
  /** Entries kept in the near-cache (LRU), default 10,000. */
  readonly nearCapacity?: number;
  /**
   * Send each key's writes (set, delete, invalidate) straight to its home, as the nodes name it in
   * their replies, instead of through the connected node, which would forward them: one hop less
   * per write. Reads stay on the connected node (it keeps the leased copy). Default true.
   */
  readonly routeToHome?: boolean;
}

/** Options of {@link CacheClient.set}. */
export interface CacheSetOptions {
  /** Expire the value this long after the write. */
  readonly ttlMs?: number;
}

interface GetReply {
  readonly found: boolean;
  readonly value: Uint8Array | null;
  readonly expiresAt: number;
  readonly near?: boolean;
  readonly leaseMs?: number;
  readonly gen?: number;
}

interface NearEntry {
  readonly value: Uint8Array | null;
  readonly expiresAt: number;
  /** The version, named when the lease is renewed. */
  readonly gen: number;
  /** performance.now() after which the copy may be stale: its lease, counted from when the request was sent. */
  leaseUntil: number;
  /** The lease's length when last granted: renewal starts at half of it. */
  leaseMs: number;
  /** performance.now() of the last hit: copies used lately are renewed. */
  usedAt: number;
}

/** A near copy used within this long keeps being renewed. */
const RENEW_IDLE_MS = 30_000;
const RENEW_EVERY_MS = 100;

const utf8 = new TextEncoder();
/** Keys whose home is remembered; past this the routes start over (memory stays bounded). */
const ROUTES_MAX = 10_000;

/** Names this client's writes (`wid`), so the node applies a resent write once. */
const WID_PREFIX = Array.from(crypto.getRandomValues(new Uint8Array(9)), (b) => b.toString(16).padStart(2, "0")).join("");
let widSeq = 0;
const nextWid = (): string => `${WID_PREFIX}-${(++widSeq).toString(36)}`;

/**
 * The coherent distributed cache over a {@link DsyncClient}. Reads are served by the connected
 * node (from its own line on a hit); a write invalidates every other copy before it resolves, so
 * a read that starts after a write completed, through any node, sees it.
 */
export class CacheClient {
  readonly #client: DsyncClient;
  readonly #near: Map<string, NearEntry> | null;
  readonly #nearCapacity: number;
  /** Key → client address of its home, as the last write's reply named it. */
  readonly #routes: Map<string, string> | null;
  readonly #onPush = (env: Envelope): void => this.#handlePush(env);
  readonly #onDrop = (): void => this.#near?.clear();
  #nearHits = 0;
  #nearMisses = 0;
  #renewTimer: NodeJS.Timeout | null = null;
  #renewing = false;

  constructor(client: DsyncClient, opts: CacheClientOptions = {}) {
    this.#client = client;
    this.#near = opts.nearCache ? new Map() : null;
    this.#nearCapacity = opts.nearCapacity ?? 10_000;
    this.#routes = opts.routeToHome === false ? null : new Map();
    if (this.#near) {
      if (client.getMaxListeners() !== 0) client.setMaxListeners(client.getMaxListeners() + 3);
      client.on("push", this.#onPush);
      // The node forgets our copies with the connection; so must we.
      client.on("disconnect", this.#onDrop);
      client.on("connect", this.#onDrop);
      this.#renewTimer = setInterval(() => void this.#renewSoon(), RENEW_EVERY_MS);
      this.#renewTimer.unref();
    }
  }

  /** Near-cache hits served without a round trip. */
  get nearHits(): number {
    return this.#nearHits;
  }

  /** Gets that went to the node although the near-cache is on. */
  get nearMisses(): number {
    return this.#nearMisses;
  }

  /** Where this client sends `key`'s writes: its home's client address, or null (through the connected node). */
  routeOf(key: string): string | null {
    return this.#routes?.get(key) ?? null;
  }

  /** The value of `key`, or null when absent (or expired). */
  get(key: string): Promise<Uint8Array | null> {
    // A near-cache hit settles without an async frame: the hot path of a read-mostly client.
    const hit = this.#nearHit(key);
    return hit === undefined ? this.#fetch(key) : Promise.resolve(hit);
  }

  /** The near-cache's live copy of `key` (undefined: none, or its lease or TTL ran out). */
  #nearHit(key: string): Uint8Array | null | undefined {
    const near = this.#near;
    if (near === null) return undefined;
    const e = near.get(key);
    if (e !== undefined) {
      const now = performance.now();
      if (e.leaseUntil > now) {
        if (e.expiresAt === 0 || e.expiresAt > Date.now()) {
          e.usedAt = now;
          this.#nearHits++;
          return e.value;
        }
      } else near.delete(key);
    }
    this.#nearMisses++;
    return undefined;
  }

  async #fetch(key: string): Promise<Uint8Array | null> {
    const near = this.#near;
    const sentAt = performance.now();
    const r = (await this.#client.call(Op.CACHE_GET, near ? { key, near: true } : { key }, { idempotent: true })) as GetReply;
    // Installed with no await after the reply: an invalidation push that followed the reply on
    // the connection is handled after this (see #handlePush). The lease counts from before the
    // request left, so it ends no later than the node's own.
    const leaseMs = typeof r.leaseMs === "number" ? r.leaseMs : 0;
    if (near && r.near === true && leaseMs > 0 && typeof r.gen === "number") {
      near.delete(key);
      near.set(key, { value: r.found ? r.value : null, expiresAt: r.expiresAt, gen: r.gen, leaseUntil: sentAt + leaseMs, leaseMs, usedAt: performance.now() });
      if (near.size > this.#nearCapacity) near.delete(near.keys().next().value!);
    }
    return r.found ? r.value : null;
  }

  /** `get` decoded as UTF-8. */
  async getString(key: string): Promise<string | null> {
    const v = await this.get(key);
    return v === null ? null : new TextDecoder().decode(v);
  }

  /** Writes `key`; resolves once every other copy in the cluster is invalidated. */
  async set(key: string, value: Uint8Array | string, opts: CacheSetOptions = {}): Promise<void> {
    this.#near?.delete(key);
    const bytes = typeof value === "string" ? utf8.encode(value) : value;
    // Resent after a lost reply under the same write id: applied once, never over a newer write.
    await this.#write(key, Op.CACHE_SET, { key, value: bytes, wid: nextWid(), ...(opts.ttlMs !== undefined && { ttlMs: opts.ttlMs }) });
  }

  async delete(key: string): Promise<void> {
    this.#near?.delete(key);
    await this.#write(key, Op.CACHE_DELETE, { key, wid: nextWid() });
  }

  /** Drops every cached copy of `key` cluster-wide (the value itself stays). */
  async invalidate(key: string): Promise<void> {
    this.#near?.delete(key);
    await this.#write(key, Op.CACHE_INVALIDATE, { key });
  }

  /**
   * Sends a write to the key's home when known, else to the connected node (which forwards it),
   * and remembers the home the reply names. Every node accepts every key, so a stale route costs
   * nothing but the forward. A routed attempt that fails retryably goes once more through the
   * connected node under the same write id (applied at most once).
   */
  async #write(key: string, op: number, body: object): Promise<void> {
    const routes = this.#routes;
    const addr = routes?.get(key);
    let unknown: DsyncError | null = null;
    if (routes !== null && addr !== undefined) {
      try {
        this.#learn(key, await this.#client.sibling(addr).call(op, body, { idempotent: true }));
        return;
      } catch (err) {
        routes.delete(key);
        if (!(err instanceof DsyncError) || !err.retryable) throw err;
        if (!hadNoEffect(err.code)) unknown = err;
      }
    }
    try {
      this.#learn(key, await this.#client.call(op, body, { idempotent: true }));
    } catch (err) {
      throw outcomeError(unknown, err as Error);
    }
  }

  #learn(key: string, reply: unknown): void {
    const routes = this.#routes;
    const addr = (reply as { homeAddr?: unknown } | null)?.homeAddr;
    if (routes === null || typeof addr !== "string") return;
    // The connected node is home: no route needed (and none kept for it).
    if (addr === this.#client.connectedTo) {
      routes.delete(key);
      return;
    }
    if (routes.size >= ROUTES_MAX && !routes.has(key)) routes.clear();
    routes.set(key, addr);
  }

  /** Which nodes hold a leased copy of `key`, and the copies its home granted. */
  async state(key: string): Promise<CacheKeyState> {
    return (await this.#client.call(Op.CACHE_STATE, { key }, { idempotent: true })) as CacheKeyState;
  }

  /** The connected node's cache counters. */
  async stats(): Promise<CacheStats> {
    return (await this.#client.call(Op.CACHE_STATS, {}, { idempotent: true })) as CacheStats;
  }

  /** Stops listening to the connection (the connection itself stays open). */
  close(): void {
    if (this.#renewTimer) clearInterval(this.#renewTimer);
    this.#client.off("push", this.#onPush);
    this.#client.off("disconnect", this.#onDrop);
    this.#client.off("connect", this.#onDrop);
    this.#near?.clear();
  }

  /**
   * Renews the leases of near copies used lately that are past half their lease. The node
   * answers with the time left on its own copy; counted from when this request was sent, the
   * extended lease still ends no later than the node's.
   */
  async #renewSoon(): Promise<void> {
    const near = this.#near;
    if (!near || this.#renewing || near.size === 0) return;
    const sentAt = performance.now();
    const items: [string, number][] = [];
    for (const [key, e] of near) {
      if (e.leaseUntil <= sentAt || e.leaseUntil - sentAt > e.leaseMs / 2 || sentAt - e.usedAt > RENEW_IDLE_MS) continue;
      items.push([key, e.gen]);
    }
    if (items.length === 0) return;
    this.#renewing = true;
    try {
      const r = (await this.#client.call(Op.CACHE_NEAR_RENEW, { items }, { timeoutMs: 2000 })) as { leases?: unknown };
      if (!Array.isArray(r.leases)) return;
      const gens = new Map(items);
      for (const l of r.leases as unknown[]) {
        if (!Array.isArray(l) || typeof l[0] !== "string" || typeof l[1] !== "number") continue;
        const e = near.get(l[0]);
        // A copy dropped, or replaced by a newer version, since the request left is left alone.
        if (e === undefined || e.gen !== gens.get(l[0])) continue;
        e.leaseUntil = Math.max(e.leaseUntil, sentAt + l[1]);
        e.leaseMs = l[1];
      }
    } catch {
      // Copies not renewed run out; the next get asks the node.
    } finally {
      this.#renewing = false;
    }
  }

  #handlePush(env: Envelope): void {
    if (env.type !== Op.CACHE_NEAR_INVALIDATE) return;
    const body = env.body as { seq?: unknown; keys?: unknown };
    if (typeof body?.seq !== "number" || !Array.isArray(body.keys)) return;
    const { seq, keys } = body;
    // After pending microtasks: a get whose reply preceded this push has installed its entry.
    setImmediate(() => {
      for (const k of keys) if (typeof k === "string") this.#near?.delete(k);
      this.#client.call(Op.CACHE_NEAR_ACK, { seq }, { timeoutMs: 2000 }).catch(() => {});
    });
  }
}
