/**
 * MOVED routing in the queue client. Found by the fault campaign (5 nodes, kills and rolling
 * restarts): while a queue's node was down, the connection routed to it fell back to another
 * node that holds no replica, and stayed there after the node came back, so every request went
 * round MOVED → same route → same wrong node until the client gave up (254 failed enqueues in
 * 40 s of seed 5).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode, Op } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { QueueClient } from "../../src/client/queues.ts";
import { FakeNode } from "../helpers/fake-node.ts";
import { freePort } from "../helpers/daemon.ts";

test("moved - a route whose connection fell back to a node without the partition goes back to the holder once it is up", async () => {
  const holderPort = await freePort();
  const holderAddr = `127.0.0.1:${holderPort}`;
  let atOther = 0;
  let atHolder = 0;
  // Holds no replica: sends every queue request to the holder.
  const other = await FakeNode.start("other", () => {
    atOther++;
    return { error: { code: ErrorCode.MOVED, message: "queue partition 1 is held by holder, not by this node", leaderHint: "holder", leaderAddr: holderAddr } };
  });
  const client = new DsyncClient({ nodes: [other.addr, holderAddr], preferLeader: false, maxAttempts: 2, requestTimeoutMs: 2000, connectTimeoutMs: 500, backoff: { baseMs: 5, maxMs: 10, factor: 2 } });
  const queues = new QueueClient(client);
  let holder: FakeNode | null = null;
  try {
    // The holder is down: the routed connection falls back to `other`, which says MOVED again.
    await assert.rejects(queues.enqueue("q", "m1", { dedupId: "m1" }), (e: { code?: number }) => e.code === ErrorCode.MOVED || e.code === ErrorCode.CONNECTION_CLOSED);
    holder = await FakeNode.start(
      "holder",
      (env) => {
        atHolder++;
        return env.type === Op.QUEUE_ENQUEUE ? { body: { queue: "q", partition: 1, ids: [1], duplicates: [false], leader: "holder", leaderAddr: holderAddr } } : null;
      },
      holderPort,
    );
    const before = atOther;
    const r = await queues.enqueue("q", "m2", { dedupId: "m2" });
    assert.equal(r.id, 1);
    assert.equal(atHolder, 1, "the request reached the holder");
    assert.ok(atOther - before <= 1, `at most one more MOVED from the other node (${atOther - before})`);
  } finally {
    await client.close();
    await other.stop();
    await holder?.stop();
  }
});
