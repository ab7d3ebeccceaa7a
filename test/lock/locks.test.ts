import { test } from "node:test";
import assert from "node:assert/strict";
import { Harness, assertRefused } from "./harness.test.ts";

test("lock - an exclusive holder blocks everyone; FIFO hand-off on release", () => {
  const h = new Harness();
  const [a, b, c] = [h.open("a"), h.open("b"), h.open("c")];
  const ta = h.grant(a, "r");
  assert.equal(ta, h.index, "the token is the index of the granting entry");
  const wb = h.queue(b, "r");
  const rc = h.acquire(c, "r", "shared");
  assert.deepEqual(rc, { ok: true, kind: "queued", resource: "r", position: 1, waitId: h.index });
  h.drain();
  assert.deepEqual(h.release(a, "r", ta), { ok: true, kind: "released", resource: "r" });
  assert.deepEqual(h.holders("r"), [b]);
  assert.deepEqual(h.drain(), [{ kind: "granted", sessionId: b, waitId: wb, resource: "r", mode: "exclusive", token: h.index }]);
  const tb = h.m.resource("r")!.holders[0]!.token;
  assert.ok(tb > ta);
  h.release(b, "r", tb);
  assert.deepEqual(h.holders("r"), [c]);
  assert.ok(h.m.resource("r")!.holders[0]!.token > tb);
  assert.equal(h.m.stats().grants, 3);
});

test("lock - shared holders share and block a later exclusive", () => {
  const h = new Harness();
  const [a, b, c] = [h.open("a"), h.open("b"), h.open("c")];
  const ta = h.grant(a, "r", "shared");
  const tb = h.grant(b, "r", "shared");
  assert.ok(tb > ta);
  assert.equal(h.m.resource("r")!.mode, "shared");
  h.queue(c, "r", "exclusive");
  h.release(a, "r", ta);
  assert.deepEqual(h.holders("r"), [b], "the exclusive request waits for the last reader");
  h.release(b, "r", tb);
  assert.deepEqual(h.holders("r"), [c]);
  assert.equal(h.m.resource("r")!.mode, "exclusive");
});

test("lock - no writer starvation: a shared request queues behind a queued exclusive one", () => {
  const h = new Harness();
  const [a, b, c] = [h.open("a"), h.open("b"), h.open("c")];
  const ta = h.grant(a, "r", "shared");
  h.queue(b, "r", "exclusive");
  assertRefused(h.acquire(c, "r", "shared", { waitMs: 0 }), "LOCK_HELD");
  h.queue(c, "r", "shared");
  assert.deepEqual(h.waiters("r"), [b, c]);
  h.release(a, "r", ta);
  assert.deepEqual(h.holders("r"), [b]);
});

test("lock - a release grants a run of consecutive shared waiters, stopping at an exclusive", () => {
  const h = new Harness();
  const [a, b, c, d, e] = [h.open("a"), h.open("b"), h.open("c"), h.open("d"), h.open("e")];
  const ta = h.grant(a, "r");
  h.queue(b, "r", "shared");
  h.queue(c, "r", "shared");
  h.queue(d, "r", "exclusive");
  h.queue(e, "r", "shared");
  h.drain();
  h.release(a, "r", ta);
  assert.deepEqual(h.holders("r"), [b, c]);
  assert.deepEqual(h.waiters("r"), [d, e]);
  const tokens = h.m.resource("r")!.holders.map((x) => x.token);
  assert.deepEqual(tokens, [h.index, h.index], "readers granted by one entry share its token");
  assert.deepEqual(
    h.drain().map((x) => x.kind === "granted" && x.sessionId),
    [b, c],
  );
});

test("lock - re-entrant acquire in the same mode returns the same grant", () => {
  const h = new Harness();
  const a = h.open("a");
  const t = h.grant(a, "r", "shared");
  const again = h.acquire(a, "r", "shared");
  assert.deepEqual(again, { ok: true, kind: "granted", resource: "r", mode: "shared", token: t, sessionId: a });
  assert.equal(h.m.resource("r")!.holders.length, 1);
  assert.equal(h.m.stats().grants, 1);
});

test("lock - upgrade and downgrade of a held lock are refused with UPGRADE_REFUSED", () => {
  const h = new Harness();
  const [a, b] = [h.open("a"), h.open("b")];
  h.grant(a, "r", "shared");
  const up = h.acquire(a, "r", "exclusive");
  assertRefused(up, "UPGRADE_REFUSED");
  assert.match(!up.ok ? up.message : "", /release it first/);
  h.grant(b, "x", "exclusive");
  assertRefused(h.acquire(b, "x", "shared"), "UPGRADE_REFUSED");
  assert.equal(h.m.resource("r")!.mode, "shared");
});

test("lock - try-lock (waitMs 0) returns LOCK_HELD at once and leaves no waiter", () => {
  const h = new Harness();
  const [a, b] = [h.open("a"), h.open("b")];
  h.grant(a, "r");
  const r = h.acquire(b, "r", "exclusive", { waitMs: 0 });
  assertRefused(r, "LOCK_HELD");
  assert.match(!r.ok ? r.message : "", new RegExp(`held exclusive by session\\(s\\) ${a}`));
  assert.deepEqual(h.waiters("r"), []);
  assert.equal(h.m.stats().waiters, 0);
});

test("lock - release with a wrong token or by a non-holder is NOT_HELD and releases nothing", () => {
  const h = new Harness();
  const [a, b] = [h.open("a"), h.open("b")];
  const t = h.grant(a, "r");
  assertRefused(h.release(a, "r", t + 1), "NOT_HELD");
  assertRefused(h.release(b, "r", t), "NOT_HELD");
  assertRefused(h.release(a, "nothing", t), "NOT_HELD");
  assert.deepEqual(h.holders("r"), [a]);
});

