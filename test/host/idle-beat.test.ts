/**
 * The idle beat: while every group is quiet, nodes beat each other only every
 * IDLE_BEAT_INTERVAL_MS and a silent peer counts as down after three beats. A peer whose link
 * closes (its process died) is down an election timeout after it was last heard from, so a
 * killed leader is replaced as fast as with heartbeats. Waits are generous bounds, not timings
 * (bench:failover -- --idle-kill times it).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { waitFor } from "../helpers/daemon.ts";
import { idOf, withCluster } from "./in-process-cluster.ts";

test("idle beat - a quiet group's leader that falls silent stays leader for the liveness window; once its link closes, the others elect one", { timeout: 60_000 }, async () => {
  // A 10 s idle beat: the liveness window (30 s) is far beyond this test, so only the closed
  // link can explain an election.
  await withCluster({ electionTimeoutMs: 300, idleBeatIntervalMs: 10_000 }, async ({ leader, all, cut }) => {
    await waitFor(() => all.every((h) => h.group(1)!.quiesced) || null, "the group to go quiet on every node", 20_000);
    const old = idOf(leader);
    const term = leader.group(1)!.status().term;
    const others = all.filter((h) => h !== leader);
    cut.add(old);
    // Five election timeouts of silence: within the liveness window, nothing changes.
    await sleep(1500);
    for (const h of others) {
      const g = h.group(1)!;
      assert.ok(g.quiesced, `${idOf(h)} is still quiet`);
      assert.equal(g.leader, old, `${idOf(h)} still follows ${old}`);
      assert.equal(g.status().term, term);
    }
    for (const h of others) h.peerLinkDown(old);
    const next = await waitFor(() => others.find((h) => h.group(1)!.isLeader) ?? null, "a new leader once the link closed", 20_000);
    assert.ok(next.group(1)!.status().term > term, "in a new term");
  });
});
