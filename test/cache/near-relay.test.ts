import assert from "node:assert/strict";
import { test } from "node:test";
import { NearHolders } from "../../src/services/cache/near-relay.ts";
import type { FramedSocket } from "../../src/transport/framed-socket.ts";

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

/** A client connection that records pushes and acks only when told to. */
function fakeConn(): { conn: FramedSocket; pushes: { seq: number; keys: string[] }[] } {
  const pushes: { seq: number; keys: string[] }[] = [];
  const conn = { isClosed: false, send: (env: { body: { seq: number; keys: string[] } }) => pushes.push(env.body), destroy: () => {} } as unknown as FramedSocket;
  return { conn, pushes };
}

test("cache near - a second invalidation of a key waits for the clients the first one is still waiting for", async () => {
  const near = new NearHolders();
  const { conn, pushes } = fakeConn();
  near.add("k", conn, () => {});
  let firstDone = false;
  void near.invalidate(["k"]).then(() => (firstDone = true));
  // A second write's invalidation (its home gave up waiting on this node): the holder is already
  // forgotten, but its client has not acked yet and may still serve the copy.
  let secondDone = false;
  const second = near.invalidate(["k"]).then(() => (secondDone = true));
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.equal(pushes.length, 1, "the client was asked once");
  assert.equal(secondDone, false, "the second invalidation does not finish before the client acked");
  near.ack(pushes[0]!.seq, conn);
  await second;
  assert.equal(firstDone, true);
  assert.equal(near.keys, 0, "nothing is held any more");
});
