/**
 * A replica's own snapshot is written beside the Ready loop, not in it: the image and its marker
 * take several fsyncs, and while a loop waited for them every write in flight on the group
 * waited too (seen in a loaded lock bench as all 16 clients' cycles taking 15–24 ms at once,
 * at every snapshot). Here every node's snapshot saving is held back: writes must still commit,
 * and once let go, each snapshot lands.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "../helpers/daemon.ts";
import { withCluster } from "./in-process-cluster.ts";

test("a snapshot being saved does not hold back the group's writes", { timeout: 60_000 }, async () => {
  await withCluster({ snapshotThreshold: 20 }, async ({ leader, all }) => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started = 0;
    let saved = 0;
    for (const h of all) {
      const save = h.wal.saveSnapshot.bind(h.wal);
      h.wal.saveSnapshot = async (group, meta, data) => {
        started++;
        await gate;
        await save(group, meta, data);
        saved++;
      };
    }
    const g = leader.group(1)!;
    const write = (): Promise<unknown> => g.propose(Uint8Array.of(1), 10_000);
    // Past the threshold: each node starts a snapshot, and its saving hangs.
    for (let i = 0; i < 25; i++) await write();
    await waitFor(() => started >= 1 || null, "a snapshot to start", 10_000);
    // Writes go on committing meanwhile (a loop waiting on the save would time these out).
    const results = await Promise.all(Array.from({ length: 30 }, write));
    assert.equal(results.length, 30);
    assert.equal(saved, 0, "no snapshot was saved while held");
    release();
    await waitFor(() => (saved >= started && saved >= all.length) || null, "every started snapshot to be saved", 20_000);
  });
});
