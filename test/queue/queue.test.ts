import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeCommand } from "../../src/services/command-codec.ts";
import { backoffDelay } from "../../src/services/queue/machine/backoff.ts";
import type { UnstampedQueueCommand } from "../../src/services/queue/machine/types.ts";
import { Harness, bytes, text } from "./harness.test.ts";

test("queue - first deliveries are FIFO per queue, across batches and consumers", () => {
  const h = new Harness();
  h.enqueue("q", ["a", "b", "c"]);
  h.now += 1;
  h.enqueue("q", ["d", "e"]);
  h.enqueue("other", ["x"]);
  assert.deepEqual(h.take("q", 2, "c1"), ["a", "b"]);
  assert.deepEqual(h.take("q", 2, "c2"), ["c", "d"]);
  assert.deepEqual(h.take("q", 10, "c3"), ["e"]);
  assert.deepEqual(h.take("q"), []);
  assert.deepEqual(h.take("other"), ["x"]);
});

test("queue - ids are monotonic per partition and results carry delivery metadata", () => {
  const h = new Harness();
  const a = h.enqueue("q1", ["a", "b"]);
  const b = h.enqueue("q2", ["c"]);
  assert.ok(a[0]! < a[1]! && a[1]! < b[0]!);
  h.now += 5;
  const [m] = h.consume("q1", 1);
  assert.equal(m!.id, a[0]);
  assert.equal(m!.deliveryCount, 1);
  assert.equal(m!.enqueuedAt, h.now - 5);
  assert.equal(m!.firstDeliveredAt, h.now);
  assert.equal(m!.receipt.startsWith(`${m!.id}:`), true);
});

test("queue - a delayed message becomes visible at now+delayMs, ordered by visibility time then id", () => {
  const h = new Harness();
  h.enqueue("q", [{ p: "late", delayMs: 500 }, { p: "later", delayMs: 1000 }, "now"]);
  assert.deepEqual(h.drain(), [{ kind: "visible", queue: "q", count: 1 }]);
  assert.deepEqual(h.take("q"), ["now"]);
  assert.equal(h.m.nextDeadline(), h.now + 500);
  h.now += 499;
  assert.deepEqual(h.take("q"), []);
  h.now += 1;
  h.enqueue("q", ["fresh"]);
  h.drain();
  assert.deepEqual(h.take("q"), ["late", "fresh"], "late became visible before fresh was enqueued");
  h.now += 500;
  assert.equal(h.m.nextDeadline(), h.now, "the wake-up for 'later' is due");
  assert.equal(h.expire().redelivered, 0);
  assert.deepEqual(h.drain(), [{ kind: "visible", queue: "q", count: 1 }], "expire announces delayed messages");
  assert.deepEqual(h.take("q"), ["later"]);
  assert.equal(h.m.stats("q").depth, 0);
});

test("queue - a message not acked within its visibility timeout is redelivered after its backoff", () => {
  const h = new Harness();
  h.run({ op: "configure", queue: "q", backoff: { baseMs: 100, factor: 2, capMs: 1000, jitter: 0 } });
  const [id] = h.enqueue("q", ["m"]);
  const [first] = h.consume("q", 1, "c1", 1000);
  assert.equal(h.m.nextDeadline(), h.now + 1000);
  h.now += 999;
  assert.equal(h.expire().redelivered, 0);
  h.now += 1;
  assert.deepEqual(h.expire(), { ok: true, kind: "expired", redelivered: 1, deadLettered: 0, more: false });
  assert.equal(h.m.stats("q").depth, 1);
  assert.deepEqual(h.take("q"), [], "backing off 100 ms");
  h.now += 100;
  h.drain();
  h.expire();
  assert.deepEqual(h.drain(), [{ kind: "visible", queue: "q", count: 1 }]);
  const [second] = h.consume("q", 1, "c2", 1000);
  assert.equal(second!.id, id);
  assert.equal(second!.deliveryCount, 2);
  assert.equal(second!.firstDeliveredAt, first!.firstDeliveredAt);
  assert.notEqual(second!.receipt, first!.receipt);
  const s = h.m.stats("q");
  assert.deepEqual(s, { depth: 0, inFlight: 1, delivered: 2, acked: 0, redelivered: 1, deadLettered: 0 });
});

