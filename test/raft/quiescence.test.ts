/**
 * Quiescence in the pure core: an idle group goes quiet (no messages at all), work wakes it, and
 * failure detection through the host's node liveness still elects a new leader when the leader's
 * node dies and still deposes a leader cut off from its majority. Liveness here is exact (a cut
 * link or a stopped node is "not live" at once); the host's is the same after an election timeout.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MessageType, type NodeId } from "../../src/raft/types.ts";
import { Network, appliedData, enc } from "./network.ts";

const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;

function cluster(): { net: Network; stopped: Set<NodeId>; tick: (n: number) => void } {
  const net = new Network(["n1", "n2", "n3"], { electionTicks: ELECTION_TICKS, heartbeatTicks: HEARTBEAT_TICKS });
  const stopped = new Set<NodeId>();
  const tick = (n: number): void => {
    for (let i = 0; i < n; i++) {
      for (const [id, node] of net.nodes) {
        if (stopped.has(id)) continue;
        node.raw.tick(undefined, (peer) => !stopped.has(peer) && !net.isCut(id, peer));
      }
      net.stabilize();
    }
  };
  // A stopped node neither sends nor receives.
  net.filter = (m) => !stopped.has(m.from) && !stopped.has(m.to);
  return { net, stopped, tick };
}

const quiet = (net: Network, ids: NodeId[] = [...net.nodes.keys()]): boolean => ids.every((id) => net.node(id).raw.status().quiesced);

test("quiescence - an idle group goes quiet after a few heartbeat rounds and then sends nothing", () => {
  const { net, tick } = cluster();
  net.elect("n1");
  tick(HEARTBEAT_TICKS * 4);
  assert.ok(quiet(net), "leader and followers are quiet");
  const term = net.node("n1").raw.status().term;
  const before = net.delivered.length;
  tick(ELECTION_TICKS * 20);
  assert.equal(net.delivered.length, before, "no message in 20 election timeouts");
  assert.deepEqual(net.leaders(), ["n1"]);
  assert.equal(net.node("n2").raw.status().term, term, "no election");
});

test("quiescence - a proposal wakes the group, commits everywhere, and the group goes quiet again", () => {
  const { net, tick } = cluster();
  net.elect("n1");
  tick(HEARTBEAT_TICKS * 4);
  assert.ok(quiet(net));
  assert.ok(net.node("n1").raw.propose(enc("x")).ok);
  net.stabilize();
  assert.ok(!net.node("n1").raw.status().quiesced, "the leader woke");
  tick(HEARTBEAT_TICKS * 4);
  for (const id of ["n1", "n2", "n3"]) assert.deepEqual(appliedData(net.node(id)).filter(Boolean), ["x"], `${id} applied the write`);
  assert.ok(quiet(net), "quiet again");
});

test("quiescence - a read on a quiet leader is answered (it heartbeats for it)", () => {
  const { net, tick } = cluster();
  net.elect("n1");
  tick(HEARTBEAT_TICKS * 4);
  assert.ok(quiet(net));
  assert.ok(net.node("n2").raw.readIndex("r1"), "a follower asks");
  net.stabilize();
  assert.deepEqual(net.node("n2").readStates.map((r) => r.context), ["r1"]);
});

test("quiescence - when the quiet leader's node stops, a follower is elected within two election timeouts", () => {
  const { net, stopped, tick } = cluster();
  net.elect("n1");
  tick(HEARTBEAT_TICKS * 4);
  assert.ok(quiet(net));
  const term = net.node("n2").raw.status().term;
  stopped.add("n1");
  let ticks = 0;
  while (ticks < ELECTION_TICKS * 2 && !net.leaders().some((id) => id !== "n1")) {
    tick(1);
    ticks++;
  }
  const leader = net.leaders().find((id) => id !== "n1");
  assert.ok(leader !== undefined, `a new leader within ${ELECTION_TICKS * 2} ticks`);
  assert.ok(net.node(leader).raw.status().term > term);
  assert.ok(net.node(leader).raw.propose(enc("after")).ok);
  net.stabilize();
  tick(1);
  const other = leader === "n2" ? "n3" : "n2";
  assert.ok(appliedData(net.node(other)).includes("after"), "the new leader commits");
});

test("quiescence - a quiet leader cut off from both followers wakes and steps down (CheckQuorum)", () => {
  const { net, tick } = cluster();
  net.elect("n1");
  tick(HEARTBEAT_TICKS * 4);
  assert.ok(quiet(net));
  net.isolate("n1");
  let ticks = 0;
  while (ticks < ELECTION_TICKS * 3 && net.node("n1").raw.status().role === "leader") {
    tick(1);
    ticks++;
  }
  assert.notEqual(net.node("n1").raw.status().role, "leader", `stepped down within ${ELECTION_TICKS * 3} ticks`);
  assert.ok(ticks <= ELECTION_TICKS + 1, `after one election timeout of heartbeats (${ticks} ticks)`);
  assert.ok(net.leaders().some((id) => id !== "n1"), "the majority elected a leader");
});

test("quiescence - a member that restarts (not quiet) wakes the quiet leader through its pre-vote and follows it without a new term", () => {
  const { net, tick } = cluster();
  net.elect("n1");
  tick(HEARTBEAT_TICKS * 4);
  assert.ok(quiet(net));
  const term = net.node("n1").raw.status().term;
  net.add("n3", net.node("n3").storage);
  assert.ok(!net.node("n3").raw.status().quiesced);
  tick(ELECTION_TICKS * 3);
  assert.deepEqual(net.leaders(), ["n1"]);
  assert.equal(net.node("n3").raw.status().leader, "n1");
  assert.equal(net.node("n3").raw.status().term, term, "no election");
  tick(HEARTBEAT_TICKS * 4);
  assert.ok(quiet(net), "all quiet again");
});

test("quiescence - without the host's liveness (the simulator's ticks) a group never goes quiet", () => {
  const net = new Network(["n1", "n2", "n3"], { electionTicks: ELECTION_TICKS, heartbeatTicks: HEARTBEAT_TICKS });
  net.elect("n1");
  const before = net.delivered.length;
  net.tick(ELECTION_TICKS * 2);
  assert.ok(!quiet(net, ["n1"]));
  assert.ok(net.delivered.slice(before).some((m) => m.type === MessageType.Heartbeat), "heartbeats keep flowing");
});

test("quiescence - when the quiet leader's node restarts within an election timeout (its node stays live), the group elects a leader", () => {
  const { net, tick } = cluster();
  net.elect("n1");
  tick(HEARTBEAT_TICKS * 4);
  assert.ok(quiet(net));
  const term = net.node("n1").raw.status().term;
  net.add("n1", net.node("n1").storage);
  let ticks = 0;
  while (ticks < ELECTION_TICKS * 4 && net.leaders().length === 0) {
    tick(1);
    ticks++;
  }
  assert.equal(net.leaders().length, 1, `a leader within ${ELECTION_TICKS * 4} ticks`);
  assert.ok(net.node(net.leaders()[0]!).raw.status().term > term);
});

test("quiescence - a member back after a restart, with nothing new to append, lets the group go quiet again (its progress stays in probe)", () => {
  const { net, stopped, tick } = cluster();
  net.elect("n1");
  tick(HEARTBEAT_TICKS * 4);
  assert.ok(quiet(net));
  stopped.add("n3");
  tick(1);
  // The host failed to send to it while it was down.
  net.node("n1").raw.reportUnreachable("n3");
  assert.equal(net.node("n1").raw.status().progress?.n3?.state, "probe");
  net.add("n3", net.node("n3").storage);
  stopped.delete("n3");
  tick(ELECTION_TICKS * 3);
  assert.deepEqual(net.leaders(), ["n1"]);
  assert.ok(quiet(net), "quiet again, although n3's progress is still in probe");
});