test("lock - release with a waitId withdraws a pending request", () => {
  const h = new Harness();
  const [a, b, c] = [h.open("a"), h.open("b"), h.open("c")];
  const ta = h.grant(a, "r", "shared");
  const wb = h.queue(b, "r", "exclusive");
  const wc = h.queue(c, "r", "shared");
  assert.deepEqual(h.release(b, "r", wb), { ok: true, kind: "released", resource: "r" });
  // c was only blocked by b's exclusive request: it joins the readers now.
  assert.deepEqual(h.holders("r"), [a, c]);
  assert.equal(h.m.resource("r")!.holders[1]!.token, h.index);
  assert.ok(wc < h.index && ta < h.index);
});

test("lock - a session waits at most once per resource", () => {
  const h = new Harness();
  const [a, b] = [h.open("a"), h.open("b")];
  h.grant(a, "r");
  const w = h.queue(b, "r");
  assert.deepEqual(h.acquire(b, "r"), { ok: true, kind: "queued", resource: "r", position: 0, waitId: w });
  assertRefused(h.acquire(b, "r", "shared"), "INVALID_ARGUMENT");
  assert.deepEqual(h.waiters("r"), [b]);
});

test("lock - a full wait queue refuses with LOCK_HELD", () => {
  const h = new Harness({ waitersPerResourceMax: 2 });
  const [a, b, c, d] = [h.open("a"), h.open("b"), h.open("c"), h.open("d")];
  h.grant(a, "r");
  h.queue(b, "r");
  h.queue(c, "r");
  const r = h.acquire(d, "r");
  assertRefused(r, "LOCK_HELD");
  assert.match(!r.ok ? r.message : "", /queue full/);
});

test("lock - fencing tokens strictly increase per resource across many hand-offs", () => {
  const h = new Harness();
  const ids = [h.open("a"), h.open("b"), h.open("c")];
  let last = 0;
  let holder = ids[0]!;
  let token = h.grant(holder, "r");
  for (const s of ids.slice(1)) h.queue(s, "r");
  for (let i = 0; i < 20; i++) {
    assert.ok(token > last);
    last = token;
    h.release(holder, "r", token);
    h.queue(holder, "r"); // The releaser queues again, behind the others.
    const hold = h.m.resource("r")!.holders[0]!;
    holder = hold.sessionId;
    token = hold.token;
  }
});

test("lock - bad input gets INVALID_ARGUMENT, never an exception", () => {
  const h = new Harness();
  const a = h.open("a");
  const bad: unknown[] = [
    { op: "acquire", sessionId: a, seq: 1, resource: "", mode: "exclusive", ttlMs: null, waitMs: 0 },
    { op: "acquire", sessionId: a, seq: 1, resource: "é".repeat(257), mode: "exclusive", ttlMs: null, waitMs: 0 },
    { op: "acquire", sessionId: a, seq: 1, resource: 7, mode: "exclusive", ttlMs: null, waitMs: 0 },
    { op: "acquire", sessionId: a, seq: 1, resource: "r", mode: "write", ttlMs: null, waitMs: 0 },
    { op: "acquire", sessionId: a, seq: 1, resource: "r", mode: "shared", ttlMs: -5, waitMs: 0 },
    { op: "acquire", sessionId: a, seq: 1, resource: "r", mode: "shared", ttlMs: null, waitMs: -2 },
    { op: "acquire", sessionId: a, seq: 1, resource: "r", mode: "shared", ttlMs: null, waitMs: Infinity },
    { op: "acquire", sessionId: a, seq: 1.5, resource: "r", mode: "shared", ttlMs: null, waitMs: 0 },
    { op: "acquire", sessionId: "a", seq: 1, resource: "r", mode: "shared", ttlMs: null, waitMs: 0 },
    { op: "release", sessionId: a, seq: 1, resource: "r", token: -1 },
    { op: "session.open", clientId: "x".repeat(257), ttlMs: 1000 },
    { op: "session.open", clientId: 5, ttlMs: 1000 },
    { op: "session.open", clientId: "c", ttlMs: NaN },
    { op: "session.keepalive", sessionId: null },
    { op: "expire", now: -1 },
    { op: "expire", now: "soon" },
    { op: "frobnicate" },
    null,
    [1, 2],
    "acquire",
  ];
  for (const cmd of bad) {
    const withNow = cmd !== null && typeof cmd === "object" && !Array.isArray(cmd) && !("now" in cmd) ? { ...cmd, now: h.now } : cmd;
    const r = h.m.applyCommand(withNow as never, ++h.index);
    assertRefused(r, "INVALID_ARGUMENT");
  }
  assert.equal(h.m.resource("r"), null);
  // A 512-byte name (multi-byte characters) is fine; 513 is not.
  assert.ok(h.acquire(a, "é".repeat(256), "exclusive", { waitMs: 0 }).ok);
  assertRefused(h.acquire(a, "é".repeat(256) + "x", "exclusive", { waitMs: 0 }), "INVALID_ARGUMENT");
  // Undecodable bytes and a leader's empty no-op.
  assertRefused(h.m.apply({ index: ++h.index, term: 1, data: new Uint8Array([0x92, 0x01]) })!, "INVALID_ARGUMENT");
  assertRefused(h.m.apply({ index: ++h.index, term: 1, data: new Uint8Array([0xc1]) })!, "INVALID_ARGUMENT");
  assert.equal(h.m.apply({ index: ++h.index, term: 1, data: new Uint8Array(0) }), null);
});

test("lock - applying an entry out of log order is an invariant violation (throws)", () => {
  const h = new Harness();
  h.open("a");
  assert.throws(() => h.m.applyCommand({ op: "expire", now: h.now }, h.index), /invariant/);
});
