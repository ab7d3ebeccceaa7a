import { test } from "node:test";
import assert from "node:assert/strict";
import { Network, appliedData, enc } from "./network.ts";

test("restart - term, vote and log survive a restart from storage", () => {
  const net = new Network(["n1", "n2", "n3"]);
  const n1 = net.elect("n1");
  for (let i = 0; i < 3; i++) n1.raw.propose(enc(`v${i}`));
  net.stabilize();
  const before = net.node("n2").raw.status();
  const hs = net.node("n2").storage.initialState().hardState;
  assert.equal(hs.vote, "n1");
  // Crash n2 and restart it on the same storage, having applied nothing (replays the log).
  const n2 = net.add("n2", net.node("n2").storage);
  const after = n2.raw.status();
  assert.equal(after.term, before.term);
  assert.equal(after.lastIndex, before.lastIndex);
  assert.equal(after.commit, before.commit);
  assert.equal(after.role, "follower");
  assert.equal(n2.raw.hasReady(), true);
  net.stabilize();
  assert.deepEqual(appliedData(n2), ["v0", "v1", "v2"]);
  // It keeps its vote: asked again in the same term for someone else, it refuses.
  assert.equal(n2.storage.initialState().hardState.vote, "n1");
  n1.raw.propose(enc("v3"));
  net.stabilize();
  assert.deepEqual(appliedData(n2), ["v0", "v1", "v2", "v3"]);
});

test("restart - applied index skips re-delivery of applied entries", () => {
  const net = new Network(["n1"]);
  const n1 = net.elect("n1");
  n1.raw.propose(enc("a"));
  n1.raw.propose(enc("b"));
  net.stabilize();
  const applied = n1.raw.status().applied;
  const again = net.add("n1", n1.storage, applied);
  net.tick(25);
  assert.deepEqual(net.leaders(), ["n1"]);
  assert.deepEqual(appliedData(again), []);
  again.raw.propose(enc("c"));
  net.stabilize();
  assert.deepEqual(appliedData(again), ["c"]);
});

test("restart - whole cluster restarts and re-elects with its log intact", () => {
  const net = new Network(["n1", "n2", "n3"]);
  const n1 = net.elect("n1");
  n1.raw.propose(enc("x"));
  net.stabilize();
  const term = n1.raw.status().term;
  for (const id of ["n1", "n2", "n3"]) net.add(id, net.node(id).storage);
  net.tick(40);
  const leaders = net.leaders();
  assert.equal(leaders.length, 1);
  assert.ok(net.node(leaders[0]!).raw.status().term > term);
  for (const n of net.nodes.values()) assert.deepEqual(appliedData(n), ["x"]);
});

test("restart - a follower restarted from an installed snapshot keeps it", () => {
  const net = new Network(["n1", "n2", "n3"], { snapshotChunkBytes: 64 });
  const n1 = net.elect("n1");
  net.isolate("n3");
  for (let i = 0; i < 10; i++) n1.raw.propose(enc(`v${i}`));
  net.stabilize();
  const idx = n1.raw.status().applied;
  n1.storage.createSnapshot(idx, n1.conf, new Uint8Array(200).fill(9));
  n1.storage.compact(idx);
  net.heal();
  net.tick(3);
  const n3 = net.add("n3", net.node("n3").storage);
  const s = n3.raw.status();
  assert.equal(s.snapshotIndex, idx);
  assert.equal(s.firstIndex, idx + 1);
  assert.ok(s.commit >= idx);
  assert.equal(s.applied, idx);
  net.tick(3);
  n1.raw.propose(enc("z"));
  net.stabilize();
  assert.deepEqual(appliedData(n3), ["z"]);
});
