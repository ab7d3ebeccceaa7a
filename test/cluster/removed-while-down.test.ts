/**
 * A node removed from the cluster while it was down, then restarted on its old data dir. Before,
 * it stayed a leaderless member of its own stale group 0 forever: /health said not_serving, its
 * clients got a retryable NOT_LEADER ("no leader is known yet") although no leader would ever
 * come, and a stale read returned a value overwritten after its removal. Nobody linked to it (the
 * survivors had dropped it, and as the largest id it never dials), so it could not learn.
 * Now it asks the members it knows (MEMBER_CHECK) once group 0 has had no leader for a while, and
 * on a "not a member" from a node further along group 0's log it stops serving: /health says
 * "removed", and requests are refused with SHUTTING_DOWN (retryable: the client goes elsewhere).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode, Op, type AdminShardsReply } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: unknown): string => new TextDecoder().decode(b as Uint8Array);

test("removed while down - a node removed while it was down learns it on restart and serves nothing stale", { timeout: 300_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const admin = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 10_000, maxAttempts: 20 });
  try {
    const joiner = await cluster.addNode("node_3", { JOIN: "true" });
    await admin.call(Op.ADMIN_ADD_NODE, { nodeId: "node_3", peerAddr: `127.0.0.1:${joiner.spec.peerPort}` }, { timeoutMs: 90_000 });
    const shards = async (): Promise<AdminShardsReply> => (await admin.call(Op.ADMIN_SHARDS, {}, { idempotent: true })) as AdminShardsReply;
    await waitFor(async () => (await shards()).jobs.every((j) => j.step === "done"), "the moves onto node_3 to finish", 120_000);
    await admin.call(Op.KV_PUT, { key: "k", value: enc("v1") });
    // node_3 has applied v1 before it goes down.
    const direct = new DsyncClient({ nodes: [joiner.clientAddr], maxAttempts: 3, preferLeader: false, requestTimeoutMs: 3000 });
    await waitFor(async () => dec(((await direct.call(Op.KV_GET, { key: "k", stale: true }, { idempotent: true }).catch(() => null)) as { value?: unknown } | null)?.value ?? new Uint8Array()) === "v1", "node_3 to hold v1");
    await direct.close();

    await joiner.kill("SIGKILL");
    // Removed while down: its replicas are re-created elsewhere, then it leaves group 0 and the map.
    await admin.call(Op.ADMIN_REMOVE_NODE, { nodeId: "node_3" }, { timeoutMs: 30_000 });
    await waitFor(async () => !(await shards()).nodes.some((n) => n.id === "node_3"), "node_3 to leave the shard map", 180_000);
    await waitFor(async () => {
      const s = (await admin.call(Op.STATUS, {}, { idempotent: true })) as { voters: string[]; learners: string[] };
      return !s.voters.includes("node_3") && !s.learners.includes("node_3");
    }, "node_3 to leave group 0", 60_000);
    await admin.call(Op.KV_PUT, { key: "k", value: enc("v2") });

    await joiner.start();
    const health = async (): Promise<{ code: number; status: string }> => {
      const r = await fetch(`${joiner.httpUrl}/health`);
      return { code: r.status, status: ((await r.json()) as { status: string }).status };
    };
    await waitFor(async () => (await health()).status === "removed", "node_3 to report itself removed", 60_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}; node_3's log:\n${joiner.output.slice(-4000)}`);
    });
    assert.equal((await health()).code, 503);
    assert.match(joiner.output, /removed from the cluster while it was down/);

    // Nothing stale: a client that still points at it is sent elsewhere (or cannot connect at all).
    const stale = new DsyncClient({ nodes: [joiner.clientAddr], maxAttempts: 1, preferLeader: false, requestTimeoutMs: 3000 });
    try {
      const got = await stale.call(Op.KV_GET, { key: "k", stale: true }, { idempotent: true }).then(
        (r) => ({ value: dec((r as { value: unknown }).value) }),
        (err: { code?: number }) => ({ code: err.code }),
      );
      assert.ok(!("value" in got), `the removed node answered a read: ${JSON.stringify(got)}`);
      assert.ok(got.code === ErrorCode.SHUTTING_DOWN || got.code === ErrorCode.CONNECTION_CLOSED || got.code === ErrorCode.UNAVAILABLE, `refused with code ${got.code}`);
    } finally {
      await stale.close();
    }
    // The cluster is unaffected, and a client given every address still works.
    const all = new DsyncClient({ nodes: [joiner.clientAddr, ...cluster.clientAddrs], requestTimeoutMs: 5000, maxAttempts: 10 });
    try {
      assert.equal(dec(((await all.call(Op.KV_GET, { key: "k" }, { idempotent: true })) as { value: unknown }).value), "v2");
    } finally {
      await all.close();
    }
  } finally {
    await admin.close();
    await cluster.destroy();
  }
});
