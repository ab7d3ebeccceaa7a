/** Mutual TLS between nodes: a node whose certificate another CA signed, or that names another node, cannot join. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DsyncClient } from "../../src/client/index.ts";
import { makeCerts } from "../../scripts/lib/certs.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

test("peer TLS - node_1 (certificate from another CA) and node_2 (certificate naming node_0) never link to node_0", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-peer-tls-"));
  const good = makeCerts(path.join(dir, "good"), { nodes: ["node_0"] });
  const foreign = makeCerts(path.join(dir, "foreign"), { nodes: ["node_1"], caName: "a foreign CA" });
  const nodeEnv = [
    { TLS_CERT: good.node("node_0").cert, TLS_KEY: good.node("node_0").key },
    // node_1 trusts the good CA but holds a certificate only the foreign CA vouches for.
    { TLS_CERT: foreign.node("node_1").cert, TLS_KEY: foreign.node("node_1").key },
    // node_2 holds a perfectly valid certificate — node_0's.
    { TLS_CERT: good.node("node_0").cert, TLS_KEY: good.node("node_0").key },
  ];
  const cluster = await TestCluster.create(3, { TLS_CA: good.ca }, nodeEnv);
  try {
    const n0 = cluster.nodes[0]!;
    // node_0 dials both (its id is the smaller): each dial fails on the certificate.
    await waitFor(async () => /not signed by the CA you trust/.test(n0.output) && /names node_0, localhost, .*not node node_2/.test(n0.output), "node_0 to report both refusals", 20_000);
    const c = new DsyncClient({ nodes: [n0.clientAddr], tls: { ca: readFileSync(good.ca) }, maxAttempts: 1, preferLeader: false });
    try {
      const s = await c.status();
      assert.deepEqual(s.peers.map((p) => [p.id, p.connected]), [["node_1", false], ["node_2", false]]);
      assert.equal(s.leader, null, "no quorum forms with impostors");
    } finally {
      await c.close();
    }
    // node_2 dials nobody (its id is the largest) but node_1 dials it: node_2 refuses node_1's foreign certificate.
    await waitFor(async () => /refused a peer connection/.test(cluster.nodes[2]!.output), "node_2 to refuse node_1", 20_000);
  } finally {
    await cluster.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
