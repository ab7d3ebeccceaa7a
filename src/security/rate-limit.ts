/**
 * Token buckets per identity: requests/s and request bytes/s, as its roles set them, each with a
 * burst of one second's worth. Over the limit a request is refused with RATE_LIMITED and a
 * retry-after hint instead of queueing without bound. Buckets are per node: a client spread over
 * n nodes may use up to n times its rate.
 */
import type { RateLimit } from "./roles.ts";

interface Bucket {
  tokens: number;
  at: number;
}

export const IDENTITIES_MAX = 100_000;

export class RateLimiter {
  readonly #requests = new Map<string, Bucket>();
  readonly #bytes = new Map<string, Bucket>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /**
   * Takes one request of `bytes` from `who`'s buckets. Returns 0 when admitted, else the
   * milliseconds until it would be (and takes nothing).
   */
  take(who: string, rate: RateLimit, bytes: number): number {
    const now = this.#now();
    const r = rate.requestsPerSec === null ? null : this.#bucket(this.#requests, who, rate.requestsPerSec, now);
    const b = rate.bytesPerSec === null ? null : this.#bucket(this.#bytes, who, rate.bytesPerSec, now);
    // A request bigger than a whole second's bytes still passes once the bucket is full.
    const need = rate.bytesPerSec === null ? 0 : Math.min(bytes, rate.bytesPerSec);
    const waitR = r === null || r.tokens >= 1 ? 0 : ((1 - r.tokens) / rate.requestsPerSec!) * 1000;
    const waitB = b === null || b.tokens >= need ? 0 : ((need - b.tokens) / rate.bytesPerSec!) * 1000;
    const wait = Math.max(waitR, waitB);
    if (wait > 0) return Math.ceil(wait);
    if (r) r.tokens -= 1;
    if (b) b.tokens -= need;
    return 0;
  }

  #bucket(map: Map<string, Bucket>, who: string, perSec: number, now: number): Bucket {
    let k = map.get(who);
    if (!k) {
      if (map.size >= IDENTITIES_MAX) map.delete(map.keys().next().value!);
      k = { tokens: perSec, at: now };
      map.set(who, k);
    }
    k.tokens = Math.min(perSec, k.tokens + ((now - k.at) / 1000) * perSec);
    k.at = now;
    return k;
  }
}
