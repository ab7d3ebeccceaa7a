/**
 * The space quota: a queue filled past a node's budget raises the space alarm (in /metrics) and
 * enqueues get NO_SPACE, while consumes, acks, stats and purges go on; once space is freed the
 * alarm clears and enqueues are accepted again.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode, Op, type QueueStatsReply } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { QueueClient } from "../../src/client/queues.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

/** 1 MiB per node: 16 messages of 64 KiB fill it. */
const BUDGET = 1 << 20;
const PAYLOAD = new Uint8Array(64 * 1024).fill(7);

async function alarmsSeen(cluster: TestCluster): Promise<number> {
  const texts = await Promise.all(cluster.nodes.map((n) => fetch(`${n.httpUrl}/metrics`).then((r) => r.text())));
  return Math.max(...texts.map((t) => Number(/^dsync_space_alarm\{[^}]*\} (\d+)$/m.exec(t)?.[1] ?? /^dsync_space_alarm (\d+)$/m.exec(t)?.[1] ?? 0)));
}

test("space quota - past the budget enqueues get NO_SPACE and the alarm shows; consumes, acks and purges work; freeing space clears it", { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.create(3, { SPACE_BUDGET_BYTES: String(BUDGET) });
  const client = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 10_000, maxAttempts: 10 });
  const q = new QueueClient(client);
  try {
    await waitFor(async () => (await q.stats("big").catch(() => null)) !== null, "the queue partitions to serve", 60_000);
    // The alarm is raised within a second of crossing the budget: keep enqueuing until refused (bounded).
    let accepted = 0;
    let refused: (Error & { code?: number }) | null = null;
    for (let i = 0; i < 400 && refused === null; i++) {
      try {
        await q.enqueue("big", PAYLOAD, { dedupId: `m${i}` });
        accepted++;
      } catch (err) {
        refused = err as Error & { code?: number };
      }
      if (accepted * PAYLOAD.length > BUDGET) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(refused !== null, `enqueues kept being accepted (${accepted})`);
    assert.equal(refused.code, ErrorCode.NO_SPACE, refused.message);
    assert.match(refused.message, /over its budget of 1048576/);
    assert.ok(accepted * PAYLOAD.length > BUDGET, `refused only past the budget (${accepted} accepted)`);
    assert.ok((await alarmsSeen(cluster)) >= 1, "dsync_space_alarm is up in /metrics");

    // Reads, consumes and acks go on under the alarm.
    const stats = (await client.call(Op.QUEUE_STATS, { queue: "big" })) as QueueStatsReply;
    assert.equal(stats.stats.depth, accepted);
    const got = await q.consume("big", { max: 4 });
    assert.equal(got.length, 4);
    const acked = await q.ack("big", got.map((m) => m.receipt));
    assert.equal(acked.acked, 4);
    // A purge frees the rest; the alarm clears and enqueues are accepted again.
    const purged = await q.purge("big");
    assert.equal(purged.purged, accepted - 4);
    await waitFor(async () => (await alarmsSeen(cluster)) === 0, "the space alarm to clear", 30_000);
    await waitFor(async () => (await q.enqueue("big", PAYLOAD).then(() => true, () => false)), "enqueues to be accepted again", 30_000);
  } finally {
    await client.close();
    await cluster.destroy();
  }
});
