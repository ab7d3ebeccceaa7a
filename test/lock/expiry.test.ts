import { test } from "node:test";
import assert from "node:assert/strict";
import { Harness, assertRefused } from "./harness.test.ts";

test("lock - a wait times out through expire with refused/TIMEOUT", () => {
  const h = new Harness();
  const [a, b] = [h.open("a", 60_000), h.open("b", 60_000)];
  h.grant(a, "r");
  const w = h.queue(b, "r", "exclusive", { waitMs: 500 });
  assert.equal(h.m.resource("r")!.waiters[0]!.deadline, h.now + 500);
  assert.equal(h.m.nextDeadline(), h.now + 500);
  h.drain();
  h.now += 499;
  h.expire();
  assert.deepEqual(h.waiters("r"), [b], "not due yet");
  h.now += 1;
  assert.deepEqual(h.expire(), { ok: true, kind: "expired", sessions: [] });
  assert.deepEqual(h.waiters("r"), []);
  assert.deepEqual(h.drain(), [
    { kind: "refused", sessionId: b, waitId: w, resource: "r", code: "LOCK_WAIT_TIMEOUT", message: "wait for r timed out" },
  ]);
});

test("lock - waitMs -1 waits forever (no deadline)", () => {
  const h = new Harness();
  const [a, b] = [h.open("a", 300_000), h.open("b", 300_000)];
  h.grant(a, "r");
  h.queue(b, "r", "exclusive", { waitMs: -1 });
  assert.equal(h.m.resource("r")!.waiters[0]!.deadline, null);
  assert.equal(h.m.nextDeadline(), h.now + 300_000, "only the session expiries are pending");
  h.now += 200_000;
  h.expire();
  assert.deepEqual(h.waiters("r"), [b]);
});

test("lock - a hold with a ttl ends through expire with lost/ttl and the next waiter is granted", () => {
  const h = new Harness();
  const [a, b] = [h.open("a", 60_000), h.open("b", 60_000)];
  const ta = h.grant(a, "r", "exclusive", { ttlMs: 2000 });
  assert.equal(h.m.resource("r")!.holders[0]!.expiresAt, h.now + 2000);
  const w = h.queue(b, "r");
  h.drain();
  assert.equal(h.m.nextDeadline(), h.now + 2000);
  h.now += 2000;
  h.expire();
  const hold = h.m.resource("r")!.holders[0]!;
  assert.equal(hold.sessionId, b);
  assert.ok(hold.token > ta);
  assert.deepEqual(h.drain(), [
    { kind: "lost", sessionId: a, resource: "r", token: ta, reason: "ttl" },
    { kind: "granted", sessionId: b, waitId: w, resource: "r", mode: "exclusive", token: hold.token },
  ]);
  assertRefused(h.release(a, "r", ta), "NOT_HELD");
  assert.ok(h.m.session(a), "the session itself lives on");
});

test("lock - a queued request's ttl starts at its grant", () => {
  const h = new Harness();
  const [a, b] = [h.open("a", 60_000), h.open("b", 60_000)];
  const ta = h.grant(a, "r");
  h.queue(b, "r", "exclusive", { ttlMs: 3000 });
  h.now += 5000;
  h.release(a, "r", ta);
  assert.equal(h.m.resource("r")!.holders[0]!.expiresAt, h.now + 3000);
});

test("lock - nextDeadline skips stale deadlines (keepalive, release)", () => {
  const h = new Harness();
  const a = h.open("a", 1000);
  const t = h.grant(a, "r", "exclusive", { ttlMs: 500 });
  assert.equal(h.m.nextDeadline(), h.now + 500);
  h.release(a, "r", t);
  assert.equal(h.m.nextDeadline(), h.now + 1000);
  h.now += 600;
  h.keepalive(a);
  assert.equal(h.m.nextDeadline(), h.now + 1000);
  h.apply({ op: "session.close", sessionId: a });
  assert.equal(h.m.nextDeadline(), null);
});

test("lock - one expire settles everything due before granting, so its grants stick", () => {
  const h = new Harness();
  const a = h.open("a", 60_000);
  const b = h.open("b", 2000); // will be due in the same expire as a's hold
  const c = h.open("c", 60_000);
  const ta = h.grant(a, "r", "exclusive", { ttlMs: 1000 });
  h.queue(b, "r");
  const wc = h.queue(c, "r");
  h.drain();
  h.now += 5000; // The leader was slow: a's ttl and b's session are both due.
  const r = h.expire();
  assert.deepEqual(r, { ok: true, kind: "expired", sessions: [b] });
  const hold = h.m.resource("r")!.holders[0]!;
  assert.equal(hold.sessionId, c, "b was not granted then revoked by the same entry");
  const events = h.drain();
  assert.deepEqual(events.at(-1), { kind: "granted", sessionId: c, waitId: wc, resource: "r", mode: "exclusive", token: h.index });
  assert.equal(events.filter((e) => e.kind === "granted").length, 1);
  assert.ok(hold.token > ta);
});

test("lock - a release does not grant a waiter whose deadline has passed; it is refused TIMEOUT", () => {
  const h = new Harness();
  const [a, b, c] = [h.open("a", 60_000), h.open("b", 60_000), h.open("c", 60_000)];
  const ta = h.grant(a, "r");
  const wb = h.queue(b, "r", "exclusive", { waitMs: 100 });
  h.queue(c, "r");
  h.drain();
  h.now += 200; // The leader has not proposed expire yet.
  h.release(a, "r", ta);
  assert.deepEqual(h.holders("r"), [c]);
  const events = h.drain();
  assert.deepEqual(events[0], { kind: "refused", sessionId: b, waitId: wb, resource: "r", code: "LOCK_WAIT_TIMEOUT", message: "wait for r timed out" });
});

test("lock - expire with nothing due changes nothing", () => {
  const h = new Harness();
  const a = h.open("a");
  h.grant(a, "r", "exclusive", { ttlMs: 5000 });
  const view = () => [h.m.resources(), h.m.resource("r"), h.m.session(a), h.m.stats(), h.m.nextDeadline()];
  const before = view();
  assert.deepEqual(h.expire(), { ok: true, kind: "expired", sessions: [] });
  assert.deepEqual(view(), before);
  assert.deepEqual(h.drain(), []);
});