test("queue - backoff grows exponentially to the cap, with a deterministic jitter", () => {
  const b = { baseMs: 100, factor: 2, capMs: 1000, jitter: 0 };
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(b, 7, n)), [100, 200, 400, 800, 1000, 1000]);
  const j = { ...b, jitter: 0.5 };
  for (let n = 1; n < 8; n++) {
    const d = backoffDelay(j, 42, n);
    const full = backoffDelay(b, 42, n);
    assert.ok(d <= full && d >= full / 2, `${d} within [${full / 2}, ${full}]`);
    assert.equal(d, backoffDelay(j, 42, n), "same inputs, same delay");
  }
  const spread = new Set(Array.from({ length: 50 }, (_, id) => backoffDelay(j, id, 3)));
  assert.ok(spread.size > 10, "messages failing together spread out");
});

test("queue - ack removes; a stale receipt after redelivery is refused per receipt", () => {
  const h = new Harness();
  h.run({ op: "configure", queue: "q", backoff: { baseMs: 0, capMs: 0 } });
  h.enqueue("q", ["a", "b"]);
  const [a1, b1] = h.consume("q", 2, "c1", 100);
  h.now += 100;
  h.expire();
  const [a2] = h.consume("q", 1, "c2", 100);
  assert.equal(a2!.id, a1!.id);
  const r = h.ack("q", [a1!.receipt, b1!.receipt, "999:1", "junk"]);
  assert.equal(r.acked, 0, "b1 was redelivered too (it timed out), so its receipt is stale as well");
  assert.deepEqual(r.outcomes.map((o) => (o.ok ? "ok" : o.reason)), ["stale", "stale", "unknown", "malformed"]);
  const r2 = h.ack("q", [a2!.receipt, a2!.receipt]);
  assert.deepEqual(r2.outcomes.map((o) => (o.ok ? "ok" : o.reason)), ["ok", "stale"], "acking an acked delivery again is stale (its delivery ended), as the protocol says");
  assert.equal(h.m.stats("q").acked, 1);
  assert.equal(h.m.stats("q").depth, 1);
  assert.deepEqual(h.take("q"), ["b"]);
  assert.deepEqual(h.ack("q", [a2!.receipt]).outcomes[0], { receipt: a2!.receipt, ok: false, reason: "stale" }, "acked is gone: stale");
});

test("queue - an acked message never reappears", () => {
  const h = new Harness();
  h.enqueue("q", ["a"]);
  const [m] = h.consume("q", 1, "c1", 50);
  h.ack("q", [m!.receipt]);
  h.now += 10_000;
  h.expire();
  h.run({ op: "release-consumer", consumerId: "c1" });
  assert.deepEqual(h.take("q"), []);
  assert.equal(h.m.nextDeadline(), null);
});

test("queue - nack makes the message visible after delayMs, or after the queue's backoff", () => {
  const h = new Harness();
  h.run({ op: "configure", queue: "q", backoff: { baseMs: 300, factor: 3, capMs: 10_000, jitter: 0 } });
  h.enqueue("q", ["a"]);
  let [m] = h.consume("q", 1);
  let r = h.run({ op: "nack", queue: "q", receipt: m!.receipt, delayMs: 0 });
  assert.deepEqual(r, { ok: true, kind: "nacked", queue: "q", id: m!.id, visibleAt: h.now, deadLettered: false });
  [m] = h.consume("q", 1);
  r = h.run({ op: "nack", queue: "q", receipt: m!.receipt });
  assert.equal((r as { visibleAt: number }).visibleAt, h.now + 900, "second delivery: 300 * 3");
  assert.deepEqual(h.run({ op: "nack", queue: "q", receipt: m!.receipt }), {
    ok: false,
    code: "STALE_RECEIPT",
    message: `receipt ${m!.receipt} is stale`,
  });
});

