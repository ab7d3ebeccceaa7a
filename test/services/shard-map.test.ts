/**
 * Group 0's shard map (pure): where partitions' replicas live, the moves a node joining or
 * leaving causes, and the jobs' life cycle, as every replica of group 0 applies them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ShardMap, isShardCommand, type ShardCommand } from "../../src/services/cluster/machine/shard-map.ts";
import { ClusterMachine } from "../../src/services/cluster/machine/cluster-machine.ts";
import { encodeCommand } from "../../src/services/command-codec.ts";
import { foundingGroup0, group0VoterTarget } from "../../src/services/cluster/machine/voter-target.ts";

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `node_${i}`);

/** Applies `cmd` and returns its result. */
function run(m: ShardMap, cmd: ShardCommand, now = 1000): unknown {
  return m.apply(cmd, now);
}

/** Finishes every job the way the move driver would: done, one per partition at a time. */
function finishAll(m: ShardMap): number {
  let n = 0;
  for (let guard = 0; guard < 1000; guard++) {
    const running = m.runningJobs();
    if (running.length === 0) return n;
    for (const j of running) {
      run(m, { op: "job.done", id: j.id });
      n++;
    }
  }
  throw new Error("jobs never finished");
}

function replicasPerNode(m: ShardMap): Map<string, number> {
  const load = new Map<string, number>();
  for (let p = 1; p <= m.partitionCount; p++) for (const id of m.partition(p)!.replicas) load.set(id, (load.get(id) ?? 0) + 1);
  return load;
}

test("shard map - a new 6-node cluster: 3 replicas per partition on distinct nodes, balanced, founders bootstrap their partitions", () => {
  const m = ShardMap.create(ids(6), 12, 3);
  assert.equal(m.rf, 3);
  for (let p = 1; p <= 12; p++) {
    const r = m.partition(p)!.replicas;
    assert.equal(new Set(r).size, 3);
    assert.ok(r.includes(m.partition(p)!.leader));
    for (const id of ids(6)) assert.deepEqual(m.bootstrapVoters(p, id), r.includes(id) ? r : []);
  }
  assert.deepEqual([...replicasPerNode(m).values()], [6, 6, 6, 6, 6, 6]);
  assert.deepEqual([...m.load().values()].map((l) => l.leaders), [2, 2, 2, 2, 2, 2]);
  // Fewer nodes than the factor: every node holds every partition.
  assert.equal(ShardMap.create(ids(2), 4, 3).rf, 2);
});

test("shard map - a node added and rebalanced: moves only onto it, one job per partition at a time, map balanced when done", () => {
  const m = ShardMap.create(ids(6), 12, 3);
  const before = m.image().partitions;
  run(m, { op: "shards.node", id: "node_6" });
  const r = run(m, { op: "shards.rebalance" }) as { jobs: { partition: number; from: string | null; to: string; step: string }[] };
  assert.ok(r.jobs.length >= 5 && r.jobs.length <= 6, `36 replicas over 7 nodes: 5 or 6 move onto the new node, got ${r.jobs.length}`);
  assert.ok(r.jobs.every((j) => j.to === "node_6" && j.from !== null));
  // While jobs run, the new node must open those partitions; the map itself has not changed yet.
  assert.deepEqual(m.image().partitions, before);
  assert.deepEqual(m.partitionsOn("node_6"), [...new Set(r.jobs.map((j) => j.partition))].sort((a, b) => a - b));
  // A second rebalance plans nothing more: queued jobs count as done.
  assert.deepEqual(m.plan(), []);
  finishAll(m);
  const load = replicasPerNode(m);
  assert.ok(Math.max(...load.values()) - Math.min(...load.values()) <= 1, `balanced within ±1: ${JSON.stringify([...load])}`);
  const leaders = [...m.load().values()].map((l) => l.leaders);
  assert.ok(Math.max(...leaders) - Math.min(...leaders) <= 1, `leaders balanced: ${leaders}`);
  assert.deepEqual(m.plan(), []);
});

