import { test } from "node:test";
import assert from "node:assert/strict";
import { MessageType } from "../../src/raft/types.ts";
import { Network, appliedData, enc } from "./network.ts";

test("election - pre-vote does not bump term", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  const term = net.node("n1").raw.status().term;
  net.isolate("n3");
  net.tick(100);
  // n3 kept failing pre-elections without ever adopting a new term.
  assert.equal(net.node("n3").raw.status().term, term);
  net.heal();
  net.tick(20);
  assert.deepEqual(net.leaders(), ["n1"]);
  assert.equal(net.node("n1").raw.status().term, term);
  assert.equal(net.node("n3").raw.status().leader, "n1");
});

test("election - without pre-vote a rejoining node bumps terms and disrupts", () => {
  const net = new Network(["n1", "n2", "n3"], { preVote: false, checkQuorum: false });
  net.elect("n1");
  const term = net.node("n1").raw.status().term;
  net.isolate("n3");
  net.tick(100);
  assert.ok(net.node("n3").raw.status().term > term + 3);
  net.heal();
  net.tick(40);
  // Contrast with the pre-vote test: the cluster had to move to n3's inflated term.
  assert.ok(net.node("n1").raw.status().term > term + 3);
});

test("election - followers with a live leader ignore (pre)votes (leader lease)", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  const term = net.node("n1").raw.status().term;
  net.node("n2").raw.campaign();
  net.stabilize();
  assert.deepEqual(net.leaders(), ["n1"]);
  assert.equal(net.node("n1").raw.status().term, term);
  net.tick(5);
  assert.equal(net.node("n2").raw.status().leader, "n1");
});

test("election - check quorum makes an isolated leader step down", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.isolate("n1");
  net.tick(10, ["n1"]);
  assert.equal(net.node("n1").raw.status().role, "leader");
  net.tick(11, ["n1"]);
  assert.equal(net.node("n1").raw.status().role, "follower");
  assert.equal(net.node("n1").raw.status().leader, null);
});

test("election - a leader hearing from a quorum stays leader", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.isolate("n3");
  net.tick(50);
  assert.equal(net.node("n1").raw.status().role, "leader");
});

test("read index - leader confirms leadership with a heartbeat round", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.node("n1").raw.propose(enc("a"));
  net.stabilize();
  net.delivered = [];
  assert.equal(net.node("n1").raw.readIndex("ctx-1"), true);
  net.stabilize();
  assert.deepEqual(net.node("n1").readStates, [{ context: "ctx-1", index: 2 }]);
  assert.ok(net.delivered.some((m) => m.type === MessageType.Heartbeat && m.context?.includes("ctx-1")));
  // No log write was needed.
  assert.equal(net.node("n1").raw.status().lastIndex, 2);
});

test("read index - follower forwards to the leader and gets the read point", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.node("n1").raw.propose(enc("a"));
  net.stabilize();
  assert.equal(net.node("n2").raw.readIndex("f-1"), true);
  net.stabilize();
  assert.deepEqual(net.node("n2").readStates, [{ context: "f-1", index: 2 }]);
  assert.deepEqual(net.node("n1").readStates, []);
});

test("read index - the same context from two followers is answered to each", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.node("n2").raw.readIndex("same");
  net.node("n3").raw.readIndex("same");
  net.stabilize();
  assert.deepEqual(net.node("n2").readStates, [{ context: "same", index: 1 }]);
  assert.deepEqual(net.node("n3").readStates, [{ context: "same", index: 1 }]);
});

test("read index - an isolated leader cannot serve reads", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.isolate("n1");
  net.node("n1").raw.readIndex("stale");
  net.tick(3, ["n1"]);
  assert.deepEqual(net.node("n1").readStates, []);
});

test("read index - no leader known returns false", () => {
  const net = new Network(["n1", "n2", "n3"]);
  assert.equal(net.node("n2").raw.readIndex("x"), false);
});

