import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { DeadlockError, Op } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { LockClient, type Lock, type LockMode } from "../../src/client/locks.ts";
import { ROOT, TestCluster, waitFor } from "../helpers/daemon.ts";
import { leaderOf } from "../helpers/cluster-view.ts";

/** One grant as the client saw it; times are performance.now() in this process. */
interface Grant {
  readonly resource: string;
  readonly mode: LockMode;
  readonly token: number;
  readonly grantedAt: number;
  /** When the client asked to give the lock up (release or session close). */
  endAt: number;
  lost: boolean;
}

/**
 * Checks a lock history in token order: a token belongs to one exclusive grant, or to shared
 * grants only (readers granted by one log entry share its index as token); and a grant never
 * comes back to a client before every conflicting earlier grant was given up. (The server can
 * only grant after applying the release, which the client sends at `endAt`.)
 */
function checkHistory(grants: Grant[]): { checked: number } {
  const byResource = new Map<string, Grant[]>();
  for (const g of grants) byResource.set(g.resource, [...(byResource.get(g.resource) ?? []), g]);
  let checked = 0;
  for (const [resource, list] of byResource) {
    list.sort((a, b) => a.token - b.token);
    for (let i = 1; i < list.length; i++) {
      const [a, b] = [list[i - 1]!, list[i]!];
      assert.ok(b.token > a.token || (b.token === a.token && a.mode === "shared" && b.mode === "shared"), `${resource}: token ${b.token} granted twice (${a.mode} and ${b.mode})`);
    }
    for (let i = 0; i < list.length; i++) {
      const earlier = list[i]!;
      if (earlier.lost) continue; // Taken away by expiry: fencing tokens, not time, protect it.
      for (let j = i + 1; j < list.length; j++) {
        const later = list[j]!;
        if (earlier.mode === "shared" && later.mode === "shared") continue;
        if (later.token === earlier.token) continue;
        checked++;
        assert.ok(
          later.grantedAt >= earlier.endAt,
          `${resource}: ${later.mode} token ${later.token} was granted at ${later.grantedAt.toFixed(1)} while ${earlier.mode} token ${earlier.token} was held until ${earlier.endAt.toFixed(1)}`,
        );
      }
    }
  }
  return { checked };
}

