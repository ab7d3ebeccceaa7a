/**
 * A graceful stop that lands while a Ready iteration waits on its fsync must not turn into a
 * storage failure. Found by the fault campaign (a rolling restart, seed 1929917318): the group
 * loop went on after its fsync to take a snapshot on the WAL the stop had just closed, and the
 * node exited with status 70 ("storage failure: WAL is closed") instead of 0.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RaftHost } from "../../src/host/raft-host.ts";
import { createLogger } from "../../src/host/logger.ts";
import type { PeerLinks } from "../../src/transport/peer-links.ts";
import { removeDir, tempDir } from "../storage/wal-fixtures.ts";
import { waitFor } from "../helpers/daemon.ts";
import { Counter } from "./in-process-cluster.ts";

test("raft host - a stop during an fsync waits for the iteration and is not a storage failure", async () => {
  for (let round = 0; round < 12; round++) {
    const dir = await tempDir();
    const fatal: Error[] = [];
    const noPeers = { send: () => false } as unknown as PeerLinks;
    const host = await RaftHost.open({
      nodeId: "n1",
      dataDir: dir,
      fsync: true,
      voters: ["n1"],
      electionTimeoutMs: 50,
      heartbeatIntervalMs: 10,
      // Every applied entry asks for a snapshot: the step that used to hit the closed WAL.
      snapshotThreshold: 1,
      peers: noPeers,
      log: createLogger("n1", "silent"),
      onFatal: (err) => fatal.push(err),
    });
    try {
      const group = await host.addGroup(1, new Counter());
      host.start();
      await waitFor(() => (group.isLeader ? true : null), "a leader", 5000);
      // Keep writes flowing so that the stop below lands while one of them is being fsynced.
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 50; i++) writes.push(group.propose(Uint8Array.of(i), 5000).catch((err: unknown) => err));
      await new Promise((resolve) => setTimeout(resolve, round % 5));
      await host.close();
      const outcomes = await Promise.all(writes);
      assert.deepEqual(fatal, [], `round ${round}: a clean stop reported a storage failure`);
      for (const o of outcomes) if (o instanceof Error) assert.equal((o as { code?: unknown }).code !== undefined, true, `round ${round}: ${o.message}`);
    } finally {
      await removeDir(dir);
    }
  }
});
