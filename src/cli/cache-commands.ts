import { CacheClient } from "../client/cache.ts";
import { intArg, print, program, withClient, type GlobalOptions } from "./common.ts";
import { table } from "./output.ts";

const utf8 = new TextDecoder("utf-8", { fatal: false });

/** Runs `fn` with a cache client on the first node reached (any node serves the cache). */
function withCache(fn: (cache: CacheClient, g: GlobalOptions) => Promise<void>): Promise<void> {
  return withClient((c, g) => fn(new CacheClient(c), g), { preferLeader: false });
}

const cache = program.command("cache").description("the coherent distributed cache (any node serves it; a write is seen by reads on every node)");

cache
  .command("get <key>")
  .description("read a value (exit status 1 when the key is absent)")
  .action(async (key: string) => {
    await withCache(async (c, g) => {
      const v = await c.get(key);
      print(g, { key, found: v !== null, value: v === null ? null : utf8.decode(v) }, v === null ? `(absent)` : utf8.decode(v));
      if (v === null) process.exitCode = 1;
    });
  });

cache
  .command("set <key> <value>")
  .description("write a value (as UTF-8 bytes); every other cached copy is invalidated before it returns")
  .option("--ttl <ms>", "expire the value this many milliseconds after the write")
  .action(async (key: string, value: string, o: { ttl?: string }) => {
    const ttlMs = o.ttl === undefined ? undefined : intArg("--ttl", o.ttl, 1);
    await withCache(async (c, g) => {
      await c.set(key, value, ttlMs === undefined ? {} : { ttlMs });
      print(g, { key, ok: true }, `OK`);
    });
  });

cache
  .command("del <key>")
  .alias("delete")
  .description("delete a key")
  .action(async (key: string) => {
    await withCache(async (c, g) => {
      await c.delete(key);
      print(g, { key, ok: true }, `deleted ${key}`);
    });
  });

cache
  .command("invalidate <key>")
  .description("drop every cached copy of a key cluster-wide (the value stays; the next read fetches it again)")
  .action(async (key: string) => {
    await withCache(async (c, g) => {
      await c.invalidate(key);
      print(g, { key, ok: true }, `invalidated ${key} on every node`);
    });
  });

cache
  .command("state <key>")
  .description("which nodes hold a leased copy of the key, and the copies its home granted")
  .action(async (key: string) => {
    await withCache(async (c, g) => {
      const s = await c.state(key);
      const rows = s.copies.map((x) => [x.node, x.state, x.node === s.home ? "home" : "", x.state === "S" ? `${x.leaseMs} ms` : "-", x.near > 0 ? String(x.near) : "-"]);
      for (const u of s.unreachable) rows.push([u, "?", "unreachable", "-", "-"]);
      const granted = s.copies.find((x) => x.node === s.home)?.holders;
      const grants = granted?.map((h) => `${h.node} (${h.leaseMs} ms left)`).join(", ") || "(none)";
      print(g, s, `${table(["NODE", "STATE", "ROLE", "LEASE LEFT", "NEAR CLIENTS"], rows)}\npartition ${s.partition ?? "?"}, home ${s.home ?? "(none right now)"}; copies it granted: ${grants}`);
    });
  });

cache
  .command("stats")
  .description("the connected node's cache counters")
  .action(async () => {
    await withCache(async (c, g) => {
      const s = await c.stats();
      const text = [
        `node ${s.nodeId}: ${s.hits} hits, ${s.misses} misses (hit ratio ${(s.hitRatio * 100).toFixed(1)}%)`,
        `copies: ${s.lines} (${s.bytes} bytes of ${s.capacityBytes}, capacity ${s.capacity} entries), evictions ${s.evictions}`,
        `invalidations sent ${s.invalidationsSent} / received ${s.invalidationsReceived}; near-cache clients ${s.nearClients} holding ${s.nearKeys} keys`,
        `home of partitions [${s.homeOf.join(", ") || "none"}] with ${s.holderEntries} copies granted`,
        s.store === "redis" ? `store: the partition logs and Redis (${s.writePolicy}): ${s.storeWrites} Redis writes, ${s.dirty} versions not in Redis yet` : `store: the partition logs (embedded; no Redis)`,
      ].join("\n");
      print(g, s, text);
    });
  });
