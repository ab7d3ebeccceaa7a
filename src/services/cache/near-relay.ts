import { Op } from "../../../protocol/index.ts";
import type { FramedSocket } from "../../transport/framed-socket.ts";

interface PendingAck {
  readonly conn: FramedSocket;
  readonly resolve: () => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * The client connections that hold near-cache copies of keys through this node. The node relays
 * every invalidation it gets from a home: push CACHE_NEAR_INVALIDATE, wait for CACHE_NEAR_ACK. A
 * client that does not answer in time is disconnected (its library drops the whole near-cache
 * with the connection). A client's copy is leased within the node's own lease, so once the
 * node's copy is gone (evicted, expired) the client's runs out by itself.
 */
export class NearHolders {
  /** @param ackTimeoutMs how long a client has to acknowledge an invalidation before it is disconnected. */
  constructor(readonly ackTimeoutMs = 500) {}

  readonly #byKey = new Map<string, Set<FramedSocket>>();
  readonly #byConn = new Map<FramedSocket, Set<string>>();
  readonly #pending = new Map<number, PendingAck>();
  /**
   * Invalidations still waiting for clients' acks, per key. A later invalidation of the key waits
   * for them too: the holders are already forgotten, but their clients may still serve the copy
   * until they ack.
   */
  readonly #inflight = new Map<string, Promise<void>>();
  /** Misses in flight that may register a near copy, per key; an invalidation marks them. */
  readonly #watchers = new Map<string, Set<{ invalidated: boolean }>>();
  #seq = 0;

  /**
   * Starts watching `key` while a miss that may register a near copy is in flight; the returned
   * `end()` stops watching and tells whether an invalidation of `key` passed in the meantime. A
   * copy read before such an invalidation must not be registered after it: the invalidation would
   * have missed it and the client would keep serving it (the client then does not cache it).
   */
  watch(key: string): { end(): boolean } {
    const w = { invalidated: false };
    let set = this.#watchers.get(key);
    if (!set) this.#watchers.set(key, (set = new Set()));
    set.add(w);
    return {
      end: () => {
        set.delete(w);
        if (set.size === 0 && this.#watchers.get(key) === set) this.#watchers.delete(key);
        return w.invalidated;
      },
    };
  }

  /** Records that `conn` holds `key`; `onClose` registers the cleanup once per connection. */
  add(key: string, conn: FramedSocket, onClose: (fn: () => void) => void): void {
    let keys = this.#byConn.get(conn);
    if (!keys) {
      this.#byConn.set(conn, (keys = new Set()));
      onClose(() => this.#drop(conn));
    }
    keys.add(key);
    let conns = this.#byKey.get(key);
    if (!conns) this.#byKey.set(key, (conns = new Set()));
    conns.add(conn);
  }

  /** Whether `conn` holds `key` (registered and not invalidated since). */
  holds(key: string, conn: FramedSocket): boolean {
    return this.#byKey.get(key)?.has(conn) === true;
  }

  /** Connections holding near copies. */
  get connections(): number {
    return this.#byConn.size;
  }

  /** Keys held by near-cache clients. */
  get keys(): number {
    return this.#byKey.size;
  }

  /** Holders of `key`. */
  count(key: string): number {
    return this.#byKey.get(key)?.size ?? 0;
  }

  /**
   * Tells every client holding one of `keys` to drop them, and resolves once each has confirmed
   * (or was disconnected). Resolves at once when no client holds them.
   */
  invalidate(keys: Iterable<string>): Promise<void> {
    const perConn = new Map<FramedSocket, string[]>();
    const earlier: Promise<void>[] = [];
    const asked: string[] = [];
    for (const key of keys) {
      for (const w of this.#watchers.get(key) ?? []) w.invalidated = true;
      const pending = this.#inflight.get(key);
      if (pending) earlier.push(pending);
      const conns = this.#byKey.get(key);
      if (!conns) continue;
      this.#byKey.delete(key);
      asked.push(key);
      for (const c of conns) {
        this.#byConn.get(c)?.delete(key);
        let list = perConn.get(c);
        if (!list) perConn.set(c, (list = []));
        list.push(key);
      }
    }
    if (perConn.size === 0) return earlier.length === 0 ? Promise.resolve() : Promise.all(earlier).then(() => undefined);
    // After pending microtasks: a CACHE_GET reply already decided (a few promise hops from being
    // sent) must reach the client before the push that invalidates its value.
    const done = new Promise<void>((r) => setImmediate(r))
      .then(() => Promise.all([...perConn].map(([conn, list]) => this.#ask(conn, list))))
      .then(() => {
        for (const key of asked) if (this.#inflight.get(key) === done) this.#inflight.delete(key);
      });
    for (const key of asked) this.#inflight.set(key, done);
    return Promise.all([done, ...earlier]).then(() => undefined);
  }

  /** A client's CACHE_NEAR_ACK. */
  ack(seq: number, conn: FramedSocket): void {
    const p = this.#pending.get(seq);
    if (!p || p.conn !== conn) return;
    this.#pending.delete(seq);
    clearTimeout(p.timer);
    p.resolve();
  }

  #ask(conn: FramedSocket, keys: string[]): Promise<void> {
    if (conn.isClosed) return Promise.resolve();
    const seq = ++this.#seq;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        // No answer: the client may still serve the keys, so it must lose its connection (and
        // with it every near copy) before the write goes on.
        this.#pending.delete(seq);
        conn.destroy();
        resolve();
      }, this.ackTimeoutMs);
      this.#pending.set(seq, { conn, resolve, timer });
      conn.send({ type: Op.CACHE_NEAR_INVALIDATE, id: 0, body: { seq, keys } });
    });
  }

  #drop(conn: FramedSocket): void {
    for (const key of this.#byConn.get(conn) ?? []) {
      const conns = this.#byKey.get(key);
      conns?.delete(conn);
      if (conns?.size === 0) this.#byKey.delete(key);
    }
    this.#byConn.delete(conn);
    for (const [seq, p] of this.#pending) {
      if (p.conn !== conn) continue;
      this.#pending.delete(seq);
      clearTimeout(p.timer);
      p.resolve();
    }
  }
}
