import { test } from "node:test";
import assert from "node:assert/strict";
import { CacheHolder } from "../../src/services/cache/holder.ts";
import type { ReadGrant } from "../../src/services/cache/home.ts";

const v = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | null): string | null => (b === null ? null : new TextDecoder().decode(b));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A holder whose home answers fetches by hand: each fetch waits for `answer(...)`. */
function harness(leaseMs: number) {
  const fetches: { key: string; resolve: (g: ReadGrant) => void }[] = [];
  const renewals: [string, number][][] = [];
  let renewAnswer: string[] = [];
  const holder = new CacheHolder({
    capacity: 100,
    capacityBytes: 1 << 20,
    evictionPolicy: "lru",
    leaseMs,
    fetch: (key) => new Promise((resolve) => fetches.push({ key, resolve: (grant) => resolve({ grant, home: "n0" }) })),
    renew: async (items) => {
      renewals.push(items);
      return renewAnswer;
    },
    count: () => {},
  });
  const grant = (value: string, gen: number): ReadGrant => ({ value: v(value), expiresAt: 0, gen, leaseMs });
  return { holder, fetches, renewals, grant, setRenewAnswer: (keys: string[]) => (renewAnswer = keys) };
}

// The shape of the first case the fault campaign saw with no fault: an invalidation (a write's)
// reaches the node while its read of the key is in flight. The read may return the old value
// (it began before the write completed), but the node must not keep it as a copy.
test("cache holder - an invalidation while a miss is in flight: the answer is returned, never cached", async () => {
  const h = harness(5000);
  const read = h.holder.get("k");
  await sleep(5);
  h.holder.invalidate(["k"]);
  h.fetches[0]!.resolve(h.grant("old", 1));
  const got = await read;
  assert.equal(text(got.value), "old");
  assert.equal(got.leaseUntil, 0, "no lease: a near-cache client must not keep it either");
  assert.equal(h.holder.lines.peek("k"), undefined, "the node holds no copy");
  // A read that starts after the invalidation does not join the voided miss.
  const again = h.holder.get("k");
  await sleep(5);
  assert.equal(h.fetches.length, 2, "a fresh miss");
  h.fetches[1]!.resolve(h.grant("new", 2));
  assert.equal(text((await again).value), "new");
  assert.equal(h.holder.lines.peek("k")?.gen, 2);
});

test("cache holder - a read that began after a shared miss's lease ended asks again", async () => {
  const h = harness(40);
  const first = h.holder.get("k");
  await sleep(60); // the first miss's lease (40 ms from its send) is over before its answer
  const late = h.holder.get("k"); // joins the miss in flight...
  h.fetches[0]!.resolve(h.grant("old", 1));
  assert.equal(text((await first).value), "old", "the read that asked may use it: it began before any write waited the lease out");
  await sleep(5);
  assert.equal(h.fetches.length, 2, "...but cannot use an answer whose lease ended before it began");
  h.fetches[1]!.resolve(h.grant("new", 2));
  assert.equal(text((await late).value), "new");
});

test("cache holder - copies used lately are renewed before their lease ends; ones the home does not renew expire", async () => {
  const h = harness(200);
  h.holder.start();
  try {
    const reads = [h.holder.get("hot"), h.holder.get("cold")];
    await sleep(5);
    h.fetches[0]!.resolve(h.grant("h", 1));
    h.fetches[1]!.resolve(h.grant("c", 7));
    await Promise.all(reads);
    const first = h.holder.lines.peek("hot")!.leaseUntil;
    h.setRenewAnswer(["hot"]);
    await h.holder.get("hot"); // a hit: a renewal candidate
    await sleep(180);
    const asked = [...new Set(h.renewals.flat().map(([k, gen]) => `${k}@${gen}`))].sort();
    assert.deepEqual(asked, ["cold@7", "hot@1"], "both copies were used lately (read once) and are asked for, at their versions");
    assert.ok(h.holder.lines.peek("hot")!.leaseUntil > first, "its lease was extended");
    await sleep(100);
    assert.equal(h.holder.hit("cold"), undefined, "the copy the home did not renew (a write under way, a newer version) expired");
    assert.ok(h.holder.hit("hot"), "the renewed copy is still served");
  } finally {
    h.holder.stop();
  }
});

test("cache holder - a copy read once is renewed at most once; one read every lease keeps being renewed", async () => {
  // A 1 s lease read every 100 ms: only a stall of half a second would let the hot copy lapse.
  const h = harness(1000);
  h.holder.start();
  try {
    const reads = [h.holder.get("once"), h.holder.get("hot")];
    await sleep(5);
    h.fetches[0]!.resolve(h.grant("o", 1));
    h.fetches[1]!.resolve(h.grant("h", 2));
    await Promise.all(reads);
    h.setRenewAnswer(["once", "hot"]);
    for (let i = 0; i < 30; i++) {
      await sleep(100);
      h.holder.hit("hot");
    }
    const count = (key: string): number => h.renewals.flat().filter(([k]) => k === key).length;
    assert.ok(count("once") <= 1, `the copy read once was renewed ${count("once")} times`);
    assert.ok(count("hot") >= 3, `the copy read every tenth of a lease was renewed only ${count("hot")} times in three leases`);
    assert.ok(h.holder.hit("hot"), "the copy in use is still served locally");
    assert.equal(h.holder.hit("once"), undefined, "the copy read once ran out");
  } finally {
    h.holder.stop();
  }
});
