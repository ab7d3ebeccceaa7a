/**
 * Scale out on a real 6-node cluster (fsync on): every queue partition on 3 of the nodes with
 * leaders spread; a 7th node added under queue load and partitions rebalanced onto it; a founder
 * decommissioned. The fault campaign's queue checker judges the messages (no acknowledged one
 * lost, no phantom), and a monitor reads the shard map all along: a partition being moved never
 * has fewer voters than the replication factor, and every job runs to completion.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Op, type AdminMemberReply, type AdminRemoveReply, type AdminShardsReply } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { CacheClient } from "../../src/client/cache.ts";
import { QueueClient } from "../../src/client/queues.ts";
import { TestCluster, waitFor, type DaemonProcess } from "../helpers/daemon.ts";
import { QueueWorkload } from "../chaos/workloads/queue.ts";
import { Prng } from "../sim/prng.ts";

/** Polls the shard map and keeps what a move must never break. */
class ShardMonitor {
  /** Fewest voters seen in a partition that had a leader, and where. */
  fewestVoters = { count: Infinity, partition: 0, at: "" };
  /** Job id → the steps it was seen in. */
  readonly steps = new Map<number, Set<string>>();
  /** Catch-up progress seen (caughtUp < target): the jobs show their progress. */
  progressSeen = 0;
  samples = 0;
  #stopped = false;
  #loop: Promise<void> | null = null;

  constructor(readonly client: DsyncClient) {}