test("locks - 64 clients, shared and exclusive, leader killed and restarted: no overlap, tokens increase", { timeout: 240_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const transports = Array.from({ length: 4 }, () => new DsyncClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 4000, maxAttempts: 30 }));
  const grants: Grant[] = [];
  const errors = new Map<string, number>();
  let stop = false;
  try {
    await leaderOf(cluster);
    const resources = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"];
    const worker = async (i: number): Promise<void> => {
      let locks = new LockClient(transports[i % 4]!, { sessionTtlMs: 5000, clientId: `w${i}` });
      let held: Grant[] = [];
      const watch = (lc: LockClient): void => {
        lc.on("lost", (l) => held.filter((g) => g.token === l.token).forEach((g) => (g.lost = true)));
        lc.on("session-expired", () => held.forEach((g) => (g.lost = true)));
      };
      watch(locks);
      for (let n = 0; !stop && n < 10_000; n++) {
        const resource = resources[(i * 7 + n) % resources.length]!;
        const mode: LockMode = (i + n) % 10 < 3 ? "shared" : "exclusive";
        try {
          const lock = await locks.acquire(resource, { mode });
          const g: Grant = { resource, mode, token: lock.token, grantedAt: performance.now(), endAt: Infinity, lost: false };
          grants.push(g);
          held.push(g);
          // Holds of 10–40 ms: long against a grant's round trip, so an overlap would show.
          await new Promise((r) => setTimeout(r, 10 + Math.random() * 30));
          g.endAt = performance.now();
          await locks.release(lock);
          held = held.filter((h) => h !== g);
        } catch (err) {
          const name = (err as Error).name;
          errors.set(name, (errors.get(name) ?? 0) + 1);
          // Unsure what the cluster holds for us: end the session, which releases everything.
          const now = performance.now();
          for (const g of held) g.endAt = Math.min(g.endAt, now);
          held = [];
          await locks.close().catch(() => {});
          locks = new LockClient(transports[i % 4]!, { sessionTtlMs: 5000, clientId: `w${i}` });
          watch(locks);
        }
      }
      await locks.close().catch(() => {});
    };
    const workers = Array.from({ length: 64 }, (_, i) => worker(i));
    // Kill the leader three times while the clients hammer away, restarting it each time.
    for (let k = 0; k < 3; k++) {
      await new Promise((r) => setTimeout(r, 1500));
      const { node: leader } = await leaderOf(cluster);
      await leader.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 700));
      await leader.start();
    }
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await Promise.all(workers);
    const { checked } = checkHistory(grants);
    assert.ok(grants.length > 500, `the clients got ${grants.length} grants`);
    assert.ok(checked > 1000, `${checked} conflicting pairs were checked`);
    const byRes = new Set(grants.map((g) => g.resource));
    assert.equal(byRes.size, resources.length);
    // Grants taken away by expiry are left out of the overlap check above, so they are bounded:
    // sessions live 5 s while each failover takes the leader away for 0.7 s plus an election, so
    // a session should only lapse when a client's keep-alives missed a whole failover; allow one
    // such session per client (64), each holding at most one grant at a time.
    const lostGrants = grants.filter((g) => g.lost).length;
    assert.ok(lostGrants <= 64, `${lostGrants} grants were lost to session expiry (at most 64 expected)`);
    // Errors are allowed (a request may time out while no leader exists), never silent overlap.
    console.log(`locks: ${grants.length} grants (${lostGrants} lost to expiry), ${checked} conflicting pairs checked, errors ${JSON.stringify(Object.fromEntries(errors))}`);
  } finally {
    stop = true;
    for (const t of transports) await t.close();
    await cluster.destroy();
  }
});

test("locks - deadlocks of two and three owners are refused at once", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const c = new DsyncClient({ nodes: cluster.clientAddrs });
  try {
    await leaderOf(cluster);
    const [a, b, d] = [new LockClient(c, { clientId: "a" }), new LockClient(c, { clientId: "b" }), new LockClient(c, { clientId: "d" })];
    // Two owners: a holds x and waits for y; b holds y and asks for x.
    await a.acquire("x");
    await b.acquire("y");
    const aWaits = a.acquire("y");
    await waitFor(async () => ((await c.call(Op.LOCK_STATUS, { resource: "y" })) as { waiters: unknown[] }).waiters.length === 1, "a to queue on y");
    const started = performance.now();
    // b's session is the younger one, so b's request is the one refused.
    await assert.rejects(b.acquire("x"), DeadlockError);
    const refusedInMs = performance.now() - started;
    await b.close(); // frees y, so a gets it
    const aLock = await aWaits;
    assert.equal(aLock.resource, "y");
    await a.close();

    // Three owners: p→q→r→p.
    const [p, q, r] = [new LockClient(c, { clientId: "p" }), new LockClient(c, { clientId: "q" }), new LockClient(c, { clientId: "r" })];
    await p.acquire("l1");
    await q.acquire("l2");
    await r.acquire("l3");
    const pWaits = p.acquire("l2");
    const qWaits = q.acquire("l3");
    await waitFor(async () => ((await c.call(Op.LOCK_STATUS, { resource: "l3" })) as { waiters: unknown[] }).waiters.length === 1, "q to queue on l3");
    await assert.rejects(r.acquire("l1"), DeadlockError);
    await r.close();
    await qWaits;
    await q.close();
    await pWaits;
    await p.close();
    await d.close();
    const list = (await c.call(Op.LOCK_LIST, {})) as { stats: { deadlocks: number } };
    assert.equal(list.stats.deadlocks, 2);
    // One round trip: the refusal is the reply to the request that closed the cycle.
    console.log(`deadlock refused in ${refusedInMs.toFixed(1)} ms`);
  } finally {
    await c.close();
    await cluster.destroy();
  }
});

