/**
 * `dsync admin backup` under load, `dsyncd --restore-from` into a fresh 3-node cluster on other
 * node ids and ports: the same locks, sessions, KV and queue contents (in-flight messages
 * included); a corrupt or truncated backup is refused and writes nothing; the restored cluster
 * has a new id, so its nodes refuse links from the old one's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { DsyncClient, LockClient, QueueClient, connect } from "../../src/client/index.ts";
import { Op, type KvGetReply, type LockListReply } from "../../protocol/index.ts";
import { ROOT, TestCluster, daemonsOf, nodeSpecs, waitFor } from "../helpers/daemon.ts";

const execFileAsync = promisify(execFile);

const KV_KEYS = 20;
/** Bounds of the load that runs while the backup is taken. */
const LOAD_MAX_OPS = 3000;
const LOAD_MAX_MS = 15_000;

function dsyncd(args: readonly string[], env: Record<string, string>): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/dsyncd.ts"), ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** What the comparison looks at: lock holders, KV values, the queue's counts and message ids. */
async function stateOf(c: DsyncClient, queueIds: () => Promise<number[]>): Promise<unknown> {
  const locks = (await c.call(Op.LOCK_LIST, {})) as LockListReply;
  const held = locks.resources
    .filter((r) => r.resource.startsWith("fixed/"))
    .map((r) => ({ resource: r.resource, holders: r.holders.map((h) => ({ sessionId: h.sessionId, mode: h.mode, token: h.token })) }))
    .sort((a, b) => a.resource.localeCompare(b.resource));
  const kv: Record<string, string | null> = {};
  for (let i = 0; i < KV_KEYS; i++) {
    const r = (await c.call(Op.KV_GET, { key: `fixed/${i}` })) as KvGetReply;
    kv[`fixed/${i}`] = r.found && r.value ? Buffer.from(r.value).toString() : null;
  }
  const q = new QueueClient(c);
  const s = (await q.stats("fixed-jobs")).stats;
  return { held, kv, depth: s.depth, inFlight: s.inFlight, visibleIds: await queueIds() };
}