test("read index - waits until the leader commits an entry of its term", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.filter = (m) => m.type !== MessageType.AppResp;
  net.elect("n1");
  const n1 = net.node("n1");
  assert.equal(n1.raw.status().role, "leader");
  assert.equal(n1.raw.status().commit, 0);
  n1.raw.readIndex("early");
  net.stabilize();
  assert.deepEqual(n1.readStates, []);
  net.filter = undefined;
  net.tick(2);
  assert.deepEqual(n1.readStates, [{ context: "early", index: 1 }]);
});

test("transfer - leader hands leadership to an up-to-date follower", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.node("n1").raw.propose(enc("a"));
  net.stabilize();
  net.node("n1").raw.transferLeader("n2");
  net.stabilize();
  assert.deepEqual(net.leaders(), ["n2"]);
  assert.equal(net.node("n2").raw.propose(enc("b")).ok, true);
  net.stabilize();
  for (const n of net.nodes.values()) assert.deepEqual(appliedData(n), ["a", "b"]);
});

test("transfer - a lagging target is caught up first; a follower can request it", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.cut("n1", "n3");
  for (let i = 0; i < 10; i++) net.node("n1").raw.propose(enc(`v${i}`));
  net.stabilize();
  net.heal();
  // Requested on a follower: forwarded to the leader.
  net.node("n2").raw.transferLeader("n3");
  net.stabilize();
  assert.deepEqual(net.leaders(), ["n3"]);
  assert.equal(appliedData(net.node("n3")).length, 10);
});

test("transfer - proposals are refused during a transfer, which aborts after an election timeout", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.cut("n1", "n2");
  const n1 = net.node("n1");
  n1.raw.transferLeader("n2");
  net.stabilize();
  assert.deepEqual(n1.raw.propose(enc("x")), { ok: false, leader: null, reason: "transferring" });
  net.tick(11, ["n1"]);
  assert.equal(n1.raw.status().role, "leader");
  assert.equal(n1.raw.propose(enc("x")).ok, true);
});

test("election - holdVotesAtStart: a restarted member that had acknowledged the leader grants no vote for an election timeout", () => {
  // A leader's read lease counts on every member that acknowledged it not to vote for an election
  // timeout; a member that restarts has forgotten whom it heard from.
  for (const hold of [false, true]) {
    const net = new Network(["n1", "n2", "n3"], { holdVotesAtStart: hold });
    net.tick(10); // Past the start hold of the founding members.
    net.elect("n1");
    const term = net.node("n1").raw.status().term;
    net.isolate("n1");
    const n2 = net.node("n2");
    net.add("n2", n2.storage); // n2 restarts, as after a crash.
    net.node("n3").raw.campaign();
    net.stabilize();
    if (!hold) {
      assert.deepEqual(net.leaders().filter((id) => id !== "n1"), ["n3"], "without the hold, the restarted member votes at once");
      continue;
    }
    assert.deepEqual(net.leaders(), ["n1"], "n3 got no vote from the restarted n2");
    assert.equal(net.node("n3").raw.status().term, term, "pre-vote failed: no term bumped");
    net.tick(9, ["n2"]);
    net.node("n3").raw.campaign();
    net.stabilize();
    assert.deepEqual(net.leaders(), ["n1"], "still within n2's first election timeout");
    net.tick(1, ["n2"]);
    net.node("n3").raw.campaign();
    net.stabilize();
    assert.ok(net.leaders().includes("n3"), "after an election timeout the restarted n2 votes");
  }
});

test("transfer - a leader that started a transfer may not time its leadership by a lease for the rest of its term", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  assert.equal(net.node("n1").raw.leaseUsable, true);
  net.isolate("n2"); // The transfer cannot finish.
  net.node("n1").raw.transferLeader("n2");
  net.stabilize();
  assert.equal(net.node("n1").raw.leaseUsable, false);
  net.tick(25, ["n1", "n3"]); // The transfer is abandoned after an election timeout.
  assert.equal(net.node("n1").raw.status().role, "leader");
  assert.equal(net.node("n1").raw.leaseUsable, false, "a TimeoutNow of this term may still arrive");
  assert.equal(net.node("n3").raw.leaseUsable, false, "a follower has no lease");
});
