import { test } from "node:test";
import assert from "node:assert/strict";
import { LockMachine } from "../../src/services/lock/machine/lock-machine.ts";
import { Harness, assertRefused } from "./harness.test.ts";

test("lock - a retried acquire returns the cached grant and does not acquire twice", () => {
  const h = new Harness();
  const [a, b] = [h.open("a"), h.open("b")];
  const first = h.acquire(a, "r", "exclusive", { seq: 1, waitMs: 0 });
  assert.ok(first.ok && first.kind === "granted");
  const grants = h.m.stats().grants;
  // The reply was lost; the client retries after a leader change.
  assert.deepEqual(h.acquire(a, "r", "exclusive", { seq: 1, waitMs: 0 }), first);
  assert.equal(h.m.stats().grants, grants);
  // Even after the lock changed hands, the retry answers what happened, not a new attempt.
  h.queue(b, "r");
  h.release(a, "r", first.token, 2);
  const retryRelease = h.release(a, "r", first.token, 2);
  assert.deepEqual(retryRelease, { ok: true, kind: "released", resource: "r" });
  assert.deepEqual(h.holders("r"), [b], "the retried release did not touch b's lock");
});

test("lock - a retried release does not release someone else's lock or a re-acquired one", () => {
  const h = new Harness();
  const a = h.open("a");
  const t1 = h.grant(a, "r");
  const rel = h.release(a, "r", t1);
  assert.ok(rel.ok);
  const seqRel = h.nextSeq(a) - 1; // The harness numbered the release.
  const t2 = h.grant(a, "r");
  // A late duplicate of the first release (same seq) is stale now: a newer seq was applied.
  assertRefused(h.release(a, "r", t1, seqRel), "INVALID_ARGUMENT");
  // Even a release with a fresh seq but the old token cannot release the new hold.
  assertRefused(h.release(a, "r", t1), "NOT_HELD");
  assert.equal(h.m.resource("r")!.holders[0]!.token, t2);
});

test("lock - a stale sequence is refused with INVALID_ARGUMENT", () => {
  const h = new Harness();
  const a = h.open("a");
  h.acquire(a, "r", "exclusive", { seq: 5, waitMs: 0 });
  h.acquire(a, "s", "exclusive", { seq: 6, waitMs: 0 });
  const r = h.acquire(a, "t", "exclusive", { seq: 5, waitMs: 0 });
  assertRefused(r, "INVALID_ARGUMENT");
  assert.match(!r.ok ? r.message : "", /stale sequence/);
  assert.equal(h.m.resource("t"), null);
});

test("lock - a retried queued acquire returns the same waitId and queues once", () => {
  const h = new Harness();
  const [a, b] = [h.open("a"), h.open("b")];
  h.grant(a, "r");
  const q = h.acquire(b, "r", "exclusive", { seq: 1 });
  assert.ok(q.ok && q.kind === "queued");
  assert.deepEqual(h.acquire(b, "r", "exclusive", { seq: 1 }), q);
  assert.deepEqual(h.waiters("r"), [b]);
});

test("lock - refused results are cached too, and the dedup state survives a snapshot", () => {
  const h = new Harness();
  const [a, b] = [h.open("a"), h.open("b")];
  h.grant(a, "r");
  const refused = h.acquire(b, "r", "exclusive", { seq: 1, waitMs: 0 });
  assertRefused(refused, "LOCK_HELD");
  const m2 = new LockMachine();
  m2.restore(h.m.snapshot());
  h.release(a, "r", h.m.resource("r")!.holders[0]!.token);
  // Although r is free now, the retry gets the original answer on every replica.
  assert.deepEqual(h.acquire(b, "r", "exclusive", { seq: 1, waitMs: 0 }), refused);
  assert.deepEqual(
    m2.applyCommand({ op: "acquire", sessionId: b, seq: 1, resource: "r", mode: "exclusive", ttlMs: null, waitMs: 0, now: h.now }, h.index + 1),
    refused,
  );
});