test("queue - after maxDeliveries a message moves to the DLQ with reason and history", () => {
  const h = new Harness();
  h.run({ op: "configure", queue: "jobs", maxDeliveries: 3, backoff: { baseMs: 10, factor: 2, capMs: 100, jitter: 0 } });
  const [id] = h.enqueue("jobs", ["boom"]);
  const delays: number[] = [];
  // 1: nack; 2: timeout; 3: nack → dead.
  let [m] = h.consume("jobs", 1, "w1", 1000);
  let r = h.run({ op: "nack", queue: "jobs", receipt: m!.receipt });
  delays.push((r as { visibleAt: number }).visibleAt - h.now);
  h.now += 10;
  h.consume("jobs", 1, "w2", 1000); // never acked: its visibility timeout runs out
  h.now += 1000;
  h.expire();
  h.now += 20;
  [m] = h.consume("jobs", 1, "w3", 1000);
  assert.equal(m!.deliveryCount, 3);
  r = h.run({ op: "nack", queue: "jobs", receipt: m!.receipt });
  assert.deepEqual(r, { ok: true, kind: "nacked", queue: "jobs", id, visibleAt: null, deadLettered: true });
  assert.deepEqual(delays, [10]);
  assert.deepEqual(h.take("jobs"), []);
  assert.deepEqual(h.m.dlqs(), ["jobs.dlq"]);
  const [dead] = h.m.peekDlq("jobs.dlq", 10);
  assert.equal(dead!.id, id);
  assert.equal(dead!.sourceQueue, "jobs");
  assert.equal(dead!.reason, "max-deliveries");
  assert.equal(dead!.deliveryCount, 3);
  assert.equal(text(dead!.payload), "boom");
  assert.deepEqual(dead!.history.map((d) => [d.consumerId, d.outcome]), [["w1", "nacked"], ["w2", "timeout"], ["w3", "nacked"]]);
  assert.equal(h.m.stats("jobs").deadLettered, 1);
});

test("queue - a timed-out last delivery dead-letters through expire to a configured DLQ", () => {
  const h = new Harness();
  h.run({ op: "configure", queue: "q", maxDeliveries: 1, dlq: "graveyard" });
  h.enqueue("q", ["a", "b"]);
  h.consume("q", 2, "c", 100);
  h.now += 100;
  assert.deepEqual(h.expire(), { ok: true, kind: "expired", redelivered: 0, deadLettered: 2, more: false });
  assert.deepEqual(h.m.peekDlq("graveyard", 1).map((d) => text(d.payload)), ["a"]);
  assert.equal(h.m.peekDlq("graveyard", 10).length, 2);
  assert.equal(h.m.nextDeadline(), null);
});

test("queue - redrive moves DLQ messages back to their source with deliveryCount reset", () => {
  const h = new Harness();
  h.run({ op: "configure", queue: "q", maxDeliveries: 1 });
  h.enqueue("q", ["a", "b", "c"]);
  const first = h.consume("q", 3);
  for (const m of first) h.run({ op: "nack", queue: "q", receipt: m.receipt });
  assert.equal(h.m.peekDlq("q.dlq", 10).length, 3);
  h.drain();
  const r = h.run({ op: "dlq.redrive", queue: "q.dlq", max: 2 });
  assert.deepEqual(r, { ok: true, kind: "redriven", queue: "q.dlq", ids: [first[0]!.id, first[1]!.id] });
  assert.deepEqual(h.drain(), [{ kind: "visible", queue: "q", count: 2 }]);
  const again = h.consume("q", 10);
  assert.deepEqual(again.map((m) => [text(m.payload), m.deliveryCount]), [["a", 1], ["b", 1]]);
  assert.notEqual(again[0]!.receipt, first[0]!.receipt, "receipts are never reused, even after a reset");
  assert.equal(h.ack("q", [first[0]!.receipt]).outcomes[0]!.ok, false);
  assert.equal(h.ack("q", [again[0]!.receipt]).acked, 1);
  assert.equal(h.m.peekDlq("q.dlq", 10).length, 1);
});

test("queue - purge drops visible and delayed messages (in-flight stay ackable); purge dlq empties a DLQ", () => {
  const h = new Harness();
  h.run({ op: "configure", queue: "q", maxDeliveries: 1 });
  h.enqueue("q", ["a", "b", { p: "d", delayMs: 1000 }, "c"]);
  const [a, b] = h.consume("q", 2);
  h.run({ op: "nack", queue: "q", receipt: b!.receipt });
  assert.deepEqual(h.run({ op: "purge", queue: "q" }), { ok: true, kind: "purged", queue: "q", count: 2 });
  assert.equal(h.m.stats("q").depth, 0);
  assert.equal(h.m.nextDeadline(), h.now + 30_000, "only a's visibility timeout is left");
  assert.equal(h.ack("q", [a!.receipt]).acked, 1);
  assert.deepEqual(h.run({ op: "purge", queue: "q.dlq", dlq: true }), { ok: true, kind: "purged", queue: "q.dlq", count: 1 });
  assert.deepEqual(h.m.dlqs(), []);
  h.now += 2000;
  h.expire();
  assert.deepEqual(h.take("q"), []);
});

