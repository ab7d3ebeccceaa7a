/**
 * A resent request's outcome: once one send's outcome is unknown (a timeout, a lost connection),
 * a later send refused with a no-effect code (NOT_LEADER, MOVED) does not make the request a
 * certain failure — the first send may have been applied. Found by the fault campaign (seed 1,
 * 5 nodes, replica moves): an enqueue reported as failed was delivered later.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode, Op, hadNoEffect, outcomeError, NotLeaderError, TimeoutError } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { FakeNode } from "../helpers/fake-node.ts";

test("outcome - after a timed-out send, a resend's NOT_LEADER is reported as an unknown outcome", async () => {
  let sends = 0;
  // The first send is swallowed (its outcome unknown to the client); later ones are refused.
  const node = await FakeNode.start("fake", () => (sends++ > 0 ? { error: { code: ErrorCode.NOT_LEADER, message: "not the leader", leaderHint: null, leaderAddr: null } } : null));
  const c = new DsyncClient({ nodes: [node.addr], requestTimeoutMs: 300, maxAttempts: 3, preferLeader: false, backoff: { baseMs: 10, maxMs: 20, factor: 2 } });
  try {
    const err = await c.call(Op.KV_PUT, { key: "k", value: new Uint8Array(1) }, { idempotent: true }).then(
      () => null,
      (e: Error) => e,
    );
    assert.ok(sends >= 2, `the request was resent (${sends} sends)`);
    assert.ok(err !== null && "code" in err, "the call failed");
    const code = (err as { code: number }).code;
    assert.equal(hadNoEffect(code), false, `reported as ${code} (${err.message}): a certain failure, though the first send may have been applied`);
    assert.equal(code, ErrorCode.TIMEOUT);
  } finally {
    await c.close();
    await node.stop();
  }
});

test("outcome - outcomeError keeps the last error when nothing was uncertain, or when the last is uncertain too", () => {
  const timeout = new TimeoutError("timed out");
  const notLeader = new NotLeaderError(null, null);
  assert.equal(outcomeError(null, notLeader), notLeader);
  const later = new TimeoutError("again");
  assert.equal(outcomeError(timeout, later), later);
  const merged = outcomeError(timeout, notLeader) as TimeoutError;
  assert.equal(merged.code, ErrorCode.TIMEOUT);
  assert.match(merged.message, /timed out \(a resend then failed: not the leader/);
});
