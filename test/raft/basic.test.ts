import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../../src/raft/memory-storage.ts";
import { RawNode } from "../../src/raft/raw-node.ts";
import { createRng } from "../../src/raft/rng.ts";
import { MessageType } from "../../src/raft/types.ts";
import { Network, appliedData, enc } from "./network.ts";

test("single node - campaigns, commits a proposal, and answers ReadIndex at once", () => {
  const net = new Network(["n1"]);
  net.elect("n1");
  const n1 = net.node("n1");
  assert.equal(n1.raw.status().role, "leader");
  const r = n1.raw.propose(enc("x"));
  assert.equal(r.ok, true);
  net.stabilize();
  assert.deepEqual(appliedData(n1), ["x"]);
  assert.equal(n1.raw.status().commit, 2);
  assert.equal(n1.raw.readIndex("r1"), true);
  net.stabilize();
  assert.deepEqual(n1.readStates, [{ context: "r1", index: 2 }]);
});

test("single node - elected by ticking", () => {
  const net = new Network(["n1"]);
  net.tick(25);
  assert.deepEqual(net.leaders(), ["n1"]);
});

test("election - three nodes elect one leader and replicate", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  assert.deepEqual(net.leaders(), ["n1"]);
  for (const id of ["n2", "n3"]) assert.equal(net.node(id).raw.status().leader, "n1");
  for (let i = 0; i < 5; i++) assert.equal(net.node("n1").raw.propose(enc(`v${i}`)).ok, true);
  net.stabilize();
  for (const n of net.nodes.values()) {
    assert.deepEqual(appliedData(n), ["v0", "v1", "v2", "v3", "v4"]);
    assert.equal(n.raw.status().commit, 6);
  }
});

test("election - followers refuse proposals with a leader hint", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  assert.deepEqual(net.node("n2").raw.propose(enc("x")), { ok: false, leader: "n1", reason: "not-leader" });
});

test("election - elected by ticking with randomized timeouts", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.tick(40);
  assert.equal(net.leaders().length, 1);
  const leader = net.leaders()[0]!;
  for (const n of net.nodes.values()) assert.equal(n.raw.status().leader, leader);
});

test("election - leader failure leads to re-election and the log survives", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.node("n1").raw.propose(enc("a"));
  net.stabilize();
  net.isolate("n1");
  net.tick(40, ["n2", "n3"]);
  const leaders = net.leaders().filter((l) => l !== "n1");
  assert.equal(leaders.length, 1);
  const nl = net.node(leaders[0]!);
  assert.ok(nl.raw.status().term > net.node("n1").raw.status().term);
  assert.equal(nl.raw.propose(enc("b")).ok, true);
  net.stabilize();
  net.heal();
  // The old leader either stepped down via CheckQuorum or learns the new term now.
  net.tick(5);
  assert.deepEqual(net.leaders(), [nl.id]);
  for (const n of net.nodes.values()) assert.deepEqual(appliedData(n), ["a", "b"]);
});

test("election - votes only for up-to-date logs", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.cut("n1", "n3");
  net.node("n1").raw.propose(enc("a"));
  net.stabilize();
  // n3 lacks "a", so n2 refuses it: only n2 can win once n1 is gone.
  net.isolate("n1");
  net.tick(60, ["n2", "n3"]);
  assert.deepEqual(net.leaders().filter((l) => l !== "n1"), ["n2"]);
  assert.deepEqual(appliedData(net.node("n3")), ["a"]);
});

test("multi-group - every message carries the group and a foreign group is refused", () => {
  const storage = new MemoryStorage({ voters: ["a", "b"], learners: [] });
  const raw = new RawNode({ id: "a", group: 7, electionTicks: 10, heartbeatTicks: 1, storage, rng: createRng(1), preVote: false });
  raw.campaign();
  const rd = raw.ready();
  assert.ok(rd.messages.length > 0);
  for (const m of rd.messages) assert.equal(m.group, 7);
  raw.advance(rd);
  const foreign = { ...rd.messages[0]!, group: 8, from: "b", to: "a", type: MessageType.VoteResp };
  assert.throws(() => raw.step(foreign), /group/);
});

test("ready - hardState only when changed; committed entries never re-delivered", () => {
  const net = new Network(["n1"]);
  const n1 = net.node("n1");
  assert.equal(n1.raw.hasReady(), false);
  n1.raw.campaign();
  const rd1 = n1.raw.ready();
  assert.ok(rd1.hardState);
  assert.equal(rd1.entries.length, 1);
  // A second ready() before advance hands out nothing again.
  const rd1b = n1.raw.ready();
  assert.equal(rd1b.entries.length, 0);
  assert.equal(rd1b.hardState, undefined);
  n1.storage.append(rd1.entries);
  n1.storage.setHardState(rd1.hardState);
  n1.raw.advance(rd1);
  n1.raw.advance(rd1b);
  const rd2 = n1.raw.ready();
  assert.equal(rd2.committedEntries.length, 1);
  assert.equal(rd2.hardState?.commit, 1);
  n1.raw.advance(rd2);
  assert.equal(n1.raw.hasReady(), false);
});
