import { test } from "node:test";
import assert from "node:assert/strict";
import { LineStore, lineBytes, type Line } from "../../src/services/cache/index.ts";

function line(key: string, bytes = 1, state: Line["state"] = "S"): Line {
  return { key, state, value: new Uint8Array(bytes), expiresAt: 0, gen: 1, home: "n0", stamp: 1, writeSeq: 0 };
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

test("line store - resize re-charges a line written in place and evicts others", () => {
  const s = new LineStore(10, lineBytes("a", new Uint8Array(10)) * 2 + 10);
  const a = line("a", 10);
  s.put(a);
  s.put(line("b", 10));
  const old = a.value;
  a.value = new Uint8Array(30);
  assert.deepEqual(s.resize(a, old).map((l) => l.key), ["b"]);
  assert.equal(s.bytes, lineBytes("a", a.value));
  assert.deepEqual(s.counts(), { M: 0, E: 0, S: 1 });
  assert.equal(s.delete("a"), a);
  assert.equal(s.bytes, 0);
});
