import { test } from "node:test";
import assert from "node:assert/strict";
import { HomeTable, KeyQueue, compareTakeovers, type Takeover } from "../../src/services/cache/index.ts";

const ALL = ["n0", "n1", "n2"];
const keys = Array.from({ length: 300 }, (_, i) => `key-${i}`);

function tableWith(...ts: Takeover[]): HomeTable {
  const t = new HomeTable();
  for (const x of ts) t.install(x);
  return t;
}

test("home table - with every member's takeover over one view, each key has the home the ring gives it", () => {
  const t = tableWith(...ALL.map((taker, i) => ({ stamp: i + 1, taker, view: ALL })));
  const ring = t.ringOf(ALL);
  for (const k of keys) assert.equal(t.homeOf(k)?.node, ring.lookup(k));
  const homes = new Set(keys.map((k) => t.homeOf(k)!.node));
  assert.deepEqual([...homes].sort(), ALL);
});

test("home table - after a member fails, survivors' takeovers claim its keys and keep their own", () => {
  const before = tableWith(...ALL.map((taker, i) => ({ stamp: i + 1, taker, view: ALL })));
  const after = tableWith(...ALL.map((taker, i) => ({ stamp: i + 1, taker, view: ALL })), { stamp: 4, taker: "n0", view: ["n0", "n1"] }, { stamp: 5, taker: "n1", view: ["n0", "n1"] });
  for (const k of keys) {
    const was = before.homeOf(k)!.node;
    const now = after.homeOf(k)!.node;
    assert.notEqual(now, "n2");
    if (was !== "n2") assert.equal(now, was, `${k} stays on its surviving home`);
  }
  // The failed member comes back with a higher takeover and gets exactly its keys back.
  after.install({ stamp: 6, taker: "n2", view: ALL });
  for (const k of keys) assert.equal(after.homeOf(k)!.node, before.homeOf(k)!.node);
});

test("home table - only takeovers above every one seen are accepted; order is stamp then taker", () => {
  const t = new HomeTable();
  assert.ok(t.canAccept({ stamp: 1, taker: "n1" }));
  t.install({ stamp: 3, taker: "n1", view: ALL });
  assert.equal(t.canAccept({ stamp: 3, taker: "n0" }), false);
  assert.equal(t.canAccept({ stamp: 3, taker: "n1" }), false);
  assert.ok(t.canAccept({ stamp: 3, taker: "n2" }));
  t.see({ stamp: 9, taker: "" });
  assert.equal(t.clock, 9);
  assert.equal(t.canAccept({ stamp: 4, taker: "n2" }), false);
  assert.ok(compareTakeovers({ stamp: 2, taker: "a" }, { stamp: 1, taker: "z" }) > 0);
});

test("home table - a taker that starts a new takeover stops being home until it is installed again", () => {
  const t = tableWith({ stamp: 1, taker: "n0", view: ["n0"] });
  assert.equal(t.homeOf("x")?.node, "n0");
  t.remove("n0");
  assert.equal(t.homeOf("x"), null);
  t.install({ stamp: 2, taker: "n0", view: ["n0"] });
  assert.deepEqual(t.homeOf("x"), { node: "n0", stamp: 2 });
});

test("key queue - one task at a time per key, in arrival order; keys run independently", async () => {
  const q = new KeyQueue();
  const log: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const a1 = q.run("a", async () => {
    log.push("a1 start");
    await gate;
    log.push("a1 end");
  });
  const a2 = q.run("a", async () => {
    log.push("a2");
    throw new Error("boom");
  });
  const a3 = q.run("a", async () => log.push("a3"));
  await q.run("b", async () => log.push("b1"));
  assert.deepEqual(log, ["a1 start", "b1"]);
  let settled = false;
  const waiting = q.settled((k) => k === "a").then(() => (settled = true));
  release();
  await a1;
  await assert.rejects(a2, /boom/);
  await a3;
  await waiting;
  assert.ok(settled);
  assert.deepEqual(log, ["a1 start", "b1", "a1 end", "a2", "a3"]);
  await new Promise((r) => setImmediate(r));
  assert.equal(q.size, 0);
});
