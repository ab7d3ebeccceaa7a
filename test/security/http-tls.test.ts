import { test } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Registry } from "prom-client";
import { HttpSidePort } from "../../src/server/http-side-port.ts";
import { TlsMaterial } from "../../src/security/tls.ts";
import { makeCerts } from "../../scripts/lib/certs.ts";
import { freePort } from "../helpers/daemon.ts";

function get(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

test("HTTP side port over TLS (HTTP_TLS): /health and /metrics over HTTPS with the node's certificate; plain HTTP gets nothing", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-http-tls-"));
  const certs = makeCerts(dir, { nodes: ["node_0"] });
  const material = new TlsMaterial({ ...certs.node("node_0"), ca: certs.ca });
  const registry = new Registry();
  const port = await freePort();
  const side = new HttpSidePort("127.0.0.1", port, () => ({ status: "serving", nodeId: "node_0", role: "leader", term: 1, leader: "node_0", uptimeMs: 1 }), registry, () => {}, material);
  await side.listen();
  try {
    const ca = readFileSync(certs.ca);
    const health = await get(`https://127.0.0.1:${port}/health`, ca);
    assert.equal(health.status, 200);
    assert.equal((JSON.parse(health.body) as { nodeId: string }).nodeId, "node_0");
    assert.equal((await get(`https://localhost:${port}/metrics`, ca)).status, 200);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health`), "plain HTTP is not served");
    const other = makeCerts(path.join(dir, "other"), { nodes: [], caName: "other" });
    await assert.rejects(get(`https://127.0.0.1:${port}/health`, readFileSync(other.ca)), /self-signed|unable to verify|certificate/i);
  } finally {
    await side.close();
    await rm(dir, { recursive: true, force: true });
  }
});