test("backup and restore - a backup taken under load restores the same locks, sessions, KV and queues into a new cluster", async (t) => {
  const source = await TestCluster.create(3);
  let restored: TestCluster | null = null;
  const clients: DsyncClient[] = [];
  const file = path.join(source.dir, "cluster.dsb");
  try {
    const c = await connect({ nodes: source.clientAddrs });
    clients.push(c);
    // Fixed state: a session holding two locks, KV keys, a queue with messages visible and in flight.
    const locks = new LockClient(c, { sessionTtlMs: 120_000 });
    await locks.acquire("fixed/orders", { mode: "exclusive" });
    await locks.acquire("fixed/reports", { mode: "shared" });
    for (let i = 0; i < KV_KEYS; i++) await c.call(Op.KV_PUT, { key: `fixed/${i}`, value: Buffer.from(`v${i}`) });
    const q = new QueueClient(c);
    for (let i = 0; i < 30; i++) await q.enqueue("fixed-jobs", `job ${i}`);
    // Visibility far beyond the test: these stay in flight in the source and in the backup.
    const taken = await q.consume("fixed-jobs", { max: 10, visibilityMs: 600_000 });
    assert.equal(taken.length, 10);
    await q.ack("fixed-jobs", taken.slice(0, 4).map((m) => m.receipt));

    // Load on other keys and queues while the backup is taken (bounded in count and time).
    const noise = await connect({ nodes: source.clientAddrs });
    clients.push(noise);
    const nq = new QueueClient(noise);
    let stop = false;
    let loadOps = 0;
    const loadEnd = Date.now() + LOAD_MAX_MS;
    const load = (async () => {
      while (!stop && loadOps < LOAD_MAX_OPS && Date.now() < loadEnd) {
        loadOps++;
        await noise.call(Op.KV_PUT, { key: `noise/${loadOps % 50}`, value: Buffer.from(String(loadOps)) });
        await nq.enqueue("noise", String(loadOps));
        if (loadOps % 3 === 0) await nq.consume("noise", { max: 2, waitMs: 0 });
      }
    })();

    // Not spawnSync: the load runs in this process while the CLI works.
    await waitFor(() => loadOps >= 50, "the load to start");
    const opsBefore = loadOps;
    const cli = await execFileAsync(path.join(ROOT, "bin/dsync"), ["--nodes", source.clientAddrs.join(","), "admin", "backup", file], { encoding: "utf8", timeout: 60_000 });
    const opsDuring = loadOps - opsBefore;
    stop = true;
    await load;
    assert.match(cli.stdout, /wrote .*cluster\.dsb: \d+ bytes, sha256 [0-9a-f]{64}/);
    t.diagnostic(`load ops while the backup was taken: ${opsDuring}; ${cli.stdout.split("\n")[0]}`);
    assert.ok(opsDuring > 0, "the load ran during the backup");
    assert.ok(!existsSync(`${file}.partial`), "no partial file is left behind");

    // The visible messages' ids are read by consuming them, last, after the rest of the state.
    const sourceIds = async (): Promise<number[]> => (await q.consume("fixed-jobs", { max: 100, waitMs: 0, visibilityMs: 600_000 })).map((m) => m.id).sort((a, b) => a - b);
    const before = await stateOf(c, sourceIds);

    // Refusals first: a flipped byte and a cut file write nothing.
    const good = readFileSync(file);
    const nodes = daemonsOf(await nodeSpecs(3, source.dir, "restored_"));
    const corrupt = Buffer.from(good);
    corrupt[Math.floor(corrupt.length / 2)]! ^= 0xff;
    writeFileSync(`${file}.corrupt`, corrupt);
    writeFileSync(`${file}.cut`, good.subarray(0, good.length - 100));
    for (const [bad, why] of [
      [`${file}.corrupt`, /cannot restore: .*corrupt/],
      [`${file}.cut`, /cannot restore: .*truncated/],
    ] as const) {
      const r = dsyncd(["--restore-from", bad], nodes[0]!.env);
      assert.equal(r.status, 2, r.out);
      assert.match(r.out, why);
      assert.ok(!existsSync(path.join(nodes[0]!.spec.dataDir, "wal")), "a refused restore writes no log");
    }

    // Restore every node of the new cluster, then start them.
    for (const n of nodes) {
      const r = dsyncd(["--restore-from", file], n.env);
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, /restored .*\n\s+\d+ Raft groups, \d+ bytes; voters now restored_0, restored_1, restored_2; new cluster id r-[0-9a-f]{16}/);
    }
    // Restoring over a data dir that holds a log is refused.
    const again = dsyncd(["--restore-from", file], nodes[0]!.env);
    assert.equal(again.status, 2, again.out);
    assert.match(again.out, /already holds a node's log/);
    restored = new TestCluster(nodes, source.dir);
    await Promise.all(nodes.map((n) => n.start()));
    const r = await connect({ nodes: restored.clientAddrs });
    clients.push(r);
    const rq = new QueueClient(r);
    const restoredIds = async (): Promise<number[]> => (await rq.consume("fixed-jobs", { max: 100, waitMs: 0, visibilityMs: 600_000 })).map((m) => m.id).sort((a, b) => a - b);
    const after = await stateOf(r, restoredIds);
    assert.deepEqual(after, before);
    assert.deepEqual((before as { visibleIds: number[] }).visibleIds.length, 20);
    // The session survives too: a new client cannot take the exclusive lock it holds.
    const other = new LockClient(r);
    await assert.rejects(other.acquire("fixed/orders", { waitMs: 0 }), (err: Error & { codeName?: string }) => err.codeName === "LOCK_HELD");
    await other.close();

    // Old and new clusters never link: their ids differ.
    const oldId = readFileSync(path.join(source.nodes[0]!.spec.dataDir, "cluster-id"), "utf8").trim();
    const newId = readFileSync(path.join(nodes[0]!.spec.dataDir, "cluster-id"), "utf8").trim();
    assert.notEqual(oldId, newId);
    await locks.close().catch(() => undefined);
  } finally {
    await Promise.all(clients.map((x) => x.close()));
    if (restored) await Promise.all(restored.nodes.map((n) => n.kill("SIGKILL")));
    await source.destroy();
  }
});
