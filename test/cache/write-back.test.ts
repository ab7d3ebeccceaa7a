import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeCommand } from "../../src/services/command-codec.ts";
import type { CacheCommand } from "../../src/services/cache/machine/index.ts";
import { WriteBack } from "../../src/services/cache/write-back.ts";

const v = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A log whose commits the test releases one by one. */
function fakeLog() {
  const proposed: { cmd: CacheCommand; commit: () => void; fail: () => void }[] = [];
  const propose = (data: Uint8Array): Promise<unknown> =>
    new Promise((resolve, reject) => proposed.push({ cmd: decodeCommand(data) as CacheCommand, commit: () => resolve(null), fail: () => reject(new Error("not applied")) }));
  return { proposed, propose };
}

function writeBack(propose: (d: Uint8Array) => Promise<unknown>, windowMs = 40): WriteBack {
  return new WriteBack({ owner: { node: "n1", term: 7 }, windowMs, storeDirty: false, cleanAfterMs: 60_000, propose, onCommitted: () => {} });
}

/** Whether `p` settled within `ms`. */
async function settled(p: Promise<unknown>, ms = 5): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await sleep(ms);
  return done;
}

test("write-back - the first write is acknowledged only once a flush records this home in the log; later ones at once", async () => {
  const log = fakeLog();
  const wb = writeBack(log.propose);
  const first = wb.add("a", v("1"), 0, "w1");
  assert.equal(await settled(first), false, "not acknowledged before the log names this home");
  assert.equal(log.proposed.length, 1);
  const f = log.proposed[0]!.cmd;
  assert.ok(f.op === "cache.flush" && !f.clean && f.by.node === "n1" && f.by.term === 7);
  assert.deepEqual(f.op === "cache.flush" && f.sets.map((s) => s[0]), ["a"]);
  log.proposed[0]!.commit();
  await first;
  // Marked: the next write is acknowledged from memory, readable here, and held for the next flush.
  await wb.add("b", v("2"), 0, "w2");
  assert.deepEqual(wb.lookup("b")?.value, v("2"));
  assert.ok(wb.holds("w2"));
  assert.deepEqual(wb.record().sets.map((s) => s[0]), ["b"]);
  assert.deepEqual(wb.record().wids, ["w2"]);
});

test("write-back - while the log takes no flush, writes stop being acknowledged once the oldest unflushed one is older than the window", async () => {
  const log = fakeLog();
  const wb = writeBack(log.propose, 40);
  const first = wb.add("a", v("1"), 0, "w1");
  log.proposed[0]!.commit();
  await first;
  await wb.add("a", v("2"), 0, "w2"); // acknowledged: the flush carrying it is young
  await sleep(60); // that flush does not commit: the window has passed
  const late = wb.add("c", v("3"), 0, "w3");
  assert.equal(await settled(late, 20), false, "a write waits while an older acknowledged one is not in the log past the window");
  // The flush commits: the waiting write goes through (its own flush is young).
  while (log.proposed.length < 2) await sleep(5);
  log.proposed[1]!.commit();
  await late;
});

test("write-back - freeze: later writes are refused (retryable), and the record holds every write the log may lack, newest value per key", async () => {
  const log = fakeLog();
  const wb = writeBack(log.propose);
  const first = wb.add("a", v("1"), 0, "w1");
  log.proposed[0]!.commit();
  await first;
  await wb.add("a", v("2"), 0, "w2");
  await wb.add("b", v("x"), 0, "w3");
  await wb.add("a", v("3"), 0, "w4");
  const rec = wb.freeze();
  assert.deepEqual(
    rec.sets.map(([k, val]) => [k, new TextDecoder().decode(val!)]),
    [
      ["a", "3"],
      ["b", "x"],
    ],
  );
  assert.deepEqual([...rec.wids].sort(), ["w2", "w3", "w4"]);
  await assert.rejects(wb.add("c", v("1"), 0, "w5"), (err: Error & { code?: number; retryable?: boolean }) => err.retryable === true);
});

test("write-back - drain writes everything held to the log in one flush that records this home clean", async () => {
  const log = fakeLog();
  const wb = writeBack(log.propose);
  const first = wb.add("a", v("1"), 0, "w1");
  log.proposed[0]!.commit();
  await first;
  await wb.add("b", v("2"), 0, "w2");
  const drained = wb.drain(1000);
  while (log.proposed.length < 2) await sleep(2);
  const last = log.proposed.at(-1)!.cmd;
  assert.ok(last.op === "cache.flush" && last.clean, "a clean flush");
  assert.deepEqual(last.op === "cache.flush" && last.sets.map((s) => s[0]), ["b"]);
  assert.deepEqual(last.op === "cache.flush" && last.wids, ["w2"]);
  log.proposed.at(-1)!.commit();
  await drained;
  await assert.rejects(wb.add("c", v("1"), 0, "w5"));
});
