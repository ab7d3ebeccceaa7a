import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { CacheMachine, encodeCacheCommand, WIDS_MAX, type CacheCommand } from "../../src/services/cache/machine/index.ts";
import { assertPure, tsFiles } from "../helpers/purity.ts";

const v = (s: string): Uint8Array => new TextEncoder().encode(s);

function applyAll(m: CacheMachine, cmds: readonly CacheCommand[], from = 1): unknown[] {
  return cmds.map((c, i) => m.apply({ index: from + i, term: 1, data: encodeCacheCommand(c) }));
}

test("cache machine - a set's gen is its log index; deletes and stored versions; dirty counts", () => {
  const m = new CacheMachine();
  const r = applyAll(m, [
    { op: "cache.set", key: "a", value: v("1"), expiresAt: 0, dirty: true },
    { op: "cache.set", key: "a", value: v("2"), expiresAt: 0, dirty: true },
    { op: "cache.set", key: "b", value: v("x"), expiresAt: 0, dirty: false },
  ]);
  assert.deepEqual(r, [{ gen: 1 }, { gen: 2 }, { gen: 3 }]);
  assert.equal(m.get("a")?.gen, 2);
  assert.equal(m.dirtyCount, 1);
  // Redis confirming an older version leaves the newer one dirty.
  applyAll(m, [{ op: "cache.stored", items: [["a", 1]] }], 4);
  assert.equal(m.get("a")?.dirty, true);
  applyAll(m, [{ op: "cache.stored", items: [["a", 2]] }], 5);
  assert.equal(m.get("a")?.dirty, false);
  assert.equal(m.dirtyCount, 0);
  // A dirty delete keeps a tombstone until Redis has it; a clean one leaves nothing.
  applyAll(m, [{ op: "cache.set", key: "a", value: null, expiresAt: 0, dirty: true }], 6);
  assert.deepEqual(m.get("a"), { value: null, expiresAt: 0, gen: 6, dirty: true });
  applyAll(m, [{ op: "cache.stored", items: [["a", 6]] }], 7);
  assert.equal(m.get("a"), undefined);
  applyAll(m, [{ op: "cache.set", key: "b", value: null, expiresAt: 0, dirty: false }], 8);
  assert.equal(m.get("b"), undefined);
  assert.equal(m.size, 0);
});

// Seen in the fault campaign: a set whose reply was lost was resent by the client and applied
// again after a newer write, putting the older value back (a stale read, linearizability broken).
test("cache machine - a resent write (same wid) changes nothing, even after a newer write; wids survive a snapshot", () => {
  const m = new CacheMachine();
  const r = applyAll(m, [
    { op: "cache.set", key: "k", value: v("first"), expiresAt: 0, dirty: false, wid: "a-1" },
    { op: "cache.set", key: "k", value: v("second"), expiresAt: 0, dirty: false, wid: "b-1" },
    { op: "cache.set", key: "k", value: v("first"), expiresAt: 0, dirty: false, wid: "a-1" },
  ]);
  assert.deepEqual(r, [{ gen: 1 }, { gen: 2 }, { gen: 1, duplicate: true }]);
  assert.equal(new TextDecoder().decode(m.get("k")!.value!), "second");
  const copy = new CacheMachine();
  copy.restore(m.snapshot());
  assert.deepEqual(applyAll(copy, [{ op: "cache.set", key: "k", value: v("x"), expiresAt: 0, dirty: false, wid: "b-1" }], 4), [{ gen: 2, duplicate: true }]);
});

test("cache machine - past WIDS_MAX the oldest wid is forgotten first, in the same order after a snapshot", () => {
  const m = new CacheMachine();
  const flush = (wids: string[], index: number): void => {
    m.apply({ index, term: 1, data: encodeCacheCommand({ op: "cache.flush", by: { node: "n1", term: 1 }, sets: [], wids, clean: false, dirty: false }) });
  };
  flush(Array.from({ length: WIDS_MAX }, (_, i) => `w${i}`), 1);
  flush(["w0"], 2); // Noted again: keeps its place, as the first to go.
  flush(["x0", "x1"], 3);
  assert.equal(m.hasWid("w0"), false);
  assert.equal(m.hasWid("w1"), false);
  assert.equal(m.hasWid("w2"), true);
  assert.equal(m.hasWid("x1"), true);
  const copy = new CacheMachine();
  copy.restore(m.snapshot());
  for (const c of [m, copy]) {
    c.apply({ index: 4, term: 1, data: encodeCacheCommand({ op: "cache.flush", by: { node: "n1", term: 1 }, sets: [], wids: ["y0"], clean: false, dirty: false }) });
    assert.deepEqual([c.hasWid("w2"), c.hasWid("w3"), c.hasWid("y0")], [false, true, true]);
  }
  assert.deepEqual(copy.snapshot(), m.snapshot());
});

