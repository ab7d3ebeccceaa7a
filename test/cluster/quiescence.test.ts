/**
 * Quiet groups on real daemons: an idle cluster's groups all go quiet (no heartbeats, only the
 * nodes' liveness beats), and the failures that heartbeats used to reveal are still seen. A
 * paused quiet leader is replaced and, once resumed, steps down (one leader, the write made
 * meanwhile readable through it); a killed quiet leader is replaced; a restarted node rejoins and
 * the groups go quiet again. Bounds are generous waits, not timings (bench:failover times them).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Op, type NodeStatus } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { TestCluster, waitFor, type DaemonProcess } from "../helpers/daemon.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: unknown): string => new TextDecoder().decode(b as Uint8Array);

/** Each group's dsync_raft_quiesced and dsync_raft_is_leader on one node, by group label. */
async function raftGauges(d: DaemonProcess): Promise<{ quiet: Map<string, number>; leader: Map<string, number> }> {
  const text = await (await fetch(`${d.httpUrl}/metrics`)).text();
  const read = (name: string): Map<string, number> =>
    new Map(
      text
        .split("\n")
        .filter((l) => l.startsWith(`${name}{`))
        .map((l) => [/group="(\d+)"/.exec(l)![1]!, Number(l.slice(l.lastIndexOf(" ") + 1))] as const),
    );
  return { quiet: read("dsync_raft_quiesced"), leader: read("dsync_raft_is_leader") };
}

async function allQuiet(nodes: readonly DaemonProcess[]): Promise<boolean> {
  for (const d of nodes) {
    const { quiet } = await raftGauges(d);
    if (quiet.size === 0 || [...quiet.values()].some((v) => v !== 1)) return false;
  }
  return true;
}

async function status(d: DaemonProcess): Promise<NodeStatus> {
  const c = new DsyncClient({ nodes: [d.clientAddr], preferLeader: false, maxAttempts: 1, requestTimeoutMs: 2000 });
  try {
    return (await c.call(Op.STATUS, {}, { idempotent: true })) as NodeStatus;
  } finally {
    await c.close();
  }
}

/** `d`'s STATUS once it names one of `nodes` as group 0's leader (leadership may be moving to its preferred node). */
function statusWithLeader(d: DaemonProcess, nodes: readonly DaemonProcess[]): Promise<NodeStatus> {
  return waitFor(async () => {
    const s = await status(d).catch(() => null);
    return s !== null && nodes.some((n) => n.spec.id === s.leader) ? s : null;
  }, `${d.spec.id} to name a group 0 leader`, 30_000);
}

test("quiescence - quiet groups still notice a paused or killed leader, and go quiet again after", { timeout: 300_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const nodes = cluster.nodes;
  const client = new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 5000, maxAttempts: 40 });
  try {
    // Right after start a node may name a leader it has no address for yet: retry until one takes it.
    await waitFor(async () => (await client.call(Op.KV_PUT, { key: "k", value: enc("v0") }).catch(() => null)) !== null, "a first write", 30_000);
    await waitFor(() => allQuiet(nodes), "every group on every node to go quiet", 60_000);

    // 1. Pause the quiet leader of group 0: the others elect one of their own and take writes.
    const first = await statusWithLeader(nodes[0]!, nodes);
    const paused = nodes.find((d) => d.spec.id === first.leader)!;
    const others = nodes.filter((d) => d !== paused);
    await paused.kill("SIGSTOP");
    let resumed = false;
    try {
      await waitFor(async () => {
        const s = await status(others[0]!).catch(() => null);
        return s !== null && s.leader !== null && s.leader !== paused.spec.id && s.term > first.term;
      }, "a new group 0 leader while the old one is paused", 30_000);
      // (A survivor that has not yet noticed may still redirect to the paused node: retry.)
      const w = new DsyncClient({ nodes: others.map((d) => d.clientAddr), requestTimeoutMs: 2000, maxAttempts: 5 });
      await waitFor(async () => (await w.call(Op.KV_PUT, { key: "k", value: enc("v1") }).catch(() => null)) !== null, "a write while the old leader is paused", 30_000);
      await w.close();
      await paused.kill("SIGCONT");
      resumed = true;
    } finally {
      if (!resumed) await paused.kill("SIGCONT");
    }
    // Resumed, it learns the new term and steps down: one leader of group 0, and a read through it sees v1.
    await waitFor(async () => {
      const leaders = await Promise.all(nodes.map(async (d) => (await raftGauges(d)).leader.get("0") === 1));
      return leaders.filter(Boolean).length === 1 && !leaders[nodes.indexOf(paused)];
    }, "the resumed node to step down (one group 0 leader)", 30_000);
    const viaOld = new DsyncClient({ nodes: [paused.clientAddr], preferLeader: false, requestTimeoutMs: 5000, maxAttempts: 40 });
    assert.equal(dec(((await viaOld.call(Op.KV_GET, { key: "k" }, { idempotent: true })) as { value: unknown }).value), "v1");
    await viaOld.close();

    // 2. Quiet again, then kill the quiet leader: the two left elect one and take writes.
    await waitFor(() => allQuiet(nodes), "every group to go quiet again", 60_000);
    const second = await statusWithLeader(nodes.find((d) => d !== paused)!, nodes);
    const killed = nodes.find((d) => d.spec.id === second.leader)!;
    await killed.kill("SIGKILL");
    const left = nodes.filter((d) => d !== killed);
    const w2 = new DsyncClient({ nodes: left.map((d) => d.clientAddr), requestTimeoutMs: 2000, maxAttempts: 5 });
    await waitFor(async () => (await w2.call(Op.KV_PUT, { key: "k", value: enc("v2") }).catch(() => null)) !== null, "a write after the kill", 30_000);
    await w2.close();
    const after = await status(left[0]!);
    assert.notEqual(after.leader, killed.spec.id);
    assert.ok(after.term > second.term, `a new term (${second.term} → ${after.term})`);

    // 3. The killed node restarts and catches up; the groups go quiet again with it.
    await killed.start();
    await waitFor(() => allQuiet(nodes), "every group to go quiet with the restarted node", 60_000).catch(async (e: unknown) => {
      const awake = await Promise.all(nodes.map(async (d) => `${d.spec.id}: ${[...(await raftGauges(d)).quiet].filter(([, v]) => v !== 1).map(([g]) => g).join(",")}`));
      const text = await Promise.all(nodes.map(async (d) => (await (await fetch(`${d.httpUrl}/metrics`)).text()).split("\n").filter((l) => /group="(2|5)"/.test(l) && /raft_(term|is_leader|commit|applied)/.test(l)).join("\n")));
      const logs = nodes.map((d) => d.output.split("\n").slice(-15).join("\n"));
      throw new Error(`${(e as Error).message}; awake groups: ${awake.join("; ")}\n${text.join("\n")}\n${logs.join("\n---\n")}`);
    });
    const viaRestarted = new DsyncClient({ nodes: [killed.clientAddr], preferLeader: false, requestTimeoutMs: 5000, maxAttempts: 40 });
    assert.equal(dec(((await viaRestarted.call(Op.KV_GET, { key: "k" }, { idempotent: true })) as { value: unknown }).value), "v2");
    await viaRestarted.close();
  } finally {
    await client.close();
    await cluster.destroy();
  }
});
