import { test } from "node:test";
import assert from "node:assert/strict";
import { Op } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { TestCluster, waitFor, type DaemonProcess } from "../helpers/daemon.ts";
import { direct, leaderOf, statusOf } from "../helpers/cluster-view.ts";

async function put(client: DsyncClient, key: string, value: string): Promise<number> {
  const r = (await client.call(Op.KV_PUT, { key, value: new TextEncoder().encode(value) })) as { revision: number };
  return r.revision;
}

async function get(client: DsyncClient, key: string, stale = false): Promise<string | null> {
  const r = (await client.call(Op.KV_GET, { key, stale }, { idempotent: true })) as { found: boolean; value: Uint8Array | null };
  return r.found ? new TextDecoder().decode(r.value!) : null;
}

test("raft cluster - leader killed: a new leader, no acknowledged write lost, the old one catches up", { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const client = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 3000, maxAttempts: 20 });
  try {
    const first = await leaderOf(cluster);
    const acked = new Map<string, string>();
    for (let i = 0; i < 200; i++) {
      await put(client, `k${i}`, `v${i}`);
      acked.set(`k${i}`, `v${i}`);
    }
    await first.node.kill("SIGKILL");
    const second = await leaderOf(cluster, "a new leader after SIGKILL");
    assert.notEqual(second.node.spec.id, first.node.spec.id);
    assert.ok(second.status.term > first.status.term, "the new leader has a higher term");
    // Writes keep working through the new leader, and everything acknowledged is there.
    for (let i = 200; i < 300; i++) {
      await put(client, `k${i}`, `v${i}`);
      acked.set(`k${i}`, `v${i}`);
    }
    for (const [k, v] of acked) assert.equal(await get(client, k), v, `acknowledged ${k} survives`);

    await first.node.start();
    const target = (await statusOf(second.node))!.commitIndex;
    await waitFor(async () => ((await statusOf(first.node))?.appliedIndex ?? 0) >= target, "the restarted node to catch up");
    const back = direct(first.node);
    try {
      for (const k of ["k0", "k150", "k299"]) assert.equal(await get(back, k, true), acked.get(k), `restarted node has ${k}`);
    } finally {
      await back.close();
    }
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("raft cluster - a follower whose log was compacted away catches up through InstallSnapshot", { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.create(3, { SNAPSHOT_THRESHOLD: "50" });
  const client = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 3000, maxAttempts: 20 });
  try {
    const { node: leader } = await leaderOf(cluster);
    const follower = cluster.nodes.find((n) => n !== leader)!;
    const lastBefore = (await statusOf(follower))!.lastIndex;
    await follower.kill("SIGKILL");
    for (let i = 0; i < 400; i++) await put(client, `s${i}`, `value-${i}`);
    const ls = (await statusOf(leader))!;
    assert.ok(ls.snapshotIndex >= 350, `the leader took snapshots (snapshot at ${ls.snapshotIndex})`);
    // The entries right after the follower's log are gone from the leader: only a snapshot can
    // bring the follower up to date.
    assert.ok(ls.firstIndex > lastBefore + 1, `the leader compacted past the follower's log (first index ${ls.firstIndex}, follower at ${lastBefore})`);
    await follower.start();
    await waitFor(async () => ((await statusOf(follower))?.appliedIndex ?? 0) >= ls.commitIndex, "the follower to catch up");
    const fs = (await statusOf(follower))!;
    assert.ok(fs.snapshotIndex > lastBefore, "the follower holds a snapshot beyond its old log");
    const c = direct(follower);
    try {
      assert.equal(await get(c, "s0", true), "value-0");
      assert.equal(await get(c, "s399", true), "value-399");
    } finally {
      await c.close();
    }
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("raft cluster - a paused old leader that wakes up does not disrupt the cluster", { timeout: 180_000 }, async () => {
  // Long timeouts: on a loaded machine a stalled event loop must not pass for a real election.
  const cluster = await TestCluster.create(3, { ELECTION_TIMEOUT_MS: "800", HEARTBEAT_INTERVAL_MS: "100" });
  const client = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 3000, maxAttempts: 20 });
  try {
    const old = await leaderOf(cluster);
    await put(client, "before", "1");
    await old.node.kill("SIGSTOP");
    const fresh = await waitFor(async () => {
      const others = cluster.nodes.filter((n) => n !== old.node);
      const st = await Promise.all(others.map(statusOf));
      const l = st.find((s) => s?.role === "leader");
      return l && st.every((s) => s?.leader === l.nodeId) ? l : null;
    }, "the others to elect a new leader");
    // A write is not resent after a timeout (it may have applied), so write through the others.
    const others = new DsyncClient({ nodes: cluster.nodes.filter((n) => n !== old.node).map((n) => n.clientAddr), requestTimeoutMs: 3000, maxAttempts: 20 });
    try {
      await put(others, "during", "2");
    } finally {
      await others.close();
    }
    await old.node.kill("SIGCONT");
    // Let the old leader run for many election timeouts; the leader and term must not change.
    await new Promise((r) => setTimeout(r, 2000));
    const after = await leaderOf(cluster, "the cluster to settle");
    assert.equal(after.node.spec.id, fresh.nodeId, "the new leader keeps its leadership");
    assert.equal(after.status.term, fresh.term, "no election was triggered by the woken node");
    await put(client, "after", "3");
    const c = direct(old.node);
    try {
      await waitFor(async () => (await get(c, "after", true)) === "3", "the old leader to follow the new one");
      assert.equal(await get(c, "during", true), "2");
    } finally {
      await c.close();
    }
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("raft cluster - /health turns 503 on a node cut off from its quorum", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  try {
    await leaderOf(cluster);
    const [survivor, a, b] = cluster.nodes as [DaemonProcess, DaemonProcess, DaemonProcess];
    assert.equal((await fetch(`${survivor.httpUrl}/health`)).status, 200);
    await a.kill("SIGKILL");
    await b.kill("SIGKILL");
    const res = await waitFor(async () => {
      const r = await fetch(`${survivor.httpUrl}/health`);
      return r.status === 503 ? r : null;
    }, "the lone node to stop serving");
    const body = (await res.json()) as { status: string; leader: string | null };
    assert.equal(body.status, "not_serving");
    assert.equal(body.leader, null);
  } finally {
    await cluster.destroy();
  }
});

test("raft cluster - SIGTERM on the leader hands leadership over and exits cleanly", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3, { LOG_LEVEL: "info" });
  const client = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 3000, maxAttempts: 20 });
  try {
    const first = await leaderOf(cluster);
    await put(client, "x", "1");
    const exited = new Promise<number | null>((r) => first.node.child!.once("exit", (code) => r(code)));
    first.node.child!.kill("SIGTERM");
    assert.equal(await exited, 0, first.node.output);
    assert.match(first.node.output, /handed over leadership before stopping/);
    assert.match(first.node.output, /"stillLeading":\[\]/, "leadership of every group it led moved before the node stopped");
    const second = await leaderOf(cluster, "the successor");
    assert.notEqual(second.node.spec.id, first.node.spec.id);
    assert.equal(await get(client, "x"), "1");
  } finally {
    await client.close();
    await cluster.destroy();
  }
});
