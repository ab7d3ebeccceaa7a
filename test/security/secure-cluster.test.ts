/**
 * A real 3-node cluster with TLS everywhere (an openssl-made CA), mutual TLS between peers,
 * signed tokens with roles, client certificates, rate limits and audit logs.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { SignJWT } from "jose";
import { DsyncClient, LockClient, CacheClient, QueueClient } from "../../src/client/index.ts";
import { DsyncError, ErrorCode, Op } from "../../protocol/index.ts";
import type { ClientOptions } from "../../src/client/options.ts";
import { makeCerts, type CertSet } from "../../scripts/lib/certs.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

const SECRET = "secure-cluster-test-secret-of-enough-length";
const ADMIN_TOKEN = "admin-shared-token-for-tests";
const ROLES = {
  roles: {
    worker: { allow: ["lock:acquire orders/*", "lock:read", "queue:enqueue orders", "queue:consume orders", "queue:read orders", "cache:get user:*", "kv:get"] },
    limited: { allow: ["kv:get", "status"], rate: { requestsPerSec: 5 } },
    operator: { allow: ["admin:*", "status"] },
  },
  certificates: { "worker-cert": ["worker"] },
};

let dir: string;
let certs: CertSet;
let cluster: TestCluster;
let rolesFile: string;
const open: DsyncClient[] = [];

function tokenFor(sub: string, roles: string[], expSeconds = Math.floor(Date.now() / 1000) + 3600, secret = SECRET): Promise<string> {
  return new SignJWT({ roles }).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime(expSeconds).sign(new TextEncoder().encode(secret));
}

function client(extra: Partial<ClientOptions> = {}): DsyncClient {
  const c = new DsyncClient({ nodes: cluster.clientAddrs, tls: { ca: readFileSync(certs.ca) }, maxAttempts: 3, connectTimeoutMs: 3000, requestTimeoutMs: 5000, ...extra });
  open.push(c);
  return c;
}

const admin = (): DsyncClient => client({ token: ADMIN_TOKEN });

async function codeOf(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DsyncError, `expected a DsyncError, got ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  assert.fail("expected the call to fail");
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "dsync-secure-"));
  certs = makeCerts(path.join(dir, "certs"), { nodes: ["node_0", "node_1", "node_2"], clients: ["worker-cert", "stranger"] });
  await writeFile(path.join(dir, "jwt-secret"), SECRET);
  await writeFile(path.join(dir, "admin-token"), ADMIN_TOKEN);
  rolesFile = path.join(dir, "roles.json");
  await writeFile(rolesFile, JSON.stringify(ROLES));
  const env = { TLS_CA: certs.ca, AUTH_JWT_SECRET_FILE: path.join(dir, "jwt-secret"), AUTH_TOKEN_FILE: path.join(dir, "admin-token"), AUTH_ROLES_FILE: rolesFile };
  const nodeEnv = [0, 1, 2].map((i) => ({ TLS_CERT: certs.node(`node_${i}`).cert, TLS_KEY: certs.node(`node_${i}`).key, AUDIT_LOG: path.join(dir, `audit-${i}.log`) }));
  cluster = await TestCluster.create(3, env, nodeEnv);
  // Mutual TLS between the peers works: every node links to both others and a leader is elected.
  const a = admin();
  await waitFor(async () => {
    for (const n of cluster.nodes) {
      const probe = new DsyncClient({ nodes: [n.clientAddr], tls: { ca: readFileSync(certs.ca) }, token: ADMIN_TOKEN, maxAttempts: 1, preferLeader: false });
      const s = await probe.status().catch(() => null);
      await probe.close();
      if (!s || s.leader === null || !s.peers.every((p) => p.connected)) return false;
    }
    await a.call(Op.KV_PUT, { key: "ready", value: new Uint8Array([1]) });
    return true;
  }, "a leader elected over mutual TLS", 30_000);
});

after(async () => {
  await Promise.all(open.map((c) => c.close()));
  await cluster?.destroy();
  await rm(dir, { recursive: true, force: true });
});

test("secure cluster - a plaintext client is told the port speaks TLS; a client trusting another CA is told so", async () => {
  const plain = new DsyncClient({ nodes: [cluster.clientAddrs[0]!], token: ADMIN_TOKEN, maxAttempts: 1 });
  open.push(plain);
  const p = await codeOf(plain.ready());
  assert.equal(p.code, ErrorCode.TLS_REQUIRED);
  assert.match(p.message, /this port speaks TLS/);
  const other = makeCerts(path.join(dir, "other-ca"), { nodes: [], caName: "some other CA" });
  const wrongCa = new DsyncClient({ nodes: [cluster.clientAddrs[0]!], token: ADMIN_TOKEN, tls: { ca: readFileSync(other.ca) }, maxAttempts: 1 });
  open.push(wrongCa);
  const w = await codeOf(wrongCa.ready());
  assert.equal(w.code, ErrorCode.UNAUTHENTICATED);
  assert.match(w.message, /not signed by the CA you trust/);
});

test("secure cluster - roles: allowed operations run, denied ones get PERMISSION_DENIED and change nothing", async () => {
  const a = admin();
  const w = client({ token: await tokenFor("alice", ["worker"]) });
  const hello = (await w.ready()).serverInfo!;
  assert.deepEqual(hello.identity?.roles, ["worker"]);
  assert.equal(hello.identity?.subject, "alice");
  // Locks: orders/* yes, payroll/* no.
  const locks = new LockClient(w);
  const held = await locks.acquire("orders/1", { waitMs: 0 });
  await locks.release(held);
  const denied = await codeOf(locks.acquire("payroll/1", { waitMs: 0 }));
  assert.equal(denied.code, ErrorCode.PERMISSION_DENIED);
  assert.match(denied.message, /alice may not lock:acquire payroll\/1 \(roles: worker\)/);
  const status = (await a.call(Op.LOCK_STATUS, { resource: "payroll/1" })) as { holders: unknown[]; waiters: unknown[] };
  assert.deepEqual([status.holders.length, status.waiters.length], [0, 0], "the denied acquire left nothing behind");
  await locks.close();
  // Queues: enqueue to orders, not to payroll.
  const q = new QueueClient(w);
  await q.enqueue("orders", "o-1");
  assert.equal((await codeOf(q.enqueue("payroll", "p-1"))).code, ErrorCode.PERMISSION_DENIED);
  const depth = ((await a.call(Op.QUEUE_STATS, { queue: "payroll" })) as { stats: { depth: number } }).stats.depth;
  assert.equal(depth, 0, "the denied enqueue added nothing");
  assert.equal((await codeOf(w.call(Op.QUEUE_LIST, {}))).code, ErrorCode.PERMISSION_DENIED, "listing every queue needs queue:read *");
  assert.equal((await codeOf(w.call(Op.QUEUE_PURGE, { queue: "orders" }))).code, ErrorCode.PERMISSION_DENIED, "purging needs queue:manage");
  // Cache: get user:*, never set.
  const ac = new CacheClient(a);
  await ac.set("user:1", "v1");
  const wc = new CacheClient(w);
  assert.equal(await wc.getString("user:1"), "v1");
  assert.equal((await codeOf(wc.set("user:1", "forged"))).code, ErrorCode.PERMISSION_DENIED);
  assert.equal((await codeOf(wc.get("session:1"))).code, ErrorCode.PERMISSION_DENIED);
  assert.equal(await ac.getString("user:1"), "v1", "the denied set changed nothing");
  // KV: read yes, write no.
  assert.equal((await codeOf(w.call(Op.KV_PUT, { key: "k", value: new Uint8Array([9]) }))).code, ErrorCode.PERMISSION_DENIED);
  assert.equal(((await a.call(Op.KV_GET, { key: "k" })) as { found: boolean }).found, false);
  assert.equal(((await w.call(Op.KV_GET, { key: "ready" })) as { found: boolean }).found, true);
  // Admin: not for workers; the operator may.
  assert.equal((await codeOf(w.call(Op.ADMIN_TRANSFER_LEADER, {}))).code, ErrorCode.PERMISSION_DENIED);
  assert.equal((await codeOf(w.call(Op.STATUS, {}))).code, ErrorCode.PERMISSION_DENIED);
  const op = client({ token: await tokenFor("olga", ["operator"]) });
  const leaderBefore = (await op.status()).leader;
  assert.ok(leaderBefore !== null);
  await op.call(Op.ADMIN_TRANSFER_LEADER, {});
});

test("secure cluster - expired and wrongly signed tokens are refused; an expiring connection re-reads its token file", async () => {
  const expired = client({ token: await tokenFor("bob", ["worker"], Math.floor(Date.now() / 1000) - 5), maxAttempts: 1 });
  const e = await codeOf(expired.ready());
  assert.equal(e.code, ErrorCode.UNAUTHENTICATED);
  assert.match(e.message, /the token expired at/);
  const forged = client({ token: await tokenFor("bob", ["operator"], undefined, "not-the-cluster-secret-but-long-enough-anyway"), maxAttempts: 1 });
  assert.match((await codeOf(forged.ready())).message, /signature does not match/);
  // A token valid for 2 more seconds: the connection works, then the node asks for a new token.
  const file = path.join(dir, "carol-token");
  await writeFile(file, await tokenFor("carol", ["worker"], Math.floor(Date.now() / 1000) + 2));
  const raw = client({ tokenFile: file, maxAttempts: 1 });
  await raw.call(Op.KV_GET, { key: "ready" });
  await new Promise((r) => setTimeout(r, 2600));
  assert.equal((await codeOf(raw.call(Op.KV_GET, { key: "ready" }))).code, ErrorCode.TOKEN_EXPIRED);
  // With a fresh token in the file, the client's retry reconnects with it and goes on.
  await writeFile(file, await tokenFor("carol", ["worker"]));
  const c = client({ tokenFile: file });
  await c.call(Op.KV_GET, { key: "ready" });
  await writeFile(file, await tokenFor("carol", ["worker"], Math.floor(Date.now() / 1000) + 2));
  const later = client({ tokenFile: file });
  await later.call(Op.KV_GET, { key: "ready" });
  await new Promise((r) => setTimeout(r, 2600));
  await writeFile(file, await tokenFor("carol", ["worker"]));
  assert.equal(((await later.call(Op.KV_GET, { key: "ready" })) as { found: boolean }).found, true, "TOKEN_EXPIRED, then a new HELLO with the file's new token");
});

test("secure cluster - a client certificate maps to roles; an unmapped one is refused", async () => {
  const mine = certs.client("worker-cert");
  const c = client({ tls: { ca: readFileSync(certs.ca), cert: readFileSync(mine.cert), key: readFileSync(mine.key) } });
  const hello = (await c.ready()).serverInfo!;
  assert.equal(hello.identity?.via, "certificate");
  assert.equal(hello.identity?.subject, "worker-cert");
  await new QueueClient(c).enqueue("orders", "by-cert");
  assert.equal((await codeOf(c.call(Op.KV_PUT, { key: "k", value: new Uint8Array([1]) }))).code, ErrorCode.PERMISSION_DENIED);
  const s = certs.client("stranger");
  const stranger = client({ tls: { ca: readFileSync(certs.ca), cert: readFileSync(s.cert), key: readFileSync(s.key) }, maxAttempts: 1 });
  assert.match((await codeOf(stranger.ready())).message, /maps to no role/);
});

test("secure cluster - over its rate an identity gets RATE_LIMITED with a retry-after hint", async () => {
  const c = client({ token: await tokenFor("flood", ["limited"]), maxAttempts: 1 });
  await c.ready();
  const results = await Promise.allSettled(Array.from({ length: 40 }, () => c.call(Op.KV_GET, { key: "ready" })));
  const limited = results.filter((r) => r.status === "rejected" && (r.reason as DsyncError).code === ErrorCode.RATE_LIMITED);
  const served = results.filter((r) => r.status === "fulfilled");
  // A burst of one second's worth (5) is served at once; 40 at once cannot all fit in the burst.
  assert.ok(served.length >= 5, `served ${served.length}`);
  assert.ok(limited.length >= 20, `rate-limited ${limited.length} of 40`);
  const err = (limited[0] as PromiseRejectedResult).reason as DsyncError & { retryAfterMs: number };
  assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 1000, `retryAfterMs ${err.retryAfterMs}`);
  // The admin is not slowed by someone else's limit.
  await admin().call(Op.KV_GET, { key: "ready" });
});

test("secure cluster - SIGHUP re-reads the roles file without dropping connections", async () => {
  const w = client({ token: await tokenFor("dave", ["worker"]) });
  const locks = new LockClient(w);
  assert.equal((await codeOf(locks.acquire("payroll/9", { waitMs: 0 }))).code, ErrorCode.PERMISSION_DENIED);
  const widened = structuredClone(ROLES);
  widened.roles.worker.allow.push("lock:acquire payroll/*");
  await writeFile(rolesFile, JSON.stringify(widened));
  for (const n of cluster.nodes) n.child!.kill("SIGHUP");
  await waitFor(async () => {
    const fresh = client({ token: await tokenFor("dave", ["worker"]), preferLeader: false });
    const ok = await new LockClient(fresh).acquire("payroll/9", { waitMs: 0 }).then(() => true, () => false);
    await fresh.close();
    return ok;
  }, "the widened role to apply", 10_000);
  await locks.close();
});

test("secure cluster - the audit logs hold every case above, one JSON object per line", async () => {
  await new Promise((r) => setTimeout(r, 200)); // the audit log writes in batches every 50 ms
  const records: Record<string, unknown>[] = [];
  for (let i = 0; i < 3; i++) {
    const text = await readFile(path.join(dir, `audit-${i}.log`), "utf8");
    for (const line of text.split("\n").filter(Boolean)) records.push(JSON.parse(line) as Record<string, unknown>);
  }
  const has = (pred: (r: Record<string, unknown>) => boolean, what: string): void => assert.ok(records.some(pred), `audit log records ${what}`);
  has((r) => r.event === "auth" && r.outcome === "ok" && r.identity === "alice" && r.via === "jwt", "alice's authentication");
  has((r) => r.event === "auth" && r.outcome === "ok" && r.identity === "worker-cert" && r.via === "certificate", "a certificate authentication");
  has((r) => r.event === "auth" && r.outcome === "UNAUTHENTICATED" && /expired/.test(String(r.detail)), "an expired token");
  has((r) => r.event === "auth" && r.outcome === "UNAUTHENTICATED" && /signature/.test(String(r.detail)), "a forged token");
  has((r) => r.event === "auth" && r.outcome === "UNAUTHENTICATED" && /plaintext/.test(String(r.detail)), "a plaintext connection");
  has((r) => r.event === "denied" && r.identity === "alice" && r.op === "LOCK_ACQUIRE" && r.resource === "payroll/1", "the denied acquire");
  has((r) => r.event === "denied" && r.op === "CACHE_SET" && r.resource === "user:1", "the denied cache set");
  has((r) => r.event === "admin" && r.identity === "olga" && r.op === "ADMIN_TRANSFER_LEADER" && r.outcome === "ok", "the operator's transfer");
  has((r) => r.event === "denied" && r.identity === "alice" && r.op === "ADMIN_TRANSFER_LEADER", "the worker's refused admin call");
  has((r) => r.event === "rate-limited" && r.identity === "flood", "the flood");
  has((r) => r.event === "reload" && r.outcome === "ok", "the SIGHUP reload");
  for (const r of records) {
    assert.equal(typeof r.time, "string");
    assert.ok(["node_0", "node_1", "node_2"].includes(String(r.node)));
  }
  // Secrets never reach the audit log.
  const all = JSON.stringify(records);
  assert.ok(!all.includes(ADMIN_TOKEN) && !all.includes(SECRET) && !all.includes("eyJ"), "no token or secret in the audit log");
});
