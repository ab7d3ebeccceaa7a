/**
 * Regression tests for the chunked InstallSnapshot transfer, from bugs the simulator found:
 * a chunk/reject storm under reordering and duplication, a stalled transfer never resent with
 * CheckQuorum, and a re-added node refusing a snapshot taken before it was re-added.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SnapshotReceiver, SnapshotSender } from "../../src/raft/snapshot-transfer.ts";
import { ConfChangeType, MessageType, type ConfChange, type Message, type Snapshot } from "../../src/raft/types.ts";
import { Network, appliedData, enc, type NodeOptions, type TestNode } from "./network.ts";

function image(bytes: number): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

function snapshotAndCompact(leader: TestNode, data: Uint8Array): number {
  const index = leader.raw.status().applied;
  leader.storage.createSnapshot(index, leader.conf, data);
  leader.storage.compact(index);
  return index;
}

/** n1 leads; n3 was isolated while n1 compacted past it, so n3 needs a (multi-chunk) snapshot. */
function lagBehindCompaction(opts: NodeOptions = {}): { net: Network; index: number; data: Uint8Array } {
  const net = new Network(["n1", "n2", "n3"], { snapshotChunkBytes: 100, ...opts });
  const n1 = net.elect("n1");
  net.isolate("n3");
  for (let i = 0; i < 30; i++) n1.raw.propose(enc(`v${i}`));
  net.stabilize();
  const data = image(1050);
  const index = snapshotAndCompact(n1, data);
  return { net, index, data };
}

/** Drains every node's Ready and returns the messages they send. */
function drain(net: Network): Message[] {
  const out: Message[] = [];
  for (const n of net.nodes.values()) while (n.raw.hasReady()) out.push(...net.processReady(n));
  return out;
}

/**
 * Heartbeats n1 until it starts the snapshot transfer to n3, delivering everything else; returns
 * the first window of chunks, undelivered.
 */
function startTransfer(net: Network): Message[] {
  const n1 = net.node("n1");
  for (let t = 0; t < 10; t++) {
    n1.raw.tick();
    let msgs = drain(net);
    while (msgs.length > 0) {
      const snaps = msgs.filter((m) => m.type === MessageType.Snap);
      for (const m of msgs) if (m.type !== MessageType.Snap) net.node(m.to).raw.step(m);
      if (snaps.length > 0) {
        assert.equal(drain(net).filter((m) => m.type === MessageType.Snap).length, 0);
        return snaps;
      }
      msgs = drain(net);
    }
  }
  throw new Error("no snapshot transfer started");
}

test("snapshot transfer - receiver assembles reordered and duplicated chunks of one attempt", () => {
  const meta = { index: 7, term: 2, conf: { voters: ["a"], learners: [] } };
  const snap: Snapshot = { meta, data: image(35) };
  const chunks = new SnapshotSender(snap, 10, 1).nextChunks();
  assert.equal(chunks.length, 4);
  const rx = new SnapshotReceiver();
  assert.deepEqual(rx.offer(chunks[2]!, 3, 1), { kind: "progress", received: 0 });
  assert.deepEqual(rx.offer(chunks[1]!, 3, 1), { kind: "progress", received: 0 });
  assert.deepEqual(rx.offer(chunks[2]!, 3, 1), { kind: "progress", received: 0 });
  assert.deepEqual(rx.offer(chunks[0]!, 3, 1), { kind: "progress", received: 30 });
  assert.deepEqual(rx.offer(chunks[0]!, 3, 1), { kind: "progress", received: 30 });
  const r = rx.offer(chunks[3]!, 3, 1);
  assert.equal(r.kind, "complete");
  assert.deepEqual(r.kind === "complete" && r.snapshot.data, snap.data);
});