  start(): void {
    this.#loop = (async () => {
      while (!this.#stopped) {
        const r = (await this.client.call(Op.ADMIN_SHARDS, {}, { idempotent: true, timeoutMs: 5000 }).catch(() => null)) as AdminShardsReply | null;
        if (r) this.observe(r);
        await new Promise((res) => setTimeout(res, 200));
      }
    })();
  }

  observe(r: AdminShardsReply): void {
    this.samples++;
    for (const p of r.partitions) {
      if (p.leader !== null && p.voters.length < this.fewestVoters.count) this.fewestVoters = { count: p.voters.length, partition: p.partition, at: `voters ${p.voters.join(",")}, learners ${p.learners.join(",")}` };
      const c = p.cache;
      if (c !== null && c.leader !== null && c.voters.length < this.fewestVoters.count) this.fewestVoters = { count: c.voters.length, partition: p.partition, at: `cache partition: voters ${c.voters.join(",")}, learners ${c.learners.join(",")}` };
    }
    for (const j of r.jobs) {
      const seen = this.steps.get(j.id) ?? new Set();
      seen.add(j.step);
      this.steps.set(j.id, seen);
      if (j.step === "catching-up" && j.target > 0) this.progressSeen++;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

/** Copies every node's log next to the test's temp files, for a failure's explanation. */
async function keepLogs(cluster: TestCluster): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-scale-logs-"));
  await Promise.all(cluster.nodes.map((n) => writeFile(path.join(dir, `${n.spec.id}.log`), n.output)));
  return dir;
}

const shardsOf = async (c: DsyncClient): Promise<AdminShardsReply> => (await c.call(Op.ADMIN_SHARDS, {}, { idempotent: true, timeoutMs: 10_000 })) as AdminShardsReply;

test("scale out - 6 nodes, 3 replicas per partition, leaders spread; a 7th node added and a founder decommissioned under queue load: nothing lost, moves complete, never fewer than 3 voters", { timeout: 420_000 }, async (t) => {
  const cluster = await TestCluster.create(6);
  const admin = new DsyncClient({ nodes: cluster.clientAddrs.slice(1), requestTimeoutMs: 10_000, maxAttempts: 20 });
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-scale-"));
  const load = new QueueWorkload({ producers: 3, consumers: 3, subscribers: 2, queues: 8, sendAttempts: 5 });
  const monitor = new ShardMonitor(admin);
  try {
    await waitFor(async () => (await shardsOf(admin)).partitions.every((p) => p.leader !== null && p.state === "ok"), "every partition to have a leader", 90_000);
    const first = await shardsOf(admin);
    assert.equal(first.replicationFactor, 3);
    assert.equal(first.partitions.length, 12, "two partitions per founding node");
    for (const p of first.partitions) assert.equal(new Set(p.replicas).size, 3, `partition ${p.partition} has 3 replicas`);
    assert.deepEqual(first.nodes.map((n) => n.replicas), [6, 6, 6, 6, 6, 6]);
    // The balancer hands each partition to its preferred leader: 2 per node.
    await waitFor(async () => {
      const counts = new Map<string, number>();
      for (const p of (await shardsOf(admin)).partitions) if (p.leader) counts.set(p.leader, (counts.get(p.leader) ?? 0) + 1);
      return counts.size === 6 && Math.max(...counts.values()) - Math.min(...counts.values()) <= 1;
    }, "leaders spread within ±1 over the six nodes", 60_000);
    const status = (await admin.call(Op.STATUS, {})) as { voters: string[]; learners: string[] };
    assert.equal(status.voters.length, 5, "group 0 has 5 voters");
    assert.equal(status.learners.length, 1, "and the sixth node follows it as a learner");

    // Cache values (write-through, embedded store: they live in the cache partitions' logs) must
    // move with their partitions.
    const cache = new CacheClient(admin);
    const cached = Array.from({ length: 60 }, (_, i) => [`ck${i}`, `value ${i}`] as const);
    for (const [k, v] of cached) await cache.set(k, v);
    // The shard map gathers each node's groups over the peer links (a short timeout per peer, so
    // a loaded node can be missing from one view): ask until one view has all of them.
    await waitFor(async () => (await shardsOf(admin)).partitions.every((p) => p.cache !== null), "every partition to have a cache partition beside it", 30_000);

    const ctx = { addrs: cluster.clientAddrs, rng: new Prng(16), dir };
    await load.start(ctx);
    monitor.start();
    await new Promise((r) => setTimeout(r, 3000));

    const joiner = await cluster.addNode("node_6", { JOIN: "true" });
    const added = (await admin.call(Op.ADMIN_ADD_NODE, { nodeId: "node_6", peerAddr: `127.0.0.1:${joiner.spec.peerPort}` }, { timeoutMs: 90_000 })) as AdminMemberReply;
    assert.ok(added.jobs.length >= 5, `36 replicas over 7 nodes: 5 or 6 move onto node_6 (got ${added.jobs.length})`);
    await waitFor(async () => (await shardsOf(admin)).jobs.every((j) => j.step === "done"), "the moves onto node_6 to finish", 180_000);
    const grown = await shardsOf(admin);
    const perNode = grown.nodes.map((n) => n.replicas);
    assert.ok(Math.max(...perNode) - Math.min(...perNode) <= 1, `replicas balanced over 7 nodes: ${perNode}`);
    // Cache homes follow: the new node ends up home of the cache partitions it is preferred leader of.
    await waitFor(async () => (await shardsOf(admin)).partitions.some((p) => p.cache?.leader === "node_6"), "node_6 to be a cache home", 60_000);

    const removed = (await admin.call(Op.ADMIN_REMOVE_NODE, { nodeId: "node_0" }, { timeoutMs: 15_000 })) as AdminRemoveReply;
    assert.equal(removed.removed, false, "node_0 holds replicas: it leaves once they moved");
    assert.ok(removed.jobs.every((j) => j.from === "node_0"));
    await waitFor(async () => !(await shardsOf(admin)).nodes.some((n) => n.id === "node_0"), "node_0 to leave", 180_000);
    const shrunk = await shardsOf(admin);
    for (const p of shrunk.partitions) assert.ok(p.replicas.length === 3 && !p.replicas.includes("node_0"), `partition ${p.partition}: ${p.replicas}`);
    // One view in which every cache partition has a home (a later one may catch a leadership
    // transfer under way, with no leader to report the voters).
    const homed = await waitFor(async () => {
      const view = await shardsOf(admin);
      return view.partitions.every((p) => p.cache !== null && p.cache.leader !== null) ? view : null;
    }, "every cache partition to have a home", 60_000);
    for (const p of homed.partitions) {
      assert.deepEqual([...p.cache!.voters].sort(), p.replicas, `cache partition ${p.partition} is on its queue partition's replicas`);
    }
    for (const [k, v] of cached) assert.equal(await cache.getString(k), v, `cache key ${k} kept its value through the moves`);
    // CACHE_STATE names the home through any node, one holding the key's partition or not.
    for (const [k] of cached.slice(0, 12)) {
      await waitFor(async () => {
        const st = await cache.state(k);
        const placed = (await shardsOf(admin)).partitions.find((p) => p.partition === st.partition);
        return st.home !== null && st.home === placed?.cache?.leader;
      }, `CACHE_STATE of ${k} to name its partition's cache home`, 30_000);
    }
    await new Promise((r) => setTimeout(r, 2000));

    await load.stop();
    await monitor.stop();
    await load.final(ctx);
    const report = load.check();
    t.diagnostic(report.lines.join("\n"));
    t.diagnostic(`shard map sampled ${monitor.samples} times; ${monitor.steps.size} jobs; catch-up progress seen ${monitor.progressSeen} times`);
    assert.ok(report.ok, report.lines.join("\n"));
    assert.ok(monitor.fewestVoters.count >= 3, `a partition had ${monitor.fewestVoters.count} voters (partition ${monitor.fewestVoters.partition}: ${monitor.fewestVoters.at})`);
    const jobs = (await shardsOf(admin)).jobs;
    assert.ok(jobs.length >= added.jobs.length + removed.jobs.length);
    assert.ok(jobs.every((j) => j.step === "done"), `every job done: ${jobs.map((j) => `${j.id}:${j.step}`).join(" ")}`);
    assert.ok([...monitor.steps.values()].some((s) => s.has("catching-up") || s.has("promoting") || s.has("removing")), "the monitor saw jobs between their first and last step");
  } finally {
    await monitor.stop();
    await load.close();
    await admin.close();
    await cluster.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

/** Enqueues `n` messages spread over `queues` queues, each acknowledged; returns their bodies by queue. */
async function fill(client: DsyncClient, queues: number, n: number): Promise<Map<string, Set<string>>> {
  const q = new QueueClient(client);
  const sent = new Map<string, Set<string>>();
  for (let i = 0; i < n; i++) {
    const queue = `sq${i % queues}`;
    await q.enqueue(queue, `m${i}`, { dedupId: `m${i}` });
    sent.set(queue, (sent.get(queue) ?? new Set()).add(`m${i}`));
  }
  return sent;
}

/** Consumes and acks every queue of `sent` until each yielded all its bodies (or 60 s passed). */
async function drainAll(client: DsyncClient, sent: Map<string, Set<string>>): Promise<string[]> {
  const q = new QueueClient(client);
  const missing: string[] = [];
  for (const [queue, bodies] of sent) {
    const left = new Set(bodies);
    const deadline = Date.now() + 60_000;
    while (left.size > 0 && Date.now() < deadline) {
      const got = await q.consume(queue, { max: 100, waitMs: 500 });
      for (const m of got) left.delete(new TextDecoder().decode(m.payload));
      if (got.length > 0) await q.ack(queue, got.map((m) => m.receipt));
    }
    missing.push(...[...left].map((b) => `${queue}/${b}`));
  }
  return missing;
}

test("scale out - a node SIGKILLed and left dead past REPLACE_DEAD_AFTER_MS: its partitions get 3 replicas on the other nodes, nothing lost", { timeout: 300_000 }, async () => {
  const cluster = await TestCluster.create(4, { REPLACE_DEAD_AFTER_MS: "4000", QUEUE_PARTITIONS: "8" });
  const client = new DsyncClient({ nodes: cluster.clientAddrs.slice(0, 2), requestTimeoutMs: 10_000, maxAttempts: 30 });
  try {
    await waitFor(async () => (await shardsOf(client)).partitions.every((p) => p.leader !== null && p.state === "ok"), "every partition to have a leader", 90_000);
    const sent = await fill(client, 16, 200);
    // node_2 is a voter of group 0 and holds 6 of the 8 partitions.
    const dead = cluster.nodes[2]!;
    const held = (await shardsOf(client)).nodes.find((n) => n.id === "node_2")!.replicas;
    assert.ok(held > 0);
    await dead.kill("SIGKILL");
    await waitFor(
      async () => {
        const s = await shardsOf(client);
        return !s.nodes.some((n) => n.id === "node_2") && s.partitions.every((p) => p.state === "ok" && p.voters.length === 3 && !p.voters.includes("node_2"));
      },
      "node_2's replicas re-created on the other nodes and node_2 removed",
      180_000,
    );
    const s = await shardsOf(client);
    assert.ok(s.jobs.filter((j) => j.reason === "replace").length === held, `one replace job per replica node_2 held (${held})`);
    await waitFor(async () => ((await client.call(Op.STATUS, {})) as { voters: string[] }).voters.slice().sort().join() === "node_0,node_1,node_3", "node_3 to take node_2's vote in group 0");
    assert.deepEqual(await drainAll(client, sent), [], "every acknowledged message is still there");
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("scale out - the node running a move is killed in the middle of it: the move resumes under the partition's next leader and completes; never fewer than 2 live replicas", { timeout: 300_000 }, async () => {
  const cluster = await TestCluster.create(5, { QUEUE_PARTITIONS: "10" });
  const byId = (id: string): DaemonProcess => cluster.nodes.find((n) => n.spec.id === id)!;
  /** Nodes killed by the test: not live replicas. */
  const down = new Set<string>();
  const client = new DsyncClient({ nodes: cluster.clientAddrs.slice(1, 3), requestTimeoutMs: 10_000, maxAttempts: 30 });
  // Its own connection: a watcher's timed-out call drops its connection, failing calls sharing it.
  const watcher = new DsyncClient({ nodes: cluster.clientAddrs.slice(1, 3), requestTimeoutMs: 10_000, maxAttempts: 30 });
  let fewestLive = Infinity;
  let stopped = false;
  const watch = (async () => {
    while (!stopped) {
      const r = (await watcher.call(Op.ADMIN_SHARDS, {}, { idempotent: true, timeoutMs: 5000 }).catch(() => null)) as AdminShardsReply | null;
      for (const p of r?.partitions ?? []) if (p.leader !== null) fewestLive = Math.min(fewestLive, p.voters.filter((v) => !down.has(v)).length);
      await new Promise((res) => setTimeout(res, 150));
    }
  })();
  try {
    await waitFor(async () => (await shardsOf(client)).partitions.every((p) => p.leader !== null && p.state === "ok"), "every partition to have a leader", 90_000);
    const sent = await fill(client, 20, 200);
    // The node the moves go to is paused: they stall while catching up, so one can be caught mid-way.
    const leaving = "node_0";
    // Neither group 0's leader (the decommission must commit) nor a node this test's clients may
    // be connected to (node_1, node_2: their calls would hang on it).
    const group0Leader = ((await client.call(Op.STATUS, {})) as { leader: string }).leader;
    const target = ["node_3", "node_4"].find((id) => id !== group0Leader)!;
    // Paused, not dead: it counts as a live replica (its process and data are there).
    await byId(target).kill("SIGSTOP");
    const r = (await client.call(Op.ADMIN_REMOVE_NODE, { nodeId: leaving }, { timeoutMs: 15_000 })) as AdminRemoveReply;
    const stalled = r.jobs.filter((j) => j.to === target);
    assert.ok(stalled.length > 0, `some moves go to ${target}`);
    let runner = "";
    let partition = 0;
    await waitFor(async () => {
      const s = await shardsOf(client);
      for (const j of s.jobs) {
        const p = s.partitions.find((x) => x.partition === j.partition)!;
        if (j.to === target && j.step === "catching-up" && p.leader !== null && p.leader !== target && p.learners.includes(target)) {
          runner = p.leader;
          partition = p.partition;
          return true;
        }
      }
      return false;
    }, `a move onto ${target} to be catching up`, 60_000);
    // Kill the node running that move (the partition's leader) in the middle of it.
    await byId(runner).kill("SIGKILL");
    down.add(runner);
    await waitFor(async () => {
      const p = (await shardsOf(client)).partitions.find((x) => x.partition === partition)!;
      return p.leader !== null && p.leader !== runner;
    }, `partition ${partition} to elect a new leader`, 60_000);
    await byId(target).kill("SIGCONT");
    await byId(runner).start();
    down.delete(runner);
    await waitFor(async () => !(await shardsOf(client)).nodes.some((n) => n.id === leaving), `${leaving} to leave once its moves complete`, 180_000);
    const s = await shardsOf(client);
    assert.ok(s.jobs.filter((j) => r.jobs.some((x) => x.id === j.id)).every((j) => j.step === "done"), "every move of the decommission completed");
    await waitFor(async () => (await shardsOf(client)).partitions.every((p) => p.state === "ok" && p.voters.length === 3), "every partition back to 3 live voters", 60_000);
    stopped = true;
    await watch;
    assert.ok(fewestLive >= 2, `a partition had only ${fewestLive} live voter(s)`);
    assert.deepEqual(await drainAll(client, sent), [], "every acknowledged message is still there");
  } catch (err) {
    throw new Error(`${(err as Error).message}\n(node logs: ${await keepLogs(cluster)})`, { cause: err });
  } finally {
    stopped = true;
    await watch;
    await client.close();
    await watcher.close();
    await cluster.destroy();
  }
});