test("shard map - decommission: only the leaving node's replicas move, never below the factor; then it can be forgotten", () => {
  const m = ShardMap.create(ids(7), 14, 3);
  const held = m.partitionsOn("node_2");
  const r = run(m, { op: "shards.leave", id: "node_2" }) as { jobs: { partition: number; from: string | null; to: string }[] };
  assert.equal(m.node("node_2")!.state, "leaving");
  assert.deepEqual(r.jobs.map((j) => j.partition).sort((a, b) => a - b), held);
  assert.ok(r.jobs.every((j) => j.from === "node_2" && j.to !== "node_2"));
  assert.deepEqual(run(m, { op: "shards.forget", id: "node_2" }), { error: "node_2 still holds replicas" });
  finishAll(m);
  assert.deepEqual(m.partitionsOn("node_2"), []);
  for (let p = 1; p <= 14; p++) assert.equal(m.partition(p)!.replicas.length, 3);
  assert.deepEqual(run(m, { op: "shards.forget", id: "node_2" }), { forgotten: true });
  assert.equal(m.node("node_2"), undefined);
  // A leave that would leave fewer active nodes than the factor is refused.
  const small = ShardMap.create(ids(3), 6, 3);
  assert.match(String((run(small, { op: "shards.leave", id: "node_0" }) as { error: string }).error), /add a node first/);
  assert.equal(small.node("node_0")!.state, "active");
});

test("shard map - job steps: progress recorded, a cancel keeps the map, the next queued job of the partition starts", () => {
  const m = ShardMap.create(ids(4), 4, 3);
  run(m, { op: "shards.node", id: "node_4" });
  run(m, { op: "shards.leave", id: "node_0" });
  run(m, { op: "shards.leave", id: "node_1" });
  const perPartition = new Map<number, number>();
  for (const j of m.activeJobs()) perPartition.set(j.partition, (perPartition.get(j.partition) ?? 0) + 1);
  const p = [...perPartition].find(([, n]) => n > 1)?.[0];
  assert.ok(p !== undefined, "some partition loses two replicas and has two jobs");
  const [first, second] = m.activeJobs().filter((j) => j.partition === p);
  assert.equal(first!.step, "adding");
  assert.equal(second!.step, "queued");
  assert.deepEqual(m.runningJobs().filter((j) => j.partition === p).map((j) => j.id), [first!.id]);
  run(m, { op: "job.step", id: first!.id, step: "catching-up", caughtUp: 40, target: 100 }, 2000);
  const stepped = m.jobs().find((j) => j.id === first!.id)!;
  assert.deepEqual([stepped.step, stepped.caughtUp, stepped.target, stepped.updatedAt], ["catching-up", 40, 100, 2000]);
  const map = JSON.stringify(m.image().partitions);
  run(m, { op: "job.cancel", id: first!.id, note: "target left" }, 3000);
  assert.equal(JSON.stringify(m.image().partitions), map);
  assert.equal(m.jobs().find((j) => j.id === second!.id)!.step, "adding");
  // A finished job takes no more steps.
  assert.deepEqual(run(m, { op: "job.step", id: first!.id, step: "removing" }), { ok: false });
  assert.deepEqual(run(m, { op: "job.done", id: first!.id }), { ok: false });
});

test("shard map - group 0 keeps it: the same commands give the same map on every replica, and it survives a snapshot", () => {
  const build = (): ClusterMachine => {
    const c = new ClusterMachine();
    let i = 1;
    const apply = (cmd: object): unknown => c.apply({ index: i++, term: 1, data: encodeCommand(cmd) });
    apply({ op: "queue.layout", layout: { partitions: 12, virtualNodes: 10, members: ids(6), replicationFactor: 3 } });
    apply({ op: "shards.node", id: "node_6", now: 5 });
    apply({ op: "shards.rebalance", now: 6 });
    apply({ op: "job.done", id: 1, now: 7 });
    return c;
  };
  const a = build();
  const b = build();
  assert.deepEqual(a.shards!.image(), b.shards!.image());
  assert.equal(a.shards!.jobs()[0]!.step, "done");
  const restored = new ClusterMachine();
  restored.restore(a.snapshot());
  assert.deepEqual(restored.shards!.image(), a.shards!.image());
  // A layout from before replication factors: every member holds every partition.
  const old = new ClusterMachine();
  old.apply({ index: 1, term: 1, data: encodeCommand({ op: "queue.layout", layout: { partitions: 4, virtualNodes: 10, members: ids(4) } }) });
  assert.equal(old.shards!.rf, 4);
  // Malformed commands are not shard commands (they fall through to the KV machine, which refuses them).
  assert.equal(isShardCommand({ op: "job.step", id: 1, step: "teleporting" }), false);
  assert.equal(isShardCommand({ op: "shards.leave", id: 42 }), false);
  assert.equal(isShardCommand({ op: "job.done", id: -1 }), false);
});

test("shard map - group 0 has 3 or 5 voters; the other founders are learners", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 100].map(group0VoterTarget), [1, 2, 3, 3, 5, 5, 5, 5]);
  assert.deepEqual(foundingGroup0(["c", "a", "b", "d"]), { voters: ["a", "b", "c"], learners: ["d"] });
  assert.deepEqual(foundingGroup0(ids(7)), { voters: ids(5), learners: ["node_5", "node_6"] });
});
