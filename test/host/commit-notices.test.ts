/**
 * A leader's commit notices (appends with no entries, sent only to move a follower's commit
 * index) wait a few milliseconds for the next append to carry them. Seen in a C=1 put's trace:
 * half the leader's peer writes and their answers were such notices.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CommitNotices } from "../../src/host/commit-notices.ts";
import type { RaftHost } from "../../src/host/raft-host.ts";
import { makeMessage } from "../../src/raft/message.ts";
import { MessageType, type Message, type NodeId } from "../../src/raft/index.ts";
import { waitFor } from "../helpers/daemon.ts";
import { withCluster } from "./in-process-cluster.ts";

const notice = (to: NodeId, commit: number): Message => makeMessage({ type: MessageType.App, group: 1, from: "n1", to, term: 2, index: 7, commit });
const append = (to: NodeId): Message =>
  makeMessage({ type: MessageType.App, group: 1, from: "n1", to, term: 2, index: 7, commit: 8, entries: [{ term: 2, index: 8, type: 0, data: new Uint8Array(1) }] });

test("commit notices - a lone notice is held and sent when the delay ends; an append to the same peer replaces it; other messages pass", async () => {
  const sent: [NodeId, Message[]][] = [];
  const notices = new CommitNotices(20, (to, msgs) => sent.push([to, msgs]));
  assert.equal(notices.hold("n2", [notice("n2", 7)]), true);
  assert.equal(notices.hold("n2", [notice("n2", 8)]), true, "a newer notice replaces the held one");
  assert.equal(notices.hold("n3", [notice("n3", 7)]), true);
  assert.equal(notices.hold("n3", [append("n3")]), false, "an append goes out at once");
  const beat = makeMessage({ type: MessageType.Heartbeat, group: 1, from: "n1", to: "n2", term: 2, commit: 8 });
  assert.equal(notices.hold("n2", [beat]), false, "a heartbeat goes out at once and leaves the notice held");
  assert.equal(notices.hold("n4", [notice("n4", 8), { ...beat, to: "n4" }]), false, "only a lone notice is held");
  await waitFor(() => (sent.length > 0 ? true : null), "the held notice", 5000);
  // One timer flushes everything held: n3's notice, replaced by its append, is not sent.
  assert.deepEqual(sent, [["n2", [notice("n2", 8)]]]);

  const off = new CommitNotices(0, () => assert.fail("nothing is held with delay 0"));
  assert.equal(off.hold("n2", [notice("n2", 7)]), false);
  const stopped = new CommitNotices(10, () => assert.fail("a stopped group sends nothing"));
  stopped.hold("n2", [notice("n2", 7)]);
  stopped.stop();
  await new Promise((resolve) => setTimeout(resolve, 50));
});

const isNotice = (m: Message, from: NodeId): boolean => m.from === from && m.type === MessageType.App && m.entries.length === 0;
/** Commit notices sent, alone or beside other messages. */
const notices = (sent: readonly Message[][], from: NodeId): number => sent.flat().filter((m) => isNotice(m, from)).length;
/** Frames that carried nothing but a commit notice: what holding them saves. */
const noticeFrames = (sent: readonly Message[][], from: NodeId): number => sent.filter((b) => b.length === 1 && isNotice(b[0]!, from)).length;

async function sequentialWrites(leader: RaftHost, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await leader.group(1)!.propose(Uint8Array.of(i), 5000);
}

test("commit notices - sequential writes: without a delay every commit costs a notice per follower; with one, the next append carries it and followers still learn every commit", { timeout: 60_000 }, async () => {
  await withCluster({ commitNoticeDelayMs: 0 }, async ({ leader, sent }) => {
    const id = leader.group(1)!.raw.status().id;
    const before = notices(sent, id);
    await sequentialWrites(leader, 40);
    const sentNow = notices(sent, id) - before;
    assert.ok(sentNow >= 40, `${sentNow} commit notices for 40 writes with no delay`);
  });
  // A delay far beyond the test: no notice costs a frame of its own while writes follow one
  // another (one may still ride beside a heartbeat sent in the same turn), and only heartbeats
  // (which carry the commit index too) bring the followers the last one.
  await withCluster({ commitNoticeDelayMs: 600_000 }, async ({ leader, all, sent }) => {
    const id = leader.group(1)!.raw.status().id;
    const before = noticeFrames(sent, id);
    await sequentialWrites(leader, 40);
    assert.equal(noticeFrames(sent, id) - before, 0, "a commit notice was sent alone although the next append carried it");
    const commit = leader.group(1)!.raw.status().commit;
    for (const h of all) await waitFor(() => (h.group(1)!.raw.status().commit >= commit ? true : null), `${h.group(1)!.raw.status().id} learns commit ${commit}`, 10_000);
  });
});


test("commit notices - an entry whose apply asks for it (a lock grant for a waiter on another node) tells the followers at once", { timeout: 60_000 }, async () => {
  await withCluster({ commitNoticeDelayMs: 600_000 }, async ({ leader, all }) => {
    await sequentialWrites(leader, 3);
    await leader.group(1)!.propose(Uint8Array.of(255), 5000);
    // The notices went out in the turn the entry applied on the leader, before the write
    // resolved (alone, or beside a heartbeat of that turn): none waits for a next append.
    assert.equal(leader.group(1)!.commitNoticesHeld, 0, "a commit notice is held although the entry asked for it to go at once");
    const commit = leader.group(1)!.raw.status().commit;
    for (const h of all) await waitFor(() => (h.group(1)!.raw.status().commit >= commit ? true : null), `${h.group(1)!.raw.status().id} learns commit ${commit}`, 10_000);
  });
});
