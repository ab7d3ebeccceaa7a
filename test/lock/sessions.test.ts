import { test } from "node:test";
import assert from "node:assert/strict";
import { Harness, assertRefused } from "./harness.test.ts";

test("lock - session id is the log index of session.open and ttl is clamped", () => {
  const h = new Harness({ sessionTtlMsMax: 60_000 });
  h.apply({ op: "expire" }); // index 1
  const r = h.apply({ op: "session.open", clientId: "a", ttlMs: 5 });
  assert.deepEqual(r, { ok: true, kind: "session", sessionId: 2, expiresAt: h.now + 1000 });
  const big = h.apply({ op: "session.open", clientId: "b", ttlMs: 10_000_000 });
  assert.ok(big.ok && big.kind === "session");
  assert.equal(big.expiresAt, h.now + 60_000);
  assert.deepEqual(h.m.session(2), { id: 2, clientId: "a", expiresAt: h.now + 1000, ttlMs: 1000, createdIndex: 2 });
  assert.equal(h.m.stats().sessions, 2);
});

test("lock - keepalive extends a session and never shortens it", () => {
  const h = new Harness();
  const s = h.open("a", 10_000);
  h.now += 4000;
  assert.deepEqual(h.keepalive(s), { ok: true, kind: "session", sessionId: s, expiresAt: h.now + 10_000 });
  const before = h.m.session(s)!.expiresAt;
  // A new leader whose clock lags: the session keeps its later expiry.
  assert.deepEqual(h.apply({ op: "session.keepalive", sessionId: s, now: h.now - 3000 }), {
    ok: true,
    kind: "session",
    sessionId: s,
    expiresAt: before,
  });
});

test("lock - keepalive, acquire and release on an unknown or expired session are SESSION_EXPIRED", () => {
  const h = new Harness();
  assertRefused(h.keepalive(99), "SESSION_EXPIRED");
  const s = h.open("a", 1000);
  const t = h.grant(s, "r");
  h.now += 1000; // Past its expiry, before the leader proposed "expire".
  assertRefused(h.keepalive(s), "SESSION_EXPIRED");
  assertRefused(h.acquire(s, "q"), "SESSION_EXPIRED");
  assertRefused(h.release(s, "r", t), "SESSION_EXPIRED");
  assertRefused(h.apply({ op: "session.close", sessionId: 12345 }), "SESSION_EXPIRED");
});

test("lock - session expiry releases holds, hands off to the next waiter with a higher token, and tells everyone", () => {
  const h = new Harness();
  const a = h.open("a", 2000);
  const b = h.open("b", 60_000);
  const ta = h.grant(a, "r");
  h.grant(a, "s", "shared");
  const wb = h.queue(b, "r");
  h.drain();
  h.now += 1000;
  h.keepalive(b);
  assert.equal(h.m.nextDeadline(), h.now + 1000);
  h.now += 1000;
  const r = h.expire();
  assert.deepEqual(r, { ok: true, kind: "expired", sessions: [a] });
  assert.equal(h.m.session(a), null);
  const hold = h.m.resource("r")!.holders[0]!;
  assert.equal(hold.sessionId, b);
  assert.ok(hold.token > ta, "the next holder's token is higher");
  assert.equal(hold.token, h.index, "token = index of the entry that granted it");
  assert.equal(h.m.resource("s"), null, "an idle resource is dropped");
  assert.deepEqual(h.drain(), [
    { kind: "lost", sessionId: a, resource: "r", token: ta, reason: "session-expired" },
    { kind: "lost", sessionId: a, resource: "s", token: ta + 1, reason: "session-expired" },
    { kind: "session-expired", sessionId: a },
    { kind: "granted", sessionId: b, waitId: wb, resource: "r", mode: "exclusive", token: h.index },
  ]);
  assert.equal(h.m.stats().sessionExpiries, 1);
  assert.equal(h.m.stats().sessions, 1);
});

test("lock - an expired session leaves the wait queues and its pending waits are refused", () => {
  const h = new Harness();
  const a = h.open("a", 60_000);
  const b = h.open("b", 1000);
  const c = h.open("c", 60_000);
  h.grant(a, "r", "shared");
  const wb = h.queue(b, "r", "exclusive");
  const wc = h.queue(c, "r", "shared");
  h.drain();
  h.now += 1000;
  h.expire();
  // With b's exclusive request gone, c's shared request joins a's shared hold.
  assert.deepEqual(h.holders("r"), [a, c]);
  assert.deepEqual(h.drain(), [
    { kind: "refused", sessionId: b, waitId: wb, resource: "r", code: "SESSION_EXPIRED", message: `session ${b} expired` },
    { kind: "session-expired", sessionId: b },
    { kind: "granted", sessionId: c, waitId: wc, resource: "r", mode: "shared", token: h.index },
  ]);
});

test("lock - session.close releases holds and grants the next waiter, with no events for the closer", () => {
  const h = new Harness();
  const a = h.open("a");
  const b = h.open("b");
  h.grant(a, "r");
  const wb = h.queue(b, "r");
  h.drain();
  const r = h.apply({ op: "session.close", sessionId: a });
  assert.deepEqual(r, { ok: true, kind: "session", sessionId: a, expiresAt: h.now });
  assert.equal(h.m.session(a), null);
  assert.deepEqual(h.drain(), [{ kind: "granted", sessionId: b, waitId: wb, resource: "r", mode: "exclusive", token: h.index }]);
  assert.equal(h.m.stats().sessionExpiries, 0);
});
