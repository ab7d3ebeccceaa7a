import { test } from "node:test";
import assert from "node:assert/strict";
import { HashRing } from "../../src/services/ring/hash-ring.ts";

const keys = Array.from({ length: 20_000 }, (_, i) => `queue-${i}`);

test("ring - keys spread evenly over members with 150 virtual nodes", () => {
  const members = Array.from({ length: 16 }, (_, i) => `p${i}`);
  const ring = new HashRing(members);
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(ring.lookup(k), (counts.get(ring.lookup(k)) ?? 0) + 1);
  const mean = keys.length / members.length;
  for (const m of members) {
    const share = (counts.get(m) ?? 0) / mean;
    assert.ok(share > 0.75 && share < 1.25, `${m} owns ${(share * 100).toFixed(0)}% of a fair share`);
  }
});

test("ring - adding a member moves only the keys it takes over (about 1/N)", (t) => {
  const ring = new HashRing(["n1", "n2", "n3", "n4"]);
  const before = new Map(keys.map((k) => [k, ring.lookup(k)]));
  ring.add("n5");
  let moved = 0;
  for (const k of keys) {
    const now = ring.lookup(k);
    if (now !== before.get(k)) {
      moved++;
      assert.equal(now, "n5", `${k} moved between old members`);
    }
  }
  const share = moved / keys.length;
  t.diagnostic(`adding a 5th member moved ${moved} of ${keys.length} keys (${(share * 100).toFixed(1)}%; ideal 20%), all to the new member`);
  assert.ok(share > 0.12 && share < 0.28, `${(share * 100).toFixed(1)}% of keys moved (ideal 20%)`);
  ring.remove("n5");
  for (const k of keys.slice(0, 2000)) assert.equal(ring.lookup(k), before.get(k), "removing it restores the old owners");
});

test("ring - the same members give the same ring in any order; lookupN gives distinct successors", () => {
  const a = new HashRing(["x", "y", "z"]);
  const b = new HashRing(["z", "x"]);
  b.add("y");
  for (const k of keys.slice(0, 1000)) assert.deepEqual(a.lookupN(k, 3), b.lookupN(k, 3));
  const three = a.lookupN("orders", 3);
  assert.equal(new Set(three).size, 3);
  assert.deepEqual(a.lookupN("orders", 5).sort(), ["x", "y", "z"], "never more than the members");
  assert.deepEqual(new HashRing([]).lookupN("k", 1), []);
  assert.throws(() => new HashRing([]).lookup("k"), /no members/);
  assert.throws(() => new HashRing(["a"], 0), RangeError);
});

test("ring - non-ASCII keys hash by their UTF-8 bytes", () => {
  const ring = new HashRing(["a", "b", "c"]);
  assert.equal(ring.lookup("очередь"), ring.lookup("очередь"));
  assert.notEqual(ring.lookupN("очередь", 1)[0], undefined);
});
