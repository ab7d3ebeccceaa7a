import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { DsyncClient, connect } from "../../src/client/index.ts";
import { ErrorCode, Op, type NodeStatus } from "../../protocol/index.ts";
import { ROOT, TestCluster, waitFor } from "../helpers/daemon.ts";

test("dsync admin drain - the drained node leads nothing, refuses new work, says so on /health, and the cluster goes on", async () => {
  const cluster = await TestCluster.create(3);
  const clients: DsyncClient[] = [];
  try {
    const c = await connect({ nodes: cluster.clientAddrs });
    clients.push(c);
    await c.call(Op.KV_PUT, { key: "before", value: new Uint8Array([1]) });
    // Drain group 0's leader: the case where a handover matters. A fresh cluster may still be
    // moving leaderships to their preferred nodes: take the leader once it has held for 2 s.
    let seen: { leader: string | null; since: number } = { leader: null, since: 0 };
    const leader = await waitFor(async () => {
      const now = (await c.status()).leader;
      if (now !== seen.leader) seen = { leader: now, since: Date.now() };
      return now !== null && Date.now() - seen.since >= 2000 ? now : null;
    }, "group 0's leader to hold for 2 s", 30_000, 100);
    const node = cluster.nodes.find((n) => n.spec.id === leader)!;
    const cli = spawnSync(path.join(ROOT, "bin/dsync"), ["--nodes", cluster.clientAddrs.join(","), "admin", "drain", leader], { encoding: "utf8", timeout: 60_000 });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`${leader} drained: handed over the leadership of group\\(s\\) [\\d, ]*0`));
    // Seen once in a loaded suite run: the fetch failed. Say whether the daemon was still there.
    const health = await fetch(`${node.httpUrl}/health`).catch((err: Error) => {
      throw new Error(`GET /health of the drained node failed (${err.message}); process alive: ${node.alive}; its log ends:\n${node.output.slice(-3000)}`);
    });
    assert.equal(health.status, 503);
    assert.equal(((await health.json()) as { status: string }).status, "draining");
    // New connections to it are refused; the others serve, and it stays out of every leadership.
    const direct = new DsyncClient({ nodes: [node.clientAddr], maxAttempts: 1, connectTimeoutMs: 1000 });
    clients.push(direct);
    await assert.rejects(direct.ready(), (err: Error & { code?: number }) => err.code === ErrorCode.CONNECTION_CLOSED);
    const others = new DsyncClient({ nodes: cluster.nodes.filter((n) => n !== node).map((n) => n.clientAddr) });
    clients.push(others);
    await others.call(Op.KV_PUT, { key: "after", value: new Uint8Array([2]) });
    await new Promise((r) => setTimeout(r, 1500));
    const s = (await others.status()) as NodeStatus;
    assert.notEqual(s.leader, leader, "group 0 is led elsewhere");
    const led = await fetch(`${node.httpUrl}/metrics`).then((r) => r.text());
    const leading = [...led.matchAll(/^dsync_raft_is_leader\{[^}]*group="(\d+)"[^}]*\} 1$/gm)].map((m) => m[1]);
    assert.deepEqual(leading, [], `the drained node still leads group(s) ${leading.join(", ")}`);
    // Then it stops, and nothing was lost.
    await node.kill("SIGTERM");
    const got = (await others.call(Op.KV_GET, { key: "before" })) as { found: boolean };
    assert.equal(got.found, true);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await cluster.destroy();
  }
});
