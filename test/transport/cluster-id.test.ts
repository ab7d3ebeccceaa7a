/**
 * Cluster ids on the peer port: nodes of one cluster link; a node of another cluster (e.g. the
 * one a backup was restored from, on the same node ids) is refused with WRONG_CLUSTER and never
 * linked; a joining node without an id adopts the first one it is shown and keeps it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PeerLinks } from "../../src/transport/peer-links.ts";
import { ClusterIdentity, foundingClusterId, restoredClusterId } from "../../src/host/cluster-id.ts";
import { createLogger } from "../../src/host/logger.ts";
import { freePort, waitFor } from "../helpers/daemon.ts";

interface Seen {
  readonly warnings: string[];
}

async function links(id: string, port: number, peer: { id: string; port: number }, cluster: { id: string | null; adopt(id: string): void }, seen: Seen): Promise<PeerLinks> {
  const log = createLogger(id, "silent");
  log.warn = ((obj: unknown, msg?: string) => void seen.warnings.push(typeof obj === "string" ? obj : (msg ?? ""))) as typeof log.warn;
  const p = new PeerLinks({
    selfId: id,
    selfClientAddr: "127.0.0.1:1",
    host: "127.0.0.1",
    port,
    peers: [{ id: peer.id, addr: `127.0.0.1:${peer.port}` }],
    maxFrameBytes: 1 << 20,
    token: null,
    cluster,
    log,
    onMessage: () => undefined,
  });
  await p.listen();
  return p;
}

function fixed(id: string | null): { id: string | null; adopt(id: string): void } {
  return { id, adopt: () => undefined };
}

test("cluster id - peers of different clusters are refused with WRONG_CLUSTER; the same cluster links", async () => {
  const [pa, pb] = [await freePort(), await freePort()];
  const seen: Seen = { warnings: [] };
  const old = foundingClusterId(["a", "b"]);
  const restored = restoredClusterId("f".repeat(64), ["a", "b"]);
  assert.notEqual(old, restored);
  const a = await links("a", pa, { id: "b", port: pb }, fixed(old), seen);
  const b = await links("b", pb, { id: "a", port: pa }, fixed(restored), seen);
  try {
    await waitFor(() => seen.warnings.some((w) => /belongs to cluster/.test(w)), "a refusal", 5000);
    assert.equal(a.isConnected("b"), false);
    assert.equal(b.isConnected("a"), false);
  } finally {
    await a.close();
    await b.close();
  }
  // The same ids in one cluster link up.
  const c = await links("a", pa, { id: "b", port: pb }, fixed(old), seen);
  const d = await links("b", pb, { id: "a", port: pa }, fixed(old), seen);
  try {
    await waitFor(() => c.isConnected("b") && d.isConnected("a"), "the link", 5000);
  } finally {
    await c.close();
    await d.close();
  }
});

test("cluster id - a joining node adopts the first id a peer shows and keeps it in its data dir", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-cluster-id-"));
  try {
    const founding = ClusterIdentity.load(path.join(dir, "founder"), ["a", "b"], false);
    assert.equal(founding.id, foundingClusterId(["b", "a"]), "founders agree whatever the order of their voters");
    const joiner = ClusterIdentity.load(path.join(dir, "joiner"), [], true);
    assert.equal(joiner.id, null);
    const [pa, pb] = [await freePort(), await freePort()];
    const seen: Seen = { warnings: [] };
    const a = await links("a", pa, { id: "b", port: pb }, founding, seen);
    const b = await links("b", pb, { id: "a", port: pa }, joiner, seen);
    try {
      await waitFor(() => a.isConnected("b") && b.isConnected("a"), "the link", 5000);
      assert.equal(joiner.id, founding.id);
      assert.equal((await readFile(path.join(dir, "joiner", "cluster-id"), "utf8")).trim(), founding.id);
      assert.equal(ClusterIdentity.load(path.join(dir, "joiner"), [], true).id, founding.id, "kept across restarts");
    } finally {
      await a.close();
      await b.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
