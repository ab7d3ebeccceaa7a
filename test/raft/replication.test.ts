import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../../src/raft/memory-storage.ts";
import { EntryType, MessageType } from "../../src/raft/types.ts";
import { Network, appliedData, enc } from "./network.ts";

function storageWithTerms(voters: string[], terms: number[], hardTerm: number): MemoryStorage {
  const st = new MemoryStorage({ voters, learners: [] });
  st.append(terms.map((term, i) => ({ term, index: i + 1, type: EntryType.Normal, data: enc(`t${term}i${i + 1}`) })));
  st.setHardState({ term: hardTerm, vote: null, commit: 5 });
  return st;
}

test("replication - log conflict is repaired with term-based fast backtracking", () => {
  const ids = ["n1", "n2", "n3"];
  const net = new Network(ids);
  const common = [1, 1, 1, 1, 1];
  const leaderLog = [...common, 3, 3, 3, 3, 3];
  // n1 holds 25 uncommitted entries of term 2 that the others never saw.
  const divergent = [...common, ...Array<number>(25).fill(2)];
  net.add("n1", storageWithTerms(ids, divergent, 3));
  net.add("n2", storageWithTerms(ids, leaderLog, 3));
  net.add("n3", storageWithTerms(ids, leaderLog, 3));
  net.delivered = [];
  net.elect("n2");
  assert.deepEqual(net.leaders(), ["n2"]);
  const rejects = net.delivered.filter((m) => m.type === MessageType.AppResp && m.reject && m.from === "n1");
  // One rejection skips n1's whole divergent term; probing index by index would need 5.
  assert.equal(rejects.length, 1);
  assert.equal(rejects[0]!.rejectTerm, 2);
  const st = net.node("n2").raw.status();
  for (const n of net.nodes.values()) {
    assert.equal(n.raw.status().lastIndex, st.lastIndex);
    assert.equal(n.raw.status().commit, st.lastIndex);
    assert.equal(n.storage.term(6), 3);
  }
});

test("replication - follower behind by many entries is probed then caught up", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  net.cut("n1", "n3");
  for (let i = 0; i < 100; i++) net.node("n1").raw.propose(enc(`v${i}`));
  net.stabilize();
  net.heal();
  net.tick(2);
  assert.equal(appliedData(net.node("n3")).length, 100);
});

test("replication - pipelining sends many Apps before any ack, bounded by the in-flight window", () => {
  const net = new Network(["n1", "n2", "n3"], { maxInflightMsgs: 4 });
  net.elect("n1");
  const n1 = net.node("n1");
  for (let i = 0; i < 10; i++) n1.raw.propose(enc(`p${i}`));
  const rd = n1.raw.ready();
  const toN2 = rd.messages.filter((m) => m.type === MessageType.App && m.to === "n2");
  // Replicate state: one App per proposal streams out until the window of 4 fills.
  assert.equal(toN2.length, 4);
  assert.deepEqual(toN2.map((m) => m.index), [1, 2, 3, 4]);
  n1.storage.append(rd.entries);
  if (rd.hardState) n1.storage.setHardState(rd.hardState);
  n1.raw.advance(rd);
  for (const m of rd.messages) net.node(m.to).raw.step(m);
  net.stabilize();
  for (const n of net.nodes.values()) assert.equal(appliedData(n).length, 10);
});

test("replication - App batches are bounded by maxMsgBytes", () => {
  const net = new Network(["n1", "n2"], { maxMsgBytes: 200 });
  net.elect("n1");
  net.cut("n1", "n2");
  for (let i = 0; i < 20; i++) net.node("n1").raw.propose(new Uint8Array(50));
  net.stabilize();
  net.heal();
  net.delivered = [];
  net.tick(3);
  const apps = net.delivered.filter((m) => m.type === MessageType.App && m.entries.length > 0);
  assert.ok(apps.length >= 5, `apps: ${apps.length}`);
  for (const m of apps) assert.ok(m.entries.length <= 3, `batch of ${m.entries.length}`);
  assert.equal(net.node("n2").raw.status().commit, 21);
});

test("replication - only current-term entries are committed by counting", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  // n1 appends an entry only it has, then loses leadership.
  net.isolate("n1");
  net.node("n1").raw.propose(enc("old"));
  net.stabilize();
  net.heal();
  net.isolate("n3");
  // n1 becomes leader again at a higher term; the old-term entry is committed only through the
  // new term's no-op, never by counting replicas of the old entry alone.
  net.cut("n1", "n3");
  net.tick(30, ["n1", "n2"]);
  assert.deepEqual(net.leaders(), ["n1"]);
  const s = net.node("n1").raw.status();
  assert.equal(s.commit, s.lastIndex);
  assert.deepEqual(appliedData(net.node("n2")), ["old"]);
});

test("replication - a batch of proposals goes out as one append per follower", () => {
  const net = new Network(["n1", "n2", "n3"]);
  net.elect("n1");
  const leader = net.node("n1").raw;
  const results = leader.proposeBatch(Array.from({ length: 10 }, (_, i) => enc(`b${i}`)));
  assert.ok(results.every((r) => r.ok));
  const indexes = results.map((r) => (r.ok ? r.index : -1));
  assert.deepEqual(indexes, indexes.map((_, i) => indexes[0]! + i), "consecutive indexes in proposal order");
  const apps = leader.ready().messages.filter((m) => m.type === MessageType.App);
  assert.deepEqual(apps.map((m) => m.to).sort(), ["n2", "n3"], "one append per follower");
  for (const m of apps) assert.equal(m.entries.length, 10);
});