test("snapshot transfer - chunks of an older attempt neither reset nor disturb the current one", () => {
  const meta = { index: 7, term: 2, conf: { voters: ["a"], learners: [] } };
  const snap: Snapshot = { meta, data: image(35) };
  const old = new SnapshotSender(snap, 10, 1).nextChunks();
  const cur = new SnapshotSender(snap, 10, 2).nextChunks();
  const rx = new SnapshotReceiver();
  assert.equal(rx.offer(old[0]!, 3, 1).kind, "progress");
  assert.deepEqual(rx.offer(cur[1]!, 3, 2), { kind: "progress", received: 0 });
  assert.deepEqual(rx.offer(cur[0]!, 3, 2), { kind: "progress", received: 20 });
  // The old attempt's offset-0 chunk used to restart the assembly; now it is ignored.
  assert.deepEqual(rx.offer(old[0]!, 3, 1), { kind: "stale" });
  assert.deepEqual(rx.offer(old[3]!, 3, 1), { kind: "stale" });
  assert.deepEqual(rx.offer(cur[2]!, 3, 2), { kind: "progress", received: 30 });
  assert.equal(rx.offer(cur[3]!, 3, 2).kind, "complete");
  // A newer leader term starts over with attempt ids of its own.
  assert.equal(rx.offer(cur[0]!, 4, 1).kind, "progress");
  assert.deepEqual(rx.offer(cur[0]!, 3, 9), { kind: "stale" });
});

test("snapshot transfer - reordering and duplication do not cause a chunk storm (bug: every reject restarted a window)", () => {
  const { net, index, data } = lagBehindCompaction();
  const n1 = net.node("n1");
  const n3 = net.node("n3");
  net.heal();
  // Capture the first window instead of delivering it.
  let queue = startTransfer(net);
  assert.equal(queue.length, 4);
  // A hostile network without ticks: each round delivers every message twice, in reverse order.
  let snapsSent = 0;
  let rejects = 0;
  for (let round = 0; round < 200 && queue.length > 0; round++) {
    const deliver = [...queue].reverse().flatMap((m) => [m, m]);
    for (const m of deliver) net.node(m.to).raw.step(m);
    queue = drain(net);
    snapsSent += queue.filter((m) => m.type === MessageType.Snap).length;
    rejects += queue.filter((m) => m.type === MessageType.SnapResp && m.reject).length;
    // With the bug the queue grew without bound (each reject of each duplicate sent 4 chunks).
    assert.ok(queue.length < 100, `round ${round}: ${queue.length} messages in flight`);
  }
  assert.equal(queue.length, 0, "the transfer did not quiesce");
  assert.equal(rejects, 0);
  // 11 chunks in all: nothing is resent without a heartbeat.
  assert.ok(snapsSent <= 11, `${snapsSent} chunks sent`);
  assert.equal(n3.storage.snapshot().meta.index, index);
  assert.deepEqual(n3.storage.snapshot().data, data);
  net.tick(2);
  assert.equal(n3.raw.status().commit, n1.raw.status().commit);
  assert.equal(n1.raw.status().progress!["n3"]!.state, "replicate");
});

test("snapshot transfer - a reject restarts at most once per heartbeat, and responses to old attempts are ignored", () => {
  const { net } = lagBehindCompaction();
  const n1 = net.node("n1");
  net.heal();
  const first = startTransfer(net);
  assert.equal(first.length, 4);
  const attempt = first[0]!.snapshotAttempt;
  assert.ok(attempt !== undefined && first.every((m) => m.snapshotAttempt === attempt));
  const reject = (a: number | undefined): Message => ({
    type: MessageType.SnapResp, group: 0, from: "n3", to: "n1", term: first[0]!.term, logTerm: 0,
    index: first[0]!.index, entries: [], commit: 0, reject: true, rejectHint: 0, ...(a !== undefined ? { snapshotAttempt: a } : {}),
  });
  // Many rejects of the current attempt, and of an older one: no chunk until the next heartbeat.
  for (let i = 0; i < 10; i++) {
    n1.raw.step(reject(attempt));
    n1.raw.step(reject(attempt! - 1));
  }
  assert.equal(drain(net).filter((m) => m.type === MessageType.Snap).length, 0);
  n1.raw.tick();
  const restarted = drain(net).filter((m) => m.type === MessageType.Snap);
  assert.equal(restarted.length, 4);
  assert.ok(restarted.every((m) => m.snapshotAttempt! > attempt! && m.snapshot!.offset < 400));
  // The rejects of the previous attempt are now stale and change nothing.
  for (let i = 0; i < 10; i++) n1.raw.step(reject(attempt));
  n1.raw.tick();
  const after = drain(net).filter((m) => m.type === MessageType.Snap);
  assert.ok(after.every((m) => m.snapshotAttempt === restarted[0]!.snapshotAttempt));
});

