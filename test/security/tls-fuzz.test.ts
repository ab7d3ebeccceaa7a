/**
 * Hostile input over TLS before authentication, and an audit log that stays whole when its node
 * is killed while writing it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pack } from "msgpackr";
import { FrameDecoder, Op, PROTOCOL_VERSION, decodeEnvelope, encodeEnvelope, encodeFrame, type Envelope } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/index.ts";
import { makeCerts } from "../../scripts/lib/certs.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";
import { createRng } from "../../src/raft/rng.ts";
import type { Rng } from "../../src/raft/types.ts";

const TOKEN = "fuzz-test-shared-token";

/** One TLS connection that collects what the node sends. */
function open(addr: string, ca: Buffer): Promise<{ socket: tls.TLSSocket; received: Envelope[]; closed: Promise<void> }> {
  const [host, port] = addr.split(":");
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: host!, port: Number(port), ca, minVersion: "TLSv1.2" }, () => resolve({ socket, received, closed }));
    const received: Envelope[] = [];
    const decoder = new FrameDecoder(64 * 1024 * 1024);
    socket.on("data", (d: Buffer) => {
      for (const b of decoder.push(d)) received.push(decodeEnvelope(new Uint8Array(b)));
    });
    socket.on("error", () => {});
    const closed = new Promise<void>((r) => socket.on("close", () => r()));
    socket.once("error", reject);
  });
}

function randomValue(rng: Rng, depth = 0): unknown {
  switch (rng.nextInt(depth > 2 ? 6 : 8)) {
    case 0: return rng.nextInt(2 ** 31) - 2 ** 30;
    case 1: return randomBytes(rng.nextInt(40)).toString("latin1");
    case 2: return randomBytes(rng.nextInt(40));
    case 3: return null;
    case 4: return rng.nextInt(2) === 0;
    case 5: return 2n ** 63n - 1n;
    case 6: return Array.from({ length: rng.nextInt(4) }, () => randomValue(rng, depth + 1));
    default: return Object.fromEntries(Array.from({ length: rng.nextInt(4) }, (_, i) => [["queue", "key", "resource", "token", "v", `f${i}`][rng.nextInt(6)]!, randomValue(rng, depth + 1)]));
  }
}

test("TLS fuzz - 10,000+ hostile frames before authentication: no crash, nothing served, the node still answers", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-fuzz-"));
  const certs = makeCerts(path.join(dir, "certs"), { nodes: ["node_0"] });
  await writeFile(path.join(dir, "token"), TOKEN);
  const cluster = await TestCluster.create(1, { TLS_CA: certs.ca, TLS_CERT: certs.node("node_0").cert, TLS_KEY: certs.node("node_0").key, AUTH_TOKEN_FILE: path.join(dir, "token") });
  const ca = readFileSync(certs.ca);
  const addr = cluster.clientAddrs[0]!;
  const rng = createRng(20261201);
  let frames = 0;
  let served = 0;
  try {
    for (let conn = 0; conn < 60; conn++) {
      const c = await open(addr, ca);
      // Envelopes of any type but HELLO, with any body: each is refused, the connection stays open.
      for (let i = 1; i <= 200; i++) {
        let type = rng.nextInt(256);
        if (type === Op.HELLO) type = Op.KV_PUT;
        c.socket.write(encodeFrame(encodeEnvelope({ type, id: i, body: randomValue(rng) })));
        frames++;
      }
      // Then one ending: a frame that is not an envelope, a HELLO with a wrong token, or nothing.
      const ending = conn % 3;
      if (ending === 0) c.socket.write(encodeFrame(rng.nextInt(2) === 0 ? new Uint8Array(randomBytes(1 + rng.nextInt(64))) : new Uint8Array(pack(randomValue(rng)))));
      if (ending === 1) c.socket.write(encodeFrame(encodeEnvelope({ type: Op.HELLO, id: 999, body: { v: PROTOCOL_VERSION, token: randomBytes(8).toString("hex") } })));
      frames += ending === 2 ? 0 : 1;
      await Promise.race([c.closed, waitFor(async () => c.received.length >= 200, "the refusals", 10_000).catch(() => undefined)]);
      assert.ok(c.received.length >= 200 || c.socket.destroyed, `connection ${conn}: ${c.received.length} answers`);
      for (const e of c.received) if (e.type === Op.REPLY) served++;
      c.socket.destroy();
    }
    assert.ok(frames >= 10_000, `sent ${frames} frames`);
    assert.equal(served, 0, "no request got a REPLY without a successful HELLO");
    // The node is alive and serves an authenticated client.
    const good = new DsyncClient({ nodes: [addr], tls: { ca }, token: TOKEN, maxAttempts: 2 });
    try {
      assert.equal((await good.ping()).nodeId, "node_0");
    } finally {
      await good.close();
    }
    assert.ok(cluster.nodes[0]!.alive, cluster.nodes[0]!.output.slice(-2000));
    assert.doesNotMatch(cluster.nodes[0]!.output, /"level":50|INTERNAL/, "no handler failure was logged");
  } finally {
    await cluster.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test("audit log - a node killed (SIGKILL) while writing its audit log leaves only whole lines, before and after restart", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-audit-kill-"));
  const audit = path.join(dir, "audit.log");
  await writeFile(path.join(dir, "token"), TOKEN);
  const cluster = await TestCluster.create(1, { AUTH_TOKEN_FILE: path.join(dir, "token"), AUDIT_LOG: audit, AUDIT_WRITES: "true" });
  const node = cluster.nodes[0]!;
  const writers: DsyncClient[] = [];
  try {
    for (let i = 0; i < 4; i++) writers.push(new DsyncClient({ nodes: [node.clientAddr], token: TOKEN, maxAttempts: 1, requestTimeoutMs: 2000 }));
    let stop = false;
    const loops = writers.map(async (w, i) => {
      for (let n = 0; !stop && n < 5000; n++) await w.call(Op.KV_PUT, { key: `k${i}-${n}`, value: new Uint8Array([n & 255]) }).catch(() => undefined);
    });
    await waitFor(async () => (await readFile(audit, "utf8").catch(() => "")).length > 20_000, "audit records to pile up", 30_000);
    await node.kill("SIGKILL");
    stop = true;
    await Promise.all(loops);
    const parse = (text: string): number => {
      const lines = text.split("\n");
      assert.equal(lines.at(-1), "", "the file ends with a newline");
      for (const l of lines.slice(0, -1)) assert.doesNotThrow(() => JSON.parse(l), `line parses: ${l.slice(0, 80)}`);
      return lines.length - 1;
    };
    const before = parse(await readFile(audit, "utf8"));
    assert.ok(before > 100, `${before} records written before the kill`);
    await node.start();
    const after = await readFile(audit, "utf8");
    assert.ok(parse(after) >= before);
    const writes = after.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { event: string; op?: string });
    assert.ok(writes.some((r) => r.event === "write" && r.op === "KV_PUT"), "AUDIT_WRITES records each write");
  } finally {
    await Promise.all(writers.map((w) => w.close()));
    await cluster.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