test("locks - a client killed while holding a lock loses it after its session TTL; the next waiter gets a higher token", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const c = new DsyncClient({ nodes: cluster.clientAddrs });
  try {
    await leaderOf(cluster);
    // The CLI's own node process, not the bin/ wrapper: SIGKILL must reach the lock holder itself.
    const holder = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/dsync.ts"), "--nodes", cluster.clientAddrs.join(","), "--json", "lock", "acquire", "job", "--session-ttl", "2000"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    holder.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    const first = await waitFor(() => (out.includes("token") ? (JSON.parse(out) as Lock) : null), "the holder process to get the lock");
    const waiter = new LockClient(c, { clientId: "waiter" });
    const next = waiter.acquire("job");
    holder.kill("SIGKILL");
    const killedAt = performance.now();
    const got = await next;
    const waitedMs = performance.now() - killedAt;
    assert.ok(got.token > first.token, `the next grant has a higher token (${got.token} > ${first.token})`);
    assert.ok(waitedMs >= 1000, `the lock outlived the dead client for most of its TTL (${waitedMs.toFixed(0)} ms)`);
    const list = (await c.call(Op.LOCK_LIST, {})) as { stats: { sessionExpiries: number } };
    assert.ok(list.stats.sessionExpiries >= 1);
    await waiter.close();
  } finally {
    await c.close();
    await cluster.destroy();
  }
});

test("locks - a lost reply is retried without acquiring twice or releasing another's lock", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  try {
    await leaderOf(cluster);
    const open = async (): Promise<DsyncClient> => new DsyncClient({ nodes: cluster.clientAddrs, preferLeader: true }).ready();
    let a = await open();
    const s = (await a.call(Op.LOCK_SESSION_OPEN, { clientId: "a", ttlMs: 10_000 })) as { sessionId: number };
    // Send the acquire, then cut the connection before the reply can arrive.
    const lost = a.call(Op.LOCK_ACQUIRE, { sessionId: s.sessionId, seq: 1, resource: "res", mode: "exclusive", waitMs: 0 }).catch((e: unknown) => e);
    await a.close();
    assert.ok((await lost) instanceof Error, "the first reply was lost");
    a = await open();
    const retried = (await a.call(Op.LOCK_ACQUIRE, { sessionId: s.sessionId, seq: 1, resource: "res", mode: "exclusive", waitMs: 0 })) as { kind: string; token: number };
    assert.equal(retried.kind, "granted");
    const st = (await a.call(Op.LOCK_STATUS, { resource: "res" })) as { holders: { sessionId: number; token: number }[] };
    assert.deepEqual(st.holders.map((h) => [h.sessionId, h.token]), [[s.sessionId, retried.token]], "held once, by a");

    // Release, lose the reply; someone else takes the lock; the retried release must not free it.
    await a.call(Op.LOCK_RELEASE, { sessionId: s.sessionId, seq: 2, resource: "res", token: retried.token });
    const b = await open();
    const sb = (await b.call(Op.LOCK_SESSION_OPEN, { clientId: "b", ttlMs: 10_000 })) as { sessionId: number };
    const bGrant = (await b.call(Op.LOCK_ACQUIRE, { sessionId: sb.sessionId, seq: 1, resource: "res", mode: "exclusive", waitMs: 0 })) as { token: number };
    const again = (await a.call(Op.LOCK_RELEASE, { sessionId: s.sessionId, seq: 2, resource: "res", token: retried.token })) as { kind: string };
    assert.equal(again.kind, "released", "the retry gets the first answer");
    const after = (await b.call(Op.LOCK_STATUS, { resource: "res" })) as { holders: { sessionId: number; token: number }[] };
    assert.deepEqual(after.holders.map((h) => [h.sessionId, h.token]), [[sb.sessionId, bGrant.token]], "b still holds the lock");
    await a.close();
    await b.close();
  } finally {
    await cluster.destroy();
  }
});
