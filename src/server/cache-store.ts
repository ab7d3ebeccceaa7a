import { Redis } from "ioredis";
import { DsyncError, ErrorCode } from "../../protocol/index.ts";
import { wallNow } from "./wall-clock.ts";

/** A value as the backing store keeps it: bytes (null = absent) and an absolute expiry (0 = none). */
export interface StoredValue {
  readonly value: Uint8Array | null;
  readonly expiresAt: number;
}

/**
 * Where the cache's values live when no node holds them. The home of a key is the only node
 * that reads or writes the key here, one request at a time, so the store needs no ordering of
 * its own.
 */
export interface BackingStore {
  readonly kind: "redis" | "embedded";
  read(key: string): Promise<StoredValue>;
  /** Writes `v` (deletes the key when `v.value` is null or already expired). */
  write(key: string, v: StoredValue): Promise<void>;
  close(): Promise<void>;
}

/** Redis keys are the cache keys under this prefix, so the cache can share a Redis with other data. */
export const REDIS_KEY_PREFIX = "dsync:cache:";
const REDIS_TIMEOUT_MS = 2000;

/** The values in Redis through ioredis; TTLs become Redis expiries (PXAT). */
export class RedisStore implements BackingStore {
  readonly kind = "redis";
  readonly #redis: Redis;

  constructor(url: string) {
    // Fail requests fast while Redis is down instead of queueing them without bound.
    this.#redis = new Redis(url, { lazyConnect: false, enableOfflineQueue: true, maxRetriesPerRequest: 2, commandTimeout: REDIS_TIMEOUT_MS });
    this.#redis.on("error", () => {}); // Reported per command; ioredis reconnects by itself.
  }

  async read(key: string): Promise<StoredValue> {
    try {
      const k = REDIS_KEY_PREFIX + key;
      const res = await this.#redis.multi().getBuffer(k).pexpiretime(k).exec();
      if (!res) throw new Error("transaction aborted");
      const [[e1, value], [e2, pexpire]] = res as [[Error | null, Buffer | null], [Error | null, number]];
      if (e1 || e2) throw e1 ?? e2;
      return { value: value ?? null, expiresAt: pexpire > 0 ? pexpire : 0 };
    } catch (err) {
      throw storeError("read", key, err);
    }
  }

  async write(key: string, v: StoredValue): Promise<void> {
    const k = REDIS_KEY_PREFIX + key;
    try {
      if (v.value === null || (v.expiresAt > 0 && v.expiresAt <= wallNow())) await this.#redis.del(k);
      else if (v.expiresAt > 0) await this.#redis.set(k, Buffer.from(v.value.buffer, v.value.byteOffset, v.value.byteLength), "PXAT", v.expiresAt);
      else await this.#redis.set(k, Buffer.from(v.value.buffer, v.value.byteOffset, v.value.byteLength));
    } catch (err) {
      throw storeError("write", key, err);
    }
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

/**
 * The embedded store: values kept in the home node's memory. With no Redis, a key's value lives
 * on its home; when the home moves (a takeover) the old home hands its values over. Values of a
 * home that dies with them are lost — configure REDIS_URL for durability.
 */
export class EmbeddedStore implements BackingStore {
  readonly kind = "embedded";
  readonly #values = new Map<string, StoredValue>();

  async read(key: string): Promise<StoredValue> {
    const v = this.#values.get(key);
    if (v === undefined) return { value: null, expiresAt: 0 };
    if (v.expiresAt > 0 && v.expiresAt <= wallNow()) {
      this.#values.delete(key);
      return { value: null, expiresAt: 0 };
    }
    return v;
  }

  async write(key: string, v: StoredValue): Promise<void> {
    if (v.value === null || (v.expiresAt > 0 && v.expiresAt <= wallNow())) this.#values.delete(key);
    else this.#values.set(key, v);
  }

  /** Removes and returns the values `pred` selects (handed to a new home). */
  take(pred: (key: string) => boolean): [string, StoredValue][] {
    const out: [string, StoredValue][] = [];
    for (const [k, v] of this.#values) {
      if (!pred(k)) continue;
      out.push([k, v]);
      this.#values.delete(k);
    }
    return out;
  }

  get size(): number {
    return this.#values.size;
  }

  async close(): Promise<void> {}
}

function storeError(what: string, key: string, cause: unknown): DsyncError {
  return new DsyncError(ErrorCode.CACHE_STORE_ERROR, `backing store ${what} of ${JSON.stringify(key)} failed: ${(cause as Error).message}`, { cause });
}
