import { Redis } from "ioredis";
import { DsyncError, ErrorCode } from "../../../protocol/index.ts";

/** A value as the store keeps it: bytes (null = absent) and an absolute expiry (0 = none). */
export interface StoredValue {
  readonly value: Uint8Array | null;
  readonly expiresAt: number;
}

/** Redis keys are the cache keys under this prefix, so the cache can share a Redis with other data. */
export const REDIS_KEY_PREFIX = "dsync:cache:";
/** Beside each value, the log index (gen) of the version Redis holds, under this prefix. */
export const REDIS_GEN_PREFIX = "dsync:cache-gen:";
/**
 * How long Redis remembers a key's gen. A write from a deposed leader can only arrive within
 * the command timeout (plus a reconnect), far less than this; a much later write of the same key
 * always carries a higher gen anyway.
 */
const GEN_TTL_MS = 60_000;
const REDIS_TIMEOUT_MS = 2000;

/**
 * Writes a version unless Redis already holds a newer one: two leaders of one partition (an old
 * one still flushing, a new one flushing the same dirty key) can never put an older value last.
 */
const WRITE_IF_NEWER = `
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if cur >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
if ARGV[3] == '1' then redis.call('DEL', KEYS[1])
elseif ARGV[4] ~= '0' then redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[4])
else redis.call('SET', KEYS[1], ARGV[2]) end
return 1`;

/**
 * Redis as the cache's backing store, through ioredis: read for keys the cache never wrote,
 * written after a version commits (at once with write-through, within CACHE_WRITE_BACK_MS with
 * write-back). TTLs become Redis expiries (PXAT).
 */
export class RedisStore {
  readonly #redis: Redis;

  constructor(url: string) {
    // Fail requests fast while Redis is down instead of queueing them without bound.
    this.#redis = new Redis(url, { lazyConnect: false, enableOfflineQueue: true, maxRetriesPerRequest: 2, commandTimeout: REDIS_TIMEOUT_MS });
    this.#redis.on("error", () => {}); // Reported per command; ioredis reconnects by itself.
    this.#redis.defineCommand("dsyncWriteIfNewer", { numberOfKeys: 2, lua: WRITE_IF_NEWER });
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

  /** Writes version `gen` of `key` (deletes it when `v.value` is null or expired at `now`); false: Redis had a newer one. */
  async write(key: string, gen: number, v: StoredValue, now: number): Promise<boolean> {
    const gone = v.value === null || (v.expiresAt > 0 && v.expiresAt <= now);
    const bytes = v.value === null ? Buffer.alloc(0) : Buffer.from(v.value.buffer, v.value.byteOffset, v.value.byteLength);
    try {
      const run = (this.#redis as unknown as { dsyncWriteIfNewer(...args: (string | Buffer | number)[]): Promise<number> }).dsyncWriteIfNewer;
      const r = await run.call(this.#redis, REDIS_KEY_PREFIX + key, REDIS_GEN_PREFIX + key, gen, bytes, gone ? "1" : "0", gone ? "0" : String(v.expiresAt), GEN_TTL_MS);
      return r === 1;
    } catch (err) {
      throw storeError("write", key, err);
    }
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

function storeError(what: string, key: string, cause: unknown): DsyncError {
  return new DsyncError(ErrorCode.CACHE_STORE_ERROR, `backing store ${what} of ${JSON.stringify(key)} failed: ${(cause as Error).message}`, { cause });
}