test("queue - release-consumer makes its in-flight messages visible at once, counted as a delivery", () => {
  const h = new Harness();
  h.enqueue("q", ["a", "b", "c"]);
  h.consume("q", 2, "gone");
  h.consume("q", 1, "stays");
  h.drain();
  assert.deepEqual(h.run({ op: "release-consumer", consumerId: "gone" }), { ok: true, kind: "released", consumerId: "gone", redelivered: 2, deadLettered: 0 });
  assert.deepEqual(h.drain(), [{ kind: "visible", queue: "q", count: 2 }]);
  const again = h.consume("q", 10, "new");
  assert.deepEqual(again.map((m) => [text(m.payload), m.deliveryCount]), [["a", 2], ["b", 2]]);
  assert.equal(h.m.stats("q").inFlight, 3);
  assert.equal(h.m.stats("q").redelivered, 2);
});

test("queue - the same dedupId within the window is enqueued once and returns the original id", () => {
  const h = new Harness();
  h.run({ op: "configure", queue: "q", dedupWindowMs: 1000 });
  const r = h.run({ op: "enqueue", queue: "q", messages: [{ payload: bytes("a"), dedupId: "x" }, { payload: bytes("a2"), dedupId: "x" }, { payload: bytes("b") }] });
  assert.ok(r.ok && r.kind === "enqueued");
  assert.deepEqual(r.duplicates, [false, true, false]);
  assert.equal(r.ids[0], r.ids[1]);
  h.now += 999;
  const r2 = h.run({ op: "enqueue", queue: "q", messages: [{ payload: bytes("a3"), dedupId: "x" }] });
  assert.ok(r2.ok && r2.kind === "enqueued");
  assert.deepEqual([r2.ids, r2.duplicates], [[r.ids[0]], [true]]);
  assert.deepEqual(h.take("q"), ["a", "b"]);
  h.now += 1;
  const r3 = h.run({ op: "enqueue", queue: "q", messages: [{ payload: bytes("a4"), dedupId: "x" }] });
  assert.ok(r3.ok && r3.kind === "enqueued");
  assert.equal(r3.duplicates[0], false, "the window has passed");
  assert.ok(r3.ids[0]! > r.ids[2]!);
});

test("queue - invalid input gets INVALID_ARGUMENT, never a throw", () => {
  const h = new Harness();
  const bad: unknown[] = [
    null,
    [1],
    { op: "enqueue", queue: "q", messages: [{ payload: bytes("a") }] }, // no now
    { op: "nope", now: 1 },
    { op: "enqueue", queue: "", messages: [{ payload: bytes("a") }], now: 1 },
    { op: "enqueue", queue: "x".repeat(257), messages: [{ payload: bytes("a") }], now: 1 },
    { op: "enqueue", queue: "q", messages: [], now: 1 },
    { op: "enqueue", queue: "q", messages: [{ payload: "str" }], now: 1 },
    { op: "enqueue", queue: "q", messages: [{ payload: new Uint8Array(1024 * 1024 + 1) }], now: 1 },
    { op: "enqueue", queue: "q", messages: [{ payload: bytes("a"), delayMs: -1 }], now: 1 },
    { op: "consume", queue: "q", consumerId: "c", max: 1001, visibilityMs: 10, now: 1 },
    { op: "consume", queue: "q", consumerId: "c", max: 0, now: 1 },
    { op: "consume", queue: "q", consumerId: "c", max: 1, visibilityMs: 0, now: 1 },
    { op: "ack", queue: "q", receipts: "r", now: 1 },
    { op: "configure", queue: "q", maxDeliveries: 0, now: 1 },
    { op: "configure", queue: "q", backoff: { factor: 0.5 }, now: 1 },
    { op: "configure", queue: "q", dlq: "q", now: 1 },
    { op: "dlq.redrive", queue: "q.dlq", max: 0, now: 1 },
    { op: "purge", queue: "q", dlq: "yes", now: 1 },
  ];
  for (const c of bad) {
    const r = h.m.apply({ index: ++h.index, term: 1, data: encodeCommand(c as object) });
    assert.equal(r?.ok, false, JSON.stringify(c)?.slice(0, 100));
    assert.equal((r as { code: string }).code, "INVALID_ARGUMENT");
  }
  const garbage = h.m.apply({ index: ++h.index, term: 1, data: new Uint8Array([0xc1]) });
  assert.equal((garbage as { code: string }).code, "INVALID_ARGUMENT");
  assert.deepEqual(h.m.queues(), [], "nothing was created");
});