test("cache machine - purge drops clean values expired by the leader's stamp, never dirty ones", () => {
  const m = new CacheMachine();
  applyAll(m, [
    { op: "cache.set", key: "old", value: v("1"), expiresAt: 1000, dirty: false },
    { op: "cache.set", key: "dirty", value: v("2"), expiresAt: 1000, dirty: true },
    { op: "cache.set", key: "later", value: v("3"), expiresAt: 5000, dirty: false },
    { op: "cache.set", key: "forever", value: v("4"), expiresAt: 0, dirty: false },
  ]);
  assert.equal(m.hasExpired(999), false);
  assert.equal(m.hasExpired(2000), true);
  applyAll(m, [{ op: "cache.purge", now: 2000 }], 5);
  assert.deepEqual([...["old", "dirty", "later", "forever"]].map((k) => m.get(k) !== undefined), [false, true, true, true]);
});

test("cache machine - replicas that apply the same entries agree, and a snapshot restores the same state", () => {
  const cmds: CacheCommand[] = [];
  for (let i = 0; i < 200; i++) {
    const key = `k${i % 17}`;
    if (i % 11 === 0) cmds.push({ op: "cache.stored", items: [[key, i - 3]] });
    else if (i % 7 === 0) cmds.push({ op: "cache.set", key, value: null, expiresAt: 0, dirty: i % 2 === 0 });
    else if (i % 29 === 0) cmds.push({ op: "cache.purge", now: 50 + i });
    else cmds.push({ op: "cache.set", key, value: v(`v${i}`), expiresAt: i % 3 === 0 ? 100 + i : 0, dirty: i % 2 === 0 });
  }
  const a = new CacheMachine();
  const b = new CacheMachine();
  assert.deepEqual(applyAll(a, cmds), applyAll(b, cmds));
  assert.deepEqual(Buffer.from(a.snapshot()), Buffer.from(b.snapshot()));
  const c = new CacheMachine();
  c.restore(a.snapshot());
  assert.deepEqual(Buffer.from(c.snapshot()), Buffer.from(a.snapshot()));
  assert.equal(c.dirtyCount, a.dirtyCount);
  assert.deepEqual([...c.dirtyEntries()], [...a.dirtyEntries()]);
});

test("cache - purity: src/services/cache/machine reads no clock, no randomness, does no I/O and no async", () => {
  const files = tsFiles(join(import.meta.dirname, "../../src/services/cache/machine"));
  assert.ok(files.length >= 3);
  assertPure(files, [[/\bperformance\b|\bcrypto\b/, "performance/crypto"]]);
});

test("cache machine - write-back: a flush applies its writes and names its home until a clean flush of that home; lost terms are counted; both survive a snapshot", () => {
  const m = new CacheMachine();
  const n1 = { node: "n1", term: 3 };
  applyAll(m, [
    { op: "cache.flush", by: n1, sets: [["a", v("1"), 0], ["b", null, 0]], wids: ["w1", "w2"], clean: false, dirty: false },
  ]);
  assert.deepEqual(m.dirtyBy, n1);
  assert.equal(m.get("a")?.gen, 1);
  assert.equal(m.get("b"), undefined);
  assert.ok(m.hasWid("w1") && m.hasWid("w2"));
  // A clean flush of another home (or term) does not clear n1's record.
  applyAll(m, [{ op: "cache.flush", by: { node: "n1", term: 2 }, sets: [], wids: [], clean: true, dirty: false }], 2);
  assert.deepEqual(m.dirtyBy, n1);
  const copy = new CacheMachine();
  copy.restore(m.snapshot());
  assert.deepEqual(copy.dirtyBy, n1);
  assert.ok(copy.hasWid("w2"));
  // The next home hands n1's writes on: applied, and n1 is clean.
  applyAll(m, [{ op: "cache.flush", by: n1, sets: [["a", v("2"), 0]], wids: ["w3"], clean: true, dirty: true }], 3);
  assert.equal(m.dirtyBy, null);
  assert.deepEqual({ ...m.get("a"), value: Buffer.from(m.get("a")!.value!).toString() }, { value: "2", expiresAt: 0, gen: 3, dirty: true });
  // Redis confirmations ride on a later flush like cache.stored.
  applyAll(m, [{ op: "cache.flush", by: { node: "n1", term: 5 }, sets: [], wids: [], clean: false, dirty: true, stored: [["a", 3]] }], 4);
  assert.equal(m.get("a")?.dirty, false);
  applyAll(m, [{ op: "cache.flush", by: { node: "n1", term: 5 }, sets: [], wids: [], clean: true, dirty: true }], 5);
  // A lost term: counted once, and only while it is the recorded one.
  const n2 = { node: "n2", term: 4 };
  applyAll(m, [{ op: "cache.flush", by: n2, sets: [], wids: [], clean: false, dirty: false }, { op: "cache.lost", by: n2 }, { op: "cache.lost", by: n2 }], 6);
  assert.equal(m.dirtyBy, null);
  assert.equal(m.lostTerms, 1);
  copy.restore(m.snapshot());
  assert.equal(copy.lostTerms, 1);
  assert.equal(copy.dirtyBy, null);
});
