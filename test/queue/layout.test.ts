import { test } from "node:test";
import assert from "node:assert/strict";
import { PartitionMap, isQueueLayout } from "../../src/services/queue/machine/layout.ts";

const names = Array.from({ length: 10_000 }, (_, i) => `orders-${i}`);

function load(map: PartitionMap): number[] {
  const counts = new Array<number>(map.layout.partitions).fill(0);
  for (const n of names) counts[map.partitionOf(n) - 1]!++;
  return counts;
}

test("queue layout - 10,000 queue names spread over the partitions; the max/mean load ratio is reported", (t) => {
  for (const partitions of [6, 12, 32]) {
    const counts = load(new PartitionMap({ partitions, virtualNodes: 150, members: ["node_0", "node_1", "node_2"] }));
    const mean = names.length / partitions;
    const ratio = Math.max(...counts) / mean;
    t.diagnostic(`${partitions} partitions, 150 virtual nodes each: max/mean load ${ratio.toFixed(3)}, min/mean ${(Math.min(...counts) / mean).toFixed(3)}`);
    assert.ok(ratio < 1.3, `max/mean ${ratio.toFixed(3)} with ${partitions} partitions`);
    assert.equal(counts.reduce((a, b) => a + b, 0), names.length);
  }
});

test("queue layout - every node maps a name to the same partition; preferred leaders take turns", () => {
  const a = new PartitionMap({ partitions: 6, virtualNodes: 150, members: ["node_2", "node_0", "node_1"] });
  const b = new PartitionMap({ partitions: 6, virtualNodes: 150, members: ["node_0", "node_1", "node_2"] });
  for (const n of names.slice(0, 1000)) assert.equal(a.partitionOf(n), b.partitionOf(n));
  const leaders = [1, 2, 3, 4, 5, 6].map((p) => a.preferredLeader(p));
  assert.deepEqual(leaders, ["node_0", "node_1", "node_2", "node_0", "node_1", "node_2"]);
});

test("queue layout - a malformed layout from the log is recognised as such", () => {
  assert.equal(isQueueLayout({ partitions: 6, virtualNodes: 150, members: ["a"] }), true);
  for (const bad of [null, {}, { partitions: 0, virtualNodes: 150, members: ["a"] }, { partitions: 6, virtualNodes: 150, members: [] }, { partitions: 6, virtualNodes: 1.5, members: ["a"] }, { partitions: 6, virtualNodes: 150, members: [1] }]) {
    assert.equal(isQueueLayout(bad), false, JSON.stringify(bad));
  }
});