test("queue - the partition message cap refuses a whole batch with QUEUE_FULL", () => {
  const h = new Harness({ maxMessages: 3 });
  h.enqueue("q", ["a", "b"]);
  const r = h.run({ op: "enqueue", queue: "q", messages: [{ payload: bytes("c") }, { payload: bytes("d") }] });
  assert.equal(r.ok === false && r.code, "QUEUE_FULL");
  assert.equal(h.m.stats("q").depth, 2);
  h.enqueue("q", ["c"]);
  const [m] = h.consume("q", 1);
  h.ack("q", [m!.receipt]);
  h.enqueue("q2", ["d"]);
});

test("queue - time never runs backwards: a lagging leader clock keeps FIFO", () => {
  const h = new Harness();
  h.enqueue("q", ["a"]);
  h.now -= 5000; // new leader, slower clock
  h.enqueue("q", ["b"]);
  assert.equal(h.m.clock, h.now + 5000);
  assert.deepEqual(h.take("q"), ["a", "b"]);
});

test("queue - expire settles at most expireBatchMax timers and reports more", () => {
  const h = new Harness({ expireBatchMax: 2 });
  h.enqueue("q", ["a", "b", "c"]);
  h.consume("q", 3, "c", 10);
  h.now += 10;
  assert.deepEqual(h.expire(), { ok: true, kind: "expired", redelivered: 2, deadLettered: 0, more: true });
  assert.deepEqual(h.expire(), { ok: true, kind: "expired", redelivered: 1, deadLettered: 0, more: false });
});

test("queue - a batch entry gives each command its own result, the same as applying them one by one", () => {
  const cmds = [
    { op: "enqueue", queue: "q", messages: [{ payload: bytes("a") }, { payload: bytes("b") }] },
    { op: "enqueue", queue: "q", messages: [{ payload: bytes("c"), dedupId: "d1" }] },
    { op: "enqueue", queue: "q", messages: [{ payload: bytes("c2"), dedupId: "d1" }] },
    { op: "consume", queue: "q", consumerId: "c1", max: 2 },
    { op: "ack", queue: "q", receipts: ["1:1", "9:9"] },
    { op: "nack", queue: "nope", receipt: "1:1" },
    { op: "consume", queue: "q", consumerId: "c2", max: 5 },
  ] satisfies UnstampedQueueCommand[];
  const one = new Harness();
  const expected = cmds.map((c) => one.run(c));
  const batched = new Harness();
  const r = batched.run({ op: "batch", cmds });
  assert.equal(r.ok, true);
  assert.deepEqual((r as Extract<typeof r, { kind: "batch" }>).results, expected);
  assert.deepEqual(batched.m.stats("q"), one.m.stats("q"));
  assert.deepEqual(batched.drain().map((e) => e.queue), ["q"], "one visible event per queue per entry");
});

test("queue - a malformed batch, or a batch inside a batch, is refused without a throw", () => {
  const h = new Harness();
  assert.equal(h.run({ op: "batch", cmds: [] }).ok, false);
  const r = h.run({ op: "batch", cmds: [{ op: "batch", cmds: [] } as never, { op: "enqueue", queue: "q", messages: [{ payload: bytes("x") }] }] });
  assert.equal(r.ok, true);
  const results = (r as Extract<typeof r, { kind: "batch" }>).results;
  assert.equal(results[0]!.ok, false);
  assert.equal(results[1]!.ok, true);
});
