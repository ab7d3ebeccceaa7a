/**
 * While a leader stops gracefully, every write sent through the other nodes gets an outcome its
 * client knows: done, or refused with a code that says nothing happened. Found by the fault
 * campaign's rolling restarts (a few writes per roll ended unknown): a node that knew no leader
 * yet refused writes with UNAVAILABLE (then of unknown effect) although it had proposed nothing, and
 * writes forwarded to the stopping leader were failed with SHUTTING_DOWN when it closed its Raft
 * groups, where they could still commit. Without the fix: 1–87 of ~2,500 writes per run.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DsyncClient, DsyncError } from "../../src/client/index.ts";
import { Op, hadNoEffect, type NodeStatus } from "../../protocol/index.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

/** Writers per follower, and how long they write after the leader is told to stop. */
const WRITERS = 24;
const AFTER_STOP_MS = 1500;

test("graceful stop - writes forwarded to a stopping leader all get their outcome (none unknown)", async () => {
  const cluster = await TestCluster.create(3);
  const clients: DsyncClient[] = [];
  try {
    const probe = new DsyncClient({ nodes: cluster.clientAddrs });
    const leaderId = await waitFor(async () => ((await probe.status()) as NodeStatus).leader, "a leader");
    // No client of the leader's own: its stop then has no client request to wait for.
    await probe.close();
    const leader = cluster.nodes.find((n) => n.spec.id === leaderId)!;
    const followers = cluster.nodes.filter((n) => n !== leader);
    // Clients on the followers only: every write is forwarded to the leader.
    let stopAt = Infinity;
    const failures: string[] = [];
    let ok = 0;
    const writers = followers.flatMap((f) =>
      Array.from({ length: WRITERS }, async (_, w) => {
        // One attempt: a retry would hide an outcome the client could not know.
        const c = new DsyncClient({ nodes: [f.clientAddr], preferLeader: false, maxAttempts: 1 });
        clients.push(c);
        for (let i = 0; performance.now() < stopAt + AFTER_STOP_MS && i < 5000; i++) {
          try {
            await c.call(Op.KV_PUT, { key: `${f.spec.id}/${w}`, value: Buffer.from(String(i)) });
            ok++;
          } catch (err) {
            // Refusals that certainly had no effect (NOT_LEADER while leadership moves) are fine.
            if (err instanceof DsyncError && hadNoEffect(err.code)) continue;
            failures.push(`${(err as { codeName?: string }).codeName ?? ""} ${(err as Error).message}`);
          }
        }
      }),
    );
    await waitFor(() => ok >= 200, "writes to flow");
    stopAt = performance.now();
    await leader.kill("SIGTERM");
    await Promise.all(writers);
    const kinds = [...new Set(failures.map((f) => f.slice(0, 90)))].slice(0, 5).join(" | ");
    assert.deepEqual(failures.length, 0, `${kinds}: ${failures.length} of ${ok + failures.length} writes ended with an unknown outcome`);
    assert.equal(leader.child?.exitCode, 0, "the stop was clean");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await cluster.destroy();
  }
});
