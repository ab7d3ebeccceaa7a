import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../../src/raft/memory-storage.ts";
import { decodeConfChange, encodeConfChange } from "../../src/raft/raw-node.ts";
import { ConfChangeType, type ConfChange } from "../../src/raft/types.ts";
import { Network, appliedData, enc, type TestNode } from "./network.ts";

function change(net: Network, leader: TestNode, cc: ConfChange): void {
  const r = leader.raw.proposeConfChange(cc);
  assert.equal(r.ok, true, `proposeConfChange ${JSON.stringify(cc)}: ${JSON.stringify(r)}`);
  net.stabilize();
}

test("conf change - encoding round-trips", () => {
  for (const cc of [
    { type: ConfChangeType.AddLearner, node: "n4" },
    { type: ConfChangeType.AddVoter, node: "ñødé-π" },
    { type: ConfChangeType.RemoveNode, node: "x" },
  ] as const) {
    assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
  }
  assert.throws(() => decodeConfChange(new Uint8Array([9, 65])), RangeError);
});

test("membership - add learner, promote, remove a voter, remove the leader", () => {
  const net = new Network(["n1", "n2", "n3"]);
  const n1 = net.elect("n1");
  n1.raw.propose(enc("before"));
  net.stabilize();
  // A joining node starts with an empty log and the membership it is joining (the node layer
  // knows it from the cluster map); it then learns the log from the leader.
  net.add("n4", new MemoryStorage({ voters: ["n1", "n2", "n3"], learners: ["n4"] }));

  change(net, n1, { type: ConfChangeType.AddLearner, node: "n4" });
  const n4 = net.node("n4");
  assert.deepEqual(n1.conf, { voters: ["n1", "n2", "n3"], learners: ["n4"] });
  assert.deepEqual(n4.conf, n1.conf);
  assert.equal(n4.raw.status().role, "learner");
  assert.deepEqual(appliedData(n4), ["before"]);

  // A learner never counts for quorum: with n2 and n3 gone, nothing commits.
  net.cut("n1", "n2");
  net.cut("n1", "n3");
  n1.raw.propose(enc("needs-quorum"));
  net.stabilize();
  assert.equal(n4.raw.status().lastIndex, n1.raw.status().lastIndex);
  assert.ok(n1.raw.status().commit < n1.raw.status().lastIndex);
  // A learner never campaigns.
  net.tick(30, ["n4"]);
  assert.equal(n4.raw.status().role, "learner");
  net.heal();
  net.stabilize();
  net.tick(1);
  assert.deepEqual(appliedData(n4), ["before", "needs-quorum"]);

  change(net, n1, { type: ConfChangeType.AddVoter, node: "n4" });
  assert.deepEqual(n1.conf, { voters: ["n1", "n2", "n3", "n4"], learners: [] });
  assert.equal(n4.raw.status().role, "follower");

  change(net, n1, { type: ConfChangeType.RemoveNode, node: "n2" });
  assert.deepEqual(n1.conf.voters, ["n1", "n3", "n4"]);
  net.isolate("n2");

  // Removing the leader makes it step down; the remaining voters elect a new one.
  change(net, n1, { type: ConfChangeType.RemoveNode, node: "n1" });
  assert.notEqual(n1.raw.status().role, "leader");
  net.tick(60);
  const leaders = net.leaders();
  assert.equal(leaders.length, 1);
  assert.ok(["n3", "n4"].includes(leaders[0]!));
  const nl = net.node(leaders[0]!);
  assert.deepEqual(nl.conf.voters, ["n3", "n4"]);
  assert.equal(nl.raw.propose(enc("after")).ok, true);
  net.stabilize();
  assert.deepEqual(appliedData(net.node("n3")), ["before", "needs-quorum", "after"]);
  assert.deepEqual(appliedData(n4), ["before", "needs-quorum", "after"]);
});

test("membership - one change at a time; invalid changes are refused", () => {
  const net = new Network(["n1"]);
  const n1 = net.elect("n1");
  net.stabilize();
  assert.equal(n1.raw.proposeConfChange({ type: ConfChangeType.AddLearner, node: "n2" }).ok, true);
  assert.deepEqual(n1.raw.proposeConfChange({ type: ConfChangeType.AddLearner, node: "n3" }), {
    ok: false,
    leader: "n1",
    reason: "conf-change-pending",
  });
  net.stabilize();
  assert.deepEqual(n1.raw.proposeConfChange({ type: ConfChangeType.RemoveNode, node: "n1" }), {
    ok: false,
    leader: "n1",
    reason: "invalid-conf-change",
  });
  assert.equal(n1.raw.proposeConfChange({ type: ConfChangeType.AddLearner, node: "n3" }).ok, true);
});
