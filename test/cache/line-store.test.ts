import { test } from "node:test";
import assert from "node:assert/strict";
import { LineStore, lineBytes, type Line } from "../../src/services/cache/machine/index.ts";

function line(key: string, bytes = 1): Line {
  return { key, value: new Uint8Array(bytes), expiresAt: 0, gen: 1, home: "n0", leaseUntil: 1000, usedAt: 0 };
}

test("line store - evicts the least recently used line past the entry capacity; a touch refreshes", () => {
  const s = new LineStore(3, 1 << 20);
  assert.deepEqual(s.put(line("a")), []);
  s.put(line("b"));
  s.put(line("c"));
  assert.ok(s.touch("a")); // order now b, c, a
  assert.deepEqual(s.put(line("d")).map((l) => l.key), ["b"]);
  assert.deepEqual([...s.lines()].map((l) => l.key), ["c", "a", "d"]);
  assert.ok(s.peek("c")); // peek does not refresh
  assert.deepEqual(s.put(line("e")).map((l) => l.key), ["c"]);
  assert.equal(s.size, 3);
});

test("line store - the byte bound evicts as many lines as needed; one oversized line stays alone", () => {
  const per = lineBytes("k0", new Uint8Array(100));
  const s = new LineStore(100, per * 3);
  for (let i = 0; i < 3; i++) s.put(line(`k${i}`, 100));
  assert.equal(s.bytes, per * 3);
  const evicted = s.put(line("big", per * 2));
  assert.deepEqual(evicted.map((l) => l.key), ["k0", "k1", "k2"]);
  assert.equal(s.size, 1);
  assert.deepEqual(s.put(line("huge", per * 10)).map((l) => l.key), ["big"]);
  assert.equal(s.size, 1);
  assert.ok(s.bytes > s.capacityBytes);
});

test("line store - replacing a line re-charges its bytes and evicts others", () => {
  const s = new LineStore(10, lineBytes("a", new Uint8Array(10)) * 2 + 10);
  s.put(line("a", 10));
  s.put(line("b", 10));
  const a = line("a", 30);
  assert.deepEqual(s.put(a).map((l) => l.key), ["b"]);
  assert.equal(s.bytes, lineBytes("a", a.value));
  assert.equal(s.delete("a"), a);
  assert.equal(s.bytes, 0);
});

test("line store - fifo evicts the line that entered first; touches and rewrites keep its place", () => {
  const s = new LineStore(3, 1 << 20, "fifo");
  s.put(line("a"));
  s.put(line("b"));
  s.put(line("c"));
  assert.ok(s.touch("a"));
  assert.deepEqual(s.put(line("a", 2)), []); // a rewrite of a is not a new entry
  assert.deepEqual(s.put(line("d")).map((l) => l.key), ["a"]);
  assert.deepEqual(s.put(line("e")).map((l) => l.key), ["b"]);
  assert.deepEqual([...s.lines()].map((l) => l.key).sort(), ["c", "d", "e"]);
});

test("line store - lfu evicts the least used line, the least recently used among equals, never the line just put", () => {
  const s = new LineStore(3, 1 << 20, "lfu");
  s.put(line("a"));
  s.put(line("b"));
  s.put(line("c"));
  s.touch("a");
  s.touch("a"); // a: 3 uses
  s.touch("c"); // c: 2 uses, b: 1
  assert.deepEqual(s.put(line("d")).map((l) => l.key), ["b"]);
  // d (1 use) is the least used, yet the next newcomer evicts d, not itself.
  assert.deepEqual(s.put(line("e")).map((l) => l.key), ["d"]);
  s.touch("e");
  s.touch("e"); // e: 3 uses, c: 2
  assert.deepEqual(s.put(line("f")).map((l) => l.key), ["c"]);
  // Equal uses: the one used longest ago goes first.
  s.touch("f");
  s.touch("f"); // f: 3 — a, e, f all at 3; a was used longest ago
  assert.deepEqual(s.put(line("g")).map((l) => l.key), ["a"]);
  // A deleted line leaves no trace in the use counts.
  assert.ok(s.delete("e"));
  assert.deepEqual(s.put(line("h")), []);
  assert.equal(s.size, 3);
});

test("line store - lfu with the byte bound evicts several of the least used lines", () => {
  const per = lineBytes("k0", new Uint8Array(100));
  const s = new LineStore(100, per * 3, "lfu");
  for (let i = 0; i < 3; i++) s.put(line(`k${i}`, 100));
  s.touch("k0");
  assert.deepEqual(s.put(line("k3", 100 + per)).map((l) => l.key), ["k1", "k2"]);
  assert.ok(s.peek("k0"));
});

test("line store - an unknown policy is refused", () => {
  assert.throws(() => new LineStore(3, 1 << 20, "random" as "lru"), /policy must be one of lru, lfu, fifo/);
});
