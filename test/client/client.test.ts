import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { ConnectionClosedError, DsyncError, ErrorCode, TimeoutError, connect } from "../../src/client/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { ROOT, TestCluster, freePort, waitFor } from "../helpers/daemon.ts";

test("client - three nodes answer dsync status, pipelined pings, failover to another seed", { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.create(3);
  try {
    // Every node serving means a leader is elected, so every peer link is up.
    await waitFor(async () => (await Promise.all(cluster.nodes.map((n) => fetch(`${n.httpUrl}/health`)))).every((r) => r.status === 200), "the cluster to serve");
    // The CLI, as a newcomer runs it, sees every node (discovering peers from one seed).
    const cli = spawnSync(path.join(ROOT, "bin/dsync"), ["--nodes", cluster.clientAddrs[0]!, "status", "--json"], { encoding: "utf8", timeout: 60_000 });
    assert.equal(cli.status, 0, cli.stderr);
    const reports = JSON.parse(cli.stdout) as { reachable: boolean; status: { nodeId: string } }[];
    assert.deepEqual(reports.map((r) => [r.status.nodeId, r.reachable]).sort(), [
      ["node_0", true],
      ["node_1", true],
      ["node_2", true],
    ]);
    const text = spawnSync(path.join(ROOT, "bin/dsync"), ["--nodes", cluster.clientAddrs.join(","), "status"], { encoding: "utf8", timeout: 60_000 });
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^NODE\s+ADDRESS\s+REACHABLE\s+ROLE/);
    assert.equal(text.stdout.trim().split("\n").length, 4, text.stdout);

    const client = await connect({ nodes: cluster.clientAddrs, requestTimeoutMs: 2000 });
    // 2,000 requests in flight on one connection, answered in any order, none lost.
    const pongs = await Promise.all(Array.from({ length: 2000 }, () => client.ping()));
    assert.equal(pongs.length, 2000);
    assert.ok(pongs.every((p) => p.nodeId === pongs[0]!.nodeId));

    // Kill the node the client talks to: idempotent calls move to another seed.
    const first = client.connectedTo!;
    const victim = cluster.nodes.find((n) => n.clientAddr === first)!;
    await victim.kill("SIGKILL");
    const after = await client.ping();
    assert.notEqual(client.connectedTo, first);
    assert.notEqual(after.nodeId, victim.spec.id);
    await client.close();
    await assert.rejects(client.ping(), ConnectionClosedError);
  } finally {
    await cluster.destroy();
  }
});

test("client - a paused node times out, and a non-idempotent call is not resent", { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.create(1);
  try {
    const node = cluster.nodes[0]!;
    const client = new DsyncClient({ nodes: [node.clientAddr], requestTimeoutMs: 300, maxAttempts: 1 });
    await client.ping();
    await node.kill("SIGSTOP");
    await assert.rejects(client.call(3, {}, { idempotent: false }), (err: unknown) => err instanceof TimeoutError && err.retryable && err.code === ErrorCode.TIMEOUT);
    await node.kill("SIGCONT");
    await client.close();
  } finally {
    await cluster.destroy();
  }
});

test("client - no reachable node gives a clear ConnectionClosedError", async () => {
  const port = await freePort();
  await assert.rejects(connect({ nodes: [`127.0.0.1:${port}`], connectTimeoutMs: 500, maxAttempts: 2 }), (err: unknown) => {
    assert.ok(err instanceof ConnectionClosedError);
    assert.match((err as Error).message, /no dsync node reachable/);
    return true;
  });
});

test("client - a wrong auth token is refused with UNAUTHENTICATED", { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.create(1, { AUTH_TOKEN: "s3cret" });
  try {
    await assert.rejects(connect({ nodes: cluster.clientAddrs, token: "wrong" }), (err: unknown) => err instanceof DsyncError && err.code === ErrorCode.UNAUTHENTICATED);
    await assert.rejects(connect({ nodes: cluster.clientAddrs }), (err: unknown) => err instanceof DsyncError && err.code === ErrorCode.UNAUTHENTICATED);
    const ok = await connect({ nodes: cluster.clientAddrs, token: "s3cret" });
    assert.equal((await ok.ping()).nodeId, "node_0");
    await ok.close();
  } finally {
    await cluster.destroy();
  }
});
