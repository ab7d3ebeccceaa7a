import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../../src/raft/memory-storage.ts";
import { CompactedError, MessageType } from "../../src/raft/types.ts";
import { Network, appliedData, enc, type TestNode } from "./network.ts";

function image(bytes: number): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

/** Leader takes a snapshot at its applied index and compacts the log behind it. */
function snapshotAndCompact(leader: TestNode, data: Uint8Array): number {
  const index = leader.raw.status().applied;
  leader.storage.createSnapshot(index, leader.conf, data);
  leader.storage.compact(index);
  return index;
}

function lagBehindCompaction(opts = {}): { net: Network; index: number; data: Uint8Array } {
  const net = new Network(["n1", "n2", "n3"], { snapshotChunkBytes: 100, ...opts });
  const n1 = net.elect("n1");
  net.isolate("n3");
  for (let i = 0; i < 30; i++) n1.raw.propose(enc(`v${i}`));
  net.stabilize();
  const data = image(1050);
  const index = snapshotAndCompact(n1, data);
  assert.equal(n1.raw.status().firstIndex, index + 1);
  return { net, index, data };
}

test("snapshot - lagging follower is caught up by a chunked snapshot after compaction", () => {
  const { net, index, data } = lagBehindCompaction();
  net.heal();
  net.delivered = [];
  net.tick(3);
  const chunks = net.delivered.filter((m) => m.type === MessageType.Snap);
  assert.equal(chunks.length, 11);
  assert.ok(chunks.every((m) => m.snapshot!.data.length <= 100));
  const n3 = net.node("n3");
  assert.equal(n3.storage.snapshot().meta.index, index);
  assert.deepEqual(n3.storage.snapshot().data, data);
  assert.deepEqual(n3.storage.snapshot().meta.conf.voters, ["n1", "n2", "n3"]);
  assert.equal(n3.raw.status().firstIndex, index + 1);
  // Log replication resumes after the snapshot.
  net.node("n1").raw.propose(enc("after"));
  net.stabilize();
  assert.deepEqual(appliedData(n3), ["after"]);
  assert.equal(n3.raw.status().commit, net.node("n1").raw.status().commit);
  assert.equal(net.node("n1").raw.status().progress!["n3"]!.state, "replicate");
});

test("snapshot - a lost chunk is resent after a stall, without a reject", () => {
  const { net, index, data } = lagBehindCompaction();
  net.heal();
  let snaps = 0;
  net.filter = (m) => !(m.type === MessageType.Snap && ++snaps === 3);
  net.delivered = [];
  net.tick(6);
  // Later chunks are buffered past the gap, not rejected; the gap is resent from the acked offset.
  assert.ok(!net.delivered.some((m) => m.type === MessageType.SnapResp && m.reject));
  const n3 = net.node("n3");
  assert.equal(n3.storage.snapshot().meta.index, index);
  assert.deepEqual(n3.storage.snapshot().data, data);
});

test("snapshot - a lost tail chunk is retried after a stall", () => {
  const { net, index } = lagBehindCompaction();
  net.heal();
  let dropped = false;
  net.filter = (m) => {
    if (!dropped && m.type === MessageType.Snap && m.snapshot!.done) {
      dropped = true;
      return false;
    }
    return true;
  };
  net.tick(10);
  assert.ok(dropped);
  assert.equal(net.node("n3").storage.snapshot().meta.index, index);
});

test("snapshot - reportSnapshot failure returns the follower to probing", () => {
  const { net } = lagBehindCompaction();
  const n1 = net.node("n1");
  net.heal();
  net.filter = (m) => m.type !== MessageType.Snap;
  net.tick(2);
  assert.equal(n1.raw.status().progress!["n3"]!.state, "snapshot");
  n1.raw.reportSnapshot("n3", false);
  assert.equal(n1.raw.status().progress!["n3"]!.state, "probe");
  net.filter = undefined;
  net.tick(4);
  assert.equal(net.node("n3").raw.status().commit, n1.raw.status().commit);
});

test("storage - compacted ranges throw CompactedError", () => {
  const st = new MemoryStorage({ voters: ["a"], learners: [] });
  st.append([1, 2, 3, 4].map((i) => ({ term: 1, index: i, type: 0, data: new Uint8Array(0) }) as const));
  st.createSnapshot(2, { voters: ["a"], learners: [] }, new Uint8Array(1));
  st.compact(2);
  assert.equal(st.firstIndex(), 3);
  assert.equal(st.term(2), 1);
  assert.throws(() => st.term(1), CompactedError);
  assert.throws(() => st.entries(2, 4, 1000), CompactedError);
  assert.equal(st.entries(3, 5, 1000).length, 2);
  assert.equal(st.entries(3, 5, 1).length, 1);
});
