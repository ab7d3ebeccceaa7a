import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, readFile, rm, appendFile, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SignJWT } from "jose";
import { ErrorCode, DsyncError } from "../../protocol/index.ts";
import { Authenticator } from "../../src/security/authenticator.ts";
import { parseRoleBook } from "../../src/security/roles.ts";
import { AuditLog } from "../../src/security/audit-log.ts";

const SECRET = "a-test-secret-that-is-long-enough-for-hs256!";
const book = parseRoleBook({ roles: { worker: { allow: ["lock:acquire orders/*"] } } });

async function setup(now: () => number = Date.now): Promise<{ auth: Authenticator; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-auth-"));
  await writeFile(path.join(dir, "secret"), SECRET + "\n");
  const auth = new Authenticator({
    authToken: "shared-token",
    jwt: { secretFile: path.join(dir, "secret"), publicKeyFile: null, issuer: null, audience: null },
    clientCertificates: false,
    roles: () => book,
    now,
  });
  return { auth, dir };
}

function sign(claims: Record<string, unknown>, secret = SECRET, expSeconds = Math.floor(Date.now() / 1000) + 3600): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(String(claims.sub ?? "alice")).setExpirationTime(expSeconds).sign(new TextEncoder().encode(secret));
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DsyncError);
    assert.equal(err.code, ErrorCode.UNAUTHENTICATED);
    return err.message;
  }
  assert.fail("expected UNAUTHENTICATED");
}

test("authenticator - the shared token is all-powerful; a signed token carries its subject, roles and expiry", async () => {
  const { auth, dir } = await setup();
  try {
    const t = await auth.authenticate({ token: "shared-token", address: "127.0.0.1" });
    assert.equal(t.via, "token");
    const exp = Math.floor(Date.now() / 1000) + 600;
    const j = await auth.authenticate({ token: await sign({ sub: "alice", roles: ["worker", "ghost"] }, SECRET, exp), address: "127.0.0.1" });
    assert.equal(j.subject, "alice");
    assert.equal(j.via, "jwt");
    assert.deepEqual(j.roles, ["worker"]);
    assert.equal(j.expiresAt, exp * 1000);
    assert.equal(auth.open, false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("authenticator - expired, wrongly signed, role-less and malformed tokens are refused in plain words", async () => {
  const { auth, dir } = await setup();
  try {
    const expired = await sign({ sub: "alice", roles: ["worker"] }, SECRET, Math.floor(Date.now() / 1000) - 10);
    assert.match(await refusal(auth.authenticate({ token: expired, address: "10.0.0.1" })), /the token expired at/);
    const forged = await sign({ sub: "alice", roles: ["worker"] }, "another-secret-that-is-also-long-enough!!");
    assert.match(await refusal(auth.authenticate({ token: forged, address: "10.0.0.2" })), /signature does not match/);
    assert.match(await refusal(auth.authenticate({ token: await sign({ sub: "alice" }), address: "10.0.0.3" })), /no "roles" claim/);
    assert.match(await refusal(auth.authenticate({ token: "wrong", address: "10.0.0.4" })), /neither this cluster's AUTH_TOKEN nor a signed token/);
    assert.match(await refusal(auth.authenticate({ address: "10.0.0.5" })), /requires authentication/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("authenticator - failed attempts are throttled per address: 5 at once, then one every 2 s", async () => {
  let now = 1_000_000;
  const { auth, dir } = await setup(() => now);
  try {
    for (let i = 0; i < 5; i++) assert.match(await refusal(auth.authenticate({ token: "bad", address: "10.1.1.1" })), /neither/);
    assert.match(await refusal(auth.authenticate({ token: "shared-token", address: "10.1.1.1" })), /too many failed authentications from 10.1.1.1/, "even the right token waits");
    assert.equal((await auth.authenticate({ token: "shared-token", address: "10.1.1.2" })).via, "token", "other addresses are not affected");
    now += 2000;
    assert.equal((await auth.authenticate({ token: "shared-token", address: "10.1.1.1" })).via, "token");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("authenticator - a short JWT secret is refused at start", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-auth-"));
  try {
    await writeFile(path.join(dir, "secret"), "short");
    assert.throws(() => new Authenticator({ authToken: null, jwt: { secretFile: path.join(dir, "secret"), publicKeyFile: null, issuer: null, audience: null }, clientCertificates: false, roles: () => book }), /use at least 32/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("audit log - one JSON line per record, fsynced in batches; a torn last line is cut off on open; rotation by size", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-audit-"));
  const file = path.join(dir, "audit.log");
  try {
    const log = await AuditLog.open({ file, node: "n1", maxBytes: 4096, keep: 2 });
    for (let i = 0; i < 5; i++) log.record({ event: "auth", identity: `u${i}`, outcome: "ok" });
    await log.flush();
    const lines = (await readFile(file, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 5);
    assert.equal(lines[0]!.node, "n1");
    assert.equal(lines[4]!.identity, "u4");
    assert.ok(typeof lines[0]!.time === "string");
    await log.close();
    // A crash in the middle of a line (power loss): the next open keeps only whole lines.
    await appendFile(file, '{"time":"2026-01-01T00:00:00Z","event":"au');
    const again = await AuditLog.open({ file, node: "n1", maxBytes: 4096, keep: 2 });
    const text = await readFile(file, "utf8");
    assert.ok(text.endsWith("\n"));
    assert.equal(text.trim().split("\n").length, 5);
    // Past maxBytes the file moves to .1 (then .2); at most `keep` old files remain.
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 20; i++) again.record({ event: "write", identity: "x".repeat(40), outcome: "ok" });
      await again.flush();
    }
    await again.close();
    assert.ok((await stat(`${file}.1`)).size > 0);
    assert.ok((await stat(`${file}.2`)).size > 0);
    await assert.rejects(stat(`${file}.3`));
    for (const f of [file, `${file}.1`, `${file}.2`]) {
      for (const l of (await readFile(f, "utf8")).trim().split("\n")) JSON.parse(l);
      assert.ok((await stat(f)).size <= 4096 + 200 * 20);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
