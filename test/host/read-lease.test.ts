/**
 * Lease reads: a leader whose last read round a quorum answered serves linearizable reads for a
 * while without a round of its own (a KV GET at C=1 went from 0.26 to 0.05 ms p50). What must
 * hold: the lease ends before any other node can be elected, and whatever voids it (a new term,
 * a membership change, a transfer) does.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ReadLease } from "../../src/host/read-lease.ts";
import { leaseReadMs } from "../../src/host/raft-host.ts";
import { MessageType, type Message, type NodeId } from "../../src/raft/index.ts";
import { idOf, withCluster } from "./in-process-cluster.ts";

const ELECTION_MS = 300;
const LEASE_MS = leaseReadMs(ELECTION_MS);

/** Read rounds a leader started: the distinct ReadIndex keys (JSON arrays) its heartbeats carried. */
function rounds(sent: readonly Message[][], from: NodeId): number {
  const keys = new Set<string>();
  for (const m of sent.flat()) if (m.from === from && m.type === MessageType.Heartbeat && m.context?.startsWith("[")) keys.add(m.context);
  return keys.size;
}

test("read lease - counts from the round's request, ends with its term, and a round begun before a membership change proves nothing after it", () => {
  const lease = new ReadLease(100);
  assert.equal(lease.remaining(3, 0), 0, "no lease before a round");
  const r = lease.begin(3, 1000);
  lease.confirm(r, 3);
  assert.equal(lease.remaining(3, 1040), 60, "from the request, not the answer");
  assert.equal(lease.remaining(3, 1100), 0);
  assert.equal(lease.remaining(4, 1040), 0, "another term");
  lease.confirm(lease.begin(3, 900), 3);
  assert.equal(lease.remaining(3, 1040), 60, "an older round never shortens it");
  lease.confirm(lease.begin(3, 1050), 4);
  assert.equal(lease.remaining(4, 1060), 0, "a round of an earlier term counts for nothing in a later one");
  const before = lease.begin(3, 1060);
  lease.confChanged();
  assert.equal(lease.remaining(3, 1061), 0, "a membership change voids it");
  lease.confirm(before, 3);
  assert.equal(lease.remaining(3, 1061), 0, "a round begun before the change does not count");
  lease.confirm(lease.begin(3, 1070), 3);
  assert.equal(lease.remaining(3, 1080), 90);
  lease.void();
  assert.equal(lease.remaining(3, 1080), 0);
  const off = new ReadLease(0);
  off.confirm(off.begin(1, 0), 1);
  assert.equal(off.remaining(1, 0), 0, "duration 0: never a lease");
});

test("read lease - after one round, a leader's reads within the lease take no round; with lease reads off every read takes one", { timeout: 60_000 }, async () => {
  for (const leaseReads of [true, false]) {
    await withCluster({ leaseReads, electionTimeoutMs: ELECTION_MS }, async ({ leader, sent }) => {
      const g = leader.group(1)!;
      await g.propose(Uint8Array.of(1), 5000);
      await g.readBarrier(5000);
      const before = rounds(sent, idOf(leader));
      const t0 = performance.now();
      for (let i = 0; i < 30; i++) await g.readBarrier(5000);
      const elapsed = performance.now() - t0;
      const taken = rounds(sent, idOf(leader)) - before;
      if (!leaseReads) {
        assert.ok(taken >= 30, `${taken} rounds for 30 reads without leases`);
        return;
      }
      // A round renews the lease when half of it is left (one per half lease at most), and one
      // blocks a read when the lease ran out (one per lease at most): a slow machine takes more.
      const allowed = 2 + Math.floor(elapsed / (LEASE_MS / 2)) + Math.floor(elapsed / LEASE_MS);
      assert.ok(taken <= allowed, `${taken} rounds for 30 reads in ${elapsed.toFixed(1)} ms with a ${LEASE_MS} ms lease (at most ${allowed})`);
    });
  }
});

test("read lease - a leader cut off from its followers stops serving from its lease before either of them can be elected", { timeout: 60_000 }, async () => {
  await withCluster({ electionTimeoutMs: ELECTION_MS }, async ({ leader, all, cut }) => {
    const g = leader.group(1)!;
    await g.propose(Uint8Array.of(1), 5000);
    await g.readBarrier(5000);
    const others = all.filter((h) => h !== leader);
    let electedAt: number | null = null;
    const watch = setInterval(() => {
      if (electedAt === null && others.some((h) => h.group(1)!.isLeader)) electedAt = performance.now();
    }, 1);
    cut.add(idOf(leader));
    let lastServedAt = -Infinity;
    let served = 0;
    let refused = 0;
    try {
      const deadline = performance.now() + 20_000;
      while ((electedAt === null || refused === 0) && performance.now() < deadline) {
        const startedAt = performance.now();
        try {
          await g.readBarrier(20);
          lastServedAt = startedAt;
          served++;
        } catch {
          refused++;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    } finally {
      clearInterval(watch);
    }
    assert.ok(served > 0, "the lease answered reads after the leader was cut off");
    assert.ok(refused > 0, "and then stopped");
    assert.ok(electedAt !== null, "the others elected a leader");
    assert.ok(lastServedAt < electedAt, `a read began ${(lastServedAt - electedAt).toFixed(1)} ms after another leader was elected, and was served from the old leader's lease`);
  });
});

test("read lease - a leader that starts a leadership transfer proves its leadership by a round for every read after it", { timeout: 60_000 }, async () => {
  await withCluster({ electionTimeoutMs: ELECTION_MS }, async ({ leader, all, sent, cut }) => {
    const g = leader.group(1)!;
    await g.propose(Uint8Array.of(1), 5000);
    await g.readBarrier(5000);
    const before = rounds(sent, idOf(leader));
    await g.readBarrier(5000);
    assert.equal(rounds(sent, idOf(leader)) - before, 0, "within the lease, no round");
    const target = all.find((h) => h !== leader)!;
    cut.add(idOf(target)); // The transfer cannot finish: the leader stays.
    g.transferLeader(idOf(target));
    await g.readBarrier(5000);
    assert.equal(rounds(sent, idOf(leader)) - before, 1, "after the transfer began, the read took a round");
    await g.readBarrier(5000);
    assert.equal(rounds(sent, idOf(leader)) - before, 2, "and so does the next one");
  });
});
