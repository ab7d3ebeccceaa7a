/**
 * Two nodes that each name the other as leader (an election not settled yet): the client follows
 * the first redirect at once and backs off before the next ones, so its attempts are spread over
 * its backoff rather than spent within milliseconds. Seen on a real cluster: a write with
 * maxAttempts 40 failed with NOT_LEADER within a second of a new leader appearing.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode, Op } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { FakeNode } from "../helpers/fake-node.ts";

test("client - redirects between nodes that disagree on the leader back off after the first", async () => {
  const addrs: string[] = [];
  const sends: string[] = [];
  const pointTo = (i: number) => () => {
    sends.push(`n${i}`);
    return { error: { code: ErrorCode.NOT_LEADER, message: "not the leader", leaderHint: `n${1 - i}`, leaderAddr: addrs[1 - i]! } };
  };
  const a = await FakeNode.start("n0", pointTo(0));
  const b = await FakeNode.start("n1", pointTo(1));
  addrs.push(a.addr, b.addr);
  const c = new DsyncClient({ nodes: [a.addr], maxAttempts: 5, preferLeader: false, backoff: { baseMs: 20, maxMs: 20, factor: 1 } });
  let pauses = 0;
  c.on("reconnecting", () => pauses++);
  try {
    const started = performance.now();
    await assert.rejects(c.call(Op.KV_PUT, { key: "k", value: new Uint8Array(1) }), (err: { code?: number }) => err.code === ErrorCode.NOT_LEADER);
    const elapsed = performance.now() - started;
    assert.deepEqual(sends, ["n0", "n1", "n0", "n1", "n0"], "each attempt went where the last answer pointed");
    // Attempts 2–5 follow a second or later redirect: each waits its backoff first.
    assert.ok(pauses >= 3, `backed off between redirects (${pauses} pauses)`);
    assert.ok(elapsed >= 3 * 20 * 0.5, `the attempts were spread over the backoff (${elapsed.toFixed(1)} ms)`);
  } finally {
    await c.close();
    await a.stop();
    await b.stop();
  }
});
