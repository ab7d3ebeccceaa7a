/**
 * The placement of queue partitions (pure): replicas on distinct nodes (and zones), balanced
 * within ±1 replica and ±1 leadership per node, and minimal movement when a node joins or leaves,
 * from 3 to 101 nodes and up to 1,000 partitions.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PlacementError, movedReplicas, place, type Placement, type PlacementNode } from "../../src/services/cluster/machine/placement.ts";

const nodes = (n: number, zones = 0): PlacementNode[] => Array.from({ length: n }, (_, i) => ({ id: `n${String(i).padStart(3, "0")}`, ...(zones > 0 && { zone: `z${i % zones}` }) }));

interface Shape {
  readonly replicasSpread: number;
  readonly leadersSpread: number;
  readonly maxOverMean: number;
}

/** Checks the invariants and returns the spread of replicas and leaders per node. */
function check(pl: Placement, ns: readonly PlacementNode[], partitions: number, rf: number): Shape {
  assert.equal(pl.length, partitions);
  const ids = new Set(ns.map((n) => n.id));
  const replicas = new Map([...ids].map((id) => [id, 0]));
  const leaders = new Map([...ids].map((id) => [id, 0]));
  for (const p of pl) {
    assert.equal(new Set(p.replicas).size, rf, `partition ${p.partition} has ${rf} distinct replicas`);
    for (const id of p.replicas) {
      assert.ok(ids.has(id), `partition ${p.partition} on a node that is not there: ${id}`);
      replicas.set(id, replicas.get(id)! + 1);
    }
    assert.ok(p.replicas.includes(p.leader), `partition ${p.partition}'s leader is one of its replicas`);
    leaders.set(p.leader, leaders.get(p.leader)! + 1);
  }
  const spread = (m: Map<string, number>): number => Math.max(...m.values()) - Math.min(...m.values());
  const mean = (partitions * rf) / ids.size;
  return { replicasSpread: spread(replicas), leadersSpread: spread(leaders), maxOverMean: Math.max(...replicas.values()) / mean };
}

test("placement - fresh: balanced within ±1 replica and ±1 leader per node, from 3 to 100 nodes", () => {
  for (const [n, partitions] of [[3, 6], [3, 100], [5, 10], [7, 64], [10, 256], [100, 1000]] as const) {
    const s = check(place(nodes(n), partitions, 3), nodes(n), partitions, 3);
    assert.ok(s.replicasSpread <= 1, `${n} nodes, ${partitions} partitions: replicas per node spread ${s.replicasSpread}`);
    assert.ok(s.leadersSpread <= 1, `${n} nodes, ${partitions} partitions: leaders per node spread ${s.leadersSpread}`);
  }
});

test("placement - adding the n-th node moves about 1/n of the replicas, all onto it; removing one moves only its replicas", (t) => {
  for (const [n, partitions] of [[3, 12], [5, 60], [10, 256], [100, 1000]] as const) {
    const before = place(nodes(n), partitions, 3);
    const grown = place(nodes(n + 1), partitions, 3, before);
    const s = check(grown, nodes(n + 1), partitions, 3);
    const moved = movedReplicas(before, grown);
    const total = partitions * 3;
    const ideal = Math.floor(total / (n + 1));
    const newcomer = nodes(n + 1)[n]!.id;
    const onNewcomer = grown.filter((p) => p.replicas.includes(newcomer)).length;
    assert.equal(moved, onNewcomer, `${n}→${n + 1}: every moved replica went to the new node`);
    assert.ok(moved >= ideal && moved <= ideal + 1, `${n}→${n + 1}: moved ${moved}, ideal ${ideal}`);
    assert.ok(s.replicasSpread <= 1 && s.leadersSpread <= 1, `${n}→${n + 1}: spread replicas ${s.replicasSpread}, leaders ${s.leadersSpread}`);
    const leadersChanged = grown.filter((p, i) => p.leader !== before[i]!.leader).length;

    // Remove a founder: only its replicas move.
    const gone = nodes(n + 1)[0]!.id;
    const rest = nodes(n + 1).filter((x) => x.id !== gone);
    const shrunk = place(rest, partitions, 3, grown);
    const s2 = check(shrunk, rest, partitions, 3);
    const held = grown.filter((p) => p.replicas.includes(gone)).length;
    assert.equal(movedReplicas(grown, shrunk), held, `${n + 1}→${n}: only the removed node's ${held} replicas moved`);
    assert.ok(s2.replicasSpread <= 1 && s2.leadersSpread <= 1, `${n + 1}→${n}: spread replicas ${s2.replicasSpread}, leaders ${s2.leadersSpread}`);
    t.diagnostic(`${n}→${n + 1} nodes, ${partitions} partitions × 3: moved ${moved} of ${total} replicas (${((moved / total) * 100).toFixed(1)}%, ideal 1/${n + 1} = ${((1 / (n + 1)) * 100).toFixed(1)}%), leaders changed ${leadersChanged}; ${n + 1}→${n} (founder removed): moved ${held}, only its own`);
  }
});

test("placement - the same inputs give the same placement (every replica of group 0 computes it)", () => {
  const a = place(nodes(10), 256, 3);
  const b = place([...nodes(10)].reverse(), 256, 3);
  assert.deepEqual(a, b);
  assert.deepEqual(place(nodes(11), 256, 3, a), place(nodes(11), 256, 3, b));
});

test("placement - zones: a partition's replicas land in distinct zones while there are enough", () => {
  for (const [n, zones] of [[6, 3], [9, 3], [12, 4]] as const) {
    const pl = place(nodes(n, zones), 120, 3);
    const zoneOf = new Map(nodes(n, zones).map((x) => [x.id, x.zone!]));
    for (const p of pl) assert.equal(new Set(p.replicas.map((id) => zoneOf.get(id))).size, 3, `${n} nodes in ${zones} zones: partition ${p.partition} spans 3 zones`);
    const s = check(pl, nodes(n, zones), 120, 3);
    assert.ok(s.replicasSpread <= 1);
  }
});

test("placement - impossible requests are refused with a clear error", () => {
  assert.throws(() => place(nodes(2), 4, 3), (e: Error) => e instanceof PlacementError && /needs at least 3 nodes/.test(e.message));
  assert.throws(() => place([], 4, 1), PlacementError);
  assert.throws(() => place([{ id: "a" }, { id: "a" }], 4, 1), /distinct/);
});