test("snapshot transfer - a stalled snapshot is resent with CheckQuorum and electionTicks = 3 × heartbeatTicks (bug: never resent)", () => {
  // The old retry ran every 3 heartbeats through a send gated on recentActive, which CheckQuorum
  // clears at each election-timeout boundary just before: in one of the three phases every retry
  // landed right after the clear and sent nothing, forever. Try every phase.
  for (let phase = 0; phase < 3; phase++) {
    const { net, index } = lagBehindCompaction({ checkQuorum: true, electionTicks: 3, heartbeatTicks: 1 });
    const n1 = net.node("n1");
    // Shifts the leader's election-timeout boundaries relative to the transfer's start.
    net.tick(phase);
    net.heal();
    // Every chunk of the first attempt is lost.
    net.filter = (m) => m.type !== MessageType.Snap;
    net.tick(2);
    assert.equal(n1.raw.status().progress!["n3"]!.state, "snapshot", `phase ${phase}`);
    net.filter = undefined;
    net.tick(30);
    assert.equal(n1.raw.status().role, "leader", `phase ${phase}`);
    assert.equal(net.node("n3").storage.snapshot().meta.index, index, `phase ${phase}: snapshot not resent`);
    assert.equal(n1.raw.status().progress!["n3"]!.state, "replicate", `phase ${phase}`);
  }
});

test("snapshot transfer - a lost tail chunk is resent from the last acked offset", () => {
  const { net, index } = lagBehindCompaction();
  net.heal();
  let dropped = false;
  net.filter = (m) => {
    if (!dropped && m.type === MessageType.Snap && m.snapshot!.offset === 500) {
      dropped = true;
      return false;
    }
    return true;
  };
  net.delivered = [];
  net.tick(10);
  assert.ok(dropped);
  assert.equal(net.node("n3").storage.snapshot().meta.index, index);
  // Go-back-N from the acked offset (500), not from 0: chunk 0 was sent once.
  const offsets = net.delivered.filter((m) => m.type === MessageType.Snap).map((m) => m.snapshot!.offset);
  assert.equal(offsets.filter((o) => o === 0).length, 1);
  assert.equal(offsets.filter((o) => o === 500).length, 1);
});

test("snapshot transfer - a re-added node installs a snapshot taken before it was re-added (bug: refused forever)", () => {
  const net = new Network(["n1", "n2", "n3"], { snapshotChunkBytes: 64 });
  const n1 = net.elect("n1");
  const change = (cc: ConfChange): void => {
    assert.equal(n1.raw.proposeConfChange(cc).ok, true, JSON.stringify(cc));
    net.stabilize();
  };
  n1.raw.propose(enc("a"));
  net.stabilize();
  change({ type: ConfChangeType.RemoveNode, node: "n3" });
  net.tick(1);
  assert.deepEqual(n1.conf.voters, ["n1", "n2"]);
  net.isolate("n3");
  for (let i = 0; i < 10; i++) n1.raw.propose(enc(`b${i}`));
  net.stabilize();
  // The leader's newest snapshot has a membership without n3 ...
  const index = snapshotAndCompact(n1, image(300));
  assert.ok(!n1.storage.snapshot().meta.conf.voters.includes("n3"));
  net.heal();
  // ... and n3 is re-added on a quiet log: that snapshot is all the leader can send it.
  change({ type: ConfChangeType.AddLearner, node: "n3" });
  net.tick(20);
  const n3 = net.node("n3");
  assert.equal(n3.storage.snapshot().meta.index, index);
  assert.equal(n3.raw.status().commit, n1.raw.status().commit);
  assert.deepEqual(n3.conf, { voters: ["n1", "n2"], learners: ["n3"] });
  assert.equal(n3.raw.status().role, "learner");
  assert.equal(n1.raw.status().progress!["n3"]!.state, "replicate");
  // It catches up with new entries and can be promoted again.
  change({ type: ConfChangeType.AddVoter, node: "n3" });
  n1.raw.propose(enc("c"));
  net.stabilize();
  assert.deepEqual(appliedData(n3).slice(-1), ["c"]);
  assert.equal(n3.raw.status().role, "follower");
  assert.deepEqual(n3.conf.voters, ["n1", "n2", "n3"]);
});
