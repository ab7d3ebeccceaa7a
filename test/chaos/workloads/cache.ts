/** The cache as a register: get / set / delete / invalidate, half the clients with a near-cache. */
import { CacheClient, type DsyncClient } from "../../../src/client/index.ts";
import { RegisterWorkload, type RegisterDriver } from "./register.ts";

function cacheDriver(c: DsyncClient, i: number): RegisterDriver {
  const cache = new CacheClient(c, { nearCache: i % 2 === 1 });
  return {
    read: (key) => cache.getString(key),
    write: (key, value) => cache.set(key, value),
    delete: (key) => cache.delete(key),
    invalidate: (key) => cache.invalidate(key),
    async close() {},
  };
}

/** The home node of each key: a home's failure is the cache's hardest case. */
async function homesOf(c: DsyncClient, keys: readonly string[]): Promise<{ role: string; node: string }[]> {
  const cache = new CacheClient(c);
  const out: { role: string; node: string }[] = [];
  for (const key of keys) {
    const s = await cache.state(key).catch(() => null);
    if (s?.home) out.push({ role: `home of ${key}`, node: s.home });
  }
  cache.close();
  return out;
}

export function cacheWorkload(clients = 8, keys = 4): RegisterWorkload {
  return new RegisterWorkload({ name: "cache", clients, keys, driver: cacheDriver, targets: homesOf, mix: { write: 0.35, delete: 0.05, invalidate: 0.05 } });
}
