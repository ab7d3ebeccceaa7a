import assert from "node:assert/strict";
import { test } from "node:test";
import { NearHolders } from "../../src/server/cache-near.ts";

// Seen in the fault campaign with no fault at all: a near-cache client read a value 1.8 ms after
// a newer write had completed. The node registered the client's near copy only after the miss's
// await; the write's invalidation passed in between, found no near holder, and the client kept
// serving the old value. A miss now watches its key while it is in flight.

test("cache near - an invalidation that passes while a miss is in flight is reported to it", async () => {
  const near = new NearHolders();
  const w = near.watch("k");
  await near.invalidate(["k"]);
  assert.equal(w.end(), true, "the miss learns its copy may be stale and does not register it");
});

test("cache near - a miss with no invalidation of its key in flight registers as before", async () => {
  const near = new NearHolders();
  const w = near.watch("k");
  await near.invalidate(["other"]);
  assert.equal(w.end(), false);
});

test("cache near - concurrent misses on one key each see the invalidation; watching ends cleanly", async () => {
  const near = new NearHolders();
  const a = near.watch("k");
  const b = near.watch("k");
  await near.invalidate(["k"]);
  const c = near.watch("k"); // started after the invalidation: not affected by it
  assert.deepEqual([a.end(), b.end(), c.end()], [true, true, false]);
  const d = near.watch("k");
  assert.equal(d.end(), false, "a finished watch leaves nothing behind that marks a later one");
});
