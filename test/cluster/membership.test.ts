import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { Op, type AdminMemberReply, type AdminShardsReply } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { CacheClient } from "../../src/client/cache.ts";
import { ROOT, TestCluster, waitFor } from "../helpers/daemon.ts";
import { statusOf } from "../helpers/cluster-view.ts";

function cli(cluster: TestCluster, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(path.join(ROOT, "bin/dsync"), ["--nodes", cluster.nodes.filter((n) => n.alive).map((n) => n.clientAddr).join(","), "--timeout", "60000", ...args], { encoding: "utf8", timeout: 120_000 });
}

test("membership - a node joins (a group-0 learner beyond 3 voters), takes partitions and serves data; a founder is decommissioned and its place in group 0 taken; leadership moves on request", { timeout: 240_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const client = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 5000, maxAttempts: 20 });
  try {
    await waitFor(async () => (await Promise.all(cluster.nodes.map(statusOf))).every((s) => s?.leader), "a leader");
    for (let i = 0; i < 50; i++) await client.call(Op.KV_PUT, { key: `m${i}`, value: new TextEncoder().encode(`v${i}`) });

    const joiner = await cluster.addNode("node_3", { JOIN: "true" });
    const joined = cli(cluster, "--json", "admin", "add-node", "node_3", `127.0.0.1:${joiner.spec.peerPort}`);
    assert.equal(joined.status, 0, joined.stderr);
    const reply = JSON.parse(joined.stdout) as AdminMemberReply;
    // Group 0 keeps 3 voters with 4 nodes; the 4th follows it as a learner and gets partitions.
    assert.equal(reply.role, "learner");
    assert.deepEqual(reply.conf.voters.slice().sort(), ["node_0", "node_1", "node_2"]);
    assert.ok(reply.jobs.length > 0 && reply.jobs.every((j) => j.to === "node_3"), "replica moves onto the new node are queued");
    await waitFor(async () => {
      const all = await Promise.all(cluster.nodes.map(statusOf));
      return all.every((s) => s && s.voters.length === 3 && s.learners.includes("node_3"));
    }, "every node to see node_3 as a learner");
    const shards = async (): Promise<AdminShardsReply> => (await client.call(Op.ADMIN_SHARDS, {}, { idempotent: true })) as AdminShardsReply;
    await waitFor(async () => (await shards()).jobs.every((j) => j.step === "done"), "the moves onto node_3 to finish", 120_000);
    const held = (await shards()).nodes.find((n) => n.id === "node_3")!;
    assert.ok(held.replicas > 0, "node_3 holds partitions");
    const direct = new DsyncClient({ nodes: [joiner.clientAddr], maxAttempts: 5, preferLeader: false });
    const founder = new DsyncClient({ nodes: [cluster.nodes[0]!.clientAddr], maxAttempts: 5, preferLeader: false });
    try {
      const r = (await direct.call(Op.KV_GET, { key: "m49", stale: true })) as { found: boolean; value: Uint8Array };
      assert.ok(r.found, "the new node has the data written before it joined");
      assert.equal(new TextDecoder().decode(r.value), "v49");
      // It holds no cache partition (one per founding node) and still serves the cache, coherently.
      const viaNew = new CacheClient(direct);
      const viaFounder = new CacheClient(founder);
      await viaNew.set("joined", "from node_3");
      assert.equal(await viaFounder.getString("joined"), "from node_3");
      assert.equal(await viaNew.getString("joined"), "from node_3");
      await viaFounder.set("joined", "from node_0");
      assert.equal(await viaNew.getString("joined"), "from node_0", "node_3's copy was invalidated by the write on node_0");
      await viaNew.delete("joined");
      assert.equal(await viaFounder.getString("joined"), null);
    } finally {
      await direct.close();
      await founder.close();
    }

    // Leadership moves on request (to a voter).
    const leader = (await statusOf(cluster.nodes[0]!))!.leader;
    const to = leader === "node_2" ? "node_0" : "node_2";
    const moved = cli(cluster, "--json", "admin", "transfer-leader", to);
    assert.equal(moved.status, 0, moved.stderr);
    assert.equal((JSON.parse(moved.stdout) as { leader: string }).leader, to);

    // Decommission one of the founders: its replicas move, it leaves, node_3 takes its vote.
    const victim = cluster.nodes.find((n) => n.spec.id === "node_1")!;
    const removed = cli(cluster, "--json", "admin", "decommission", "node_1");
    assert.equal(removed.status, 0, removed.stderr);
    assert.deepEqual(JSON.parse(removed.stdout), { nodeId: "node_1", removed: true });
    const after = await shards();
    assert.ok(!after.nodes.some((n) => n.id === "node_1"));
    assert.ok(after.partitions.every((p) => p.replicas.length === 3 && !p.replicas.includes("node_1")));
    await waitFor(async () => {
      const s = await statusOf(cluster.nodes[0]!);
      return s !== null && s.voters.slice().sort().join() === "node_0,node_2,node_3";
    }, "node_3 to replace node_1 as a voter");
    await victim.kill("SIGKILL");
    await client.call(Op.KV_PUT, { key: "after-remove", value: new TextEncoder().encode("ok") });
    const r = (await client.call(Op.KV_GET, { key: "after-remove" })) as { found: boolean };
    assert.ok(r.found);

    // Bad requests get clear errors.
    const bad = cli(cluster, "admin", "remove-node", "nobody");
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /nobody is not a member/);
  } finally {
    await client.close();
    await cluster.destroy();
  }
});
