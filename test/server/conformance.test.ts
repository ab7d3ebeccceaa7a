/**
 * Conformance: every client request type PROTOCOL.md lists, driven against a live node with a
 * valid body and with each of its fields replaced by values of every other kind (BigInt beyond
 * 2^53, NaN, ±Infinity, fractions, strings, bytes, arrays, maps, nil, booleans, deep nesting), plus
 * bodies that are not maps. Every request must be answered under its own id (a reply or a typed
 * error), never INTERNAL, and the connection must stay open (PROTOCOL.md §2–3).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { DsyncError, ErrorCode, Op, opName } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

let cluster: TestCluster;
let conn: DsyncClient;
let disconnects = 0;

before(async () => {
  cluster = await TestCluster.create(1, { FSYNC: "false" });
  conn = new DsyncClient({ nodes: cluster.clientAddrs, maxAttempts: 1, requestTimeoutMs: 10_000 });
  conn.on("disconnect", () => disconnects++);
  // Every Raft group the cases touch has a leader: group 0 (KV, locks), the queue partition of
  // "cq" and the cache partition (QUEUE_LIST alone answers before the partitions elect).
  const ready = async (): Promise<boolean> => {
    try {
      await conn.call(Op.KV_PUT, { key: "ready", value: new Uint8Array(1) });
      await conn.call(Op.LOCK_SESSION_OPEN, { clientId: "ready", ttlMs: 10_000 });
      await conn.call(Op.QUEUE_STATS, { queue: "cq" });
      await conn.call(Op.CACHE_SET, { key: "ready", value: new Uint8Array(1) });
      return true;
    } catch {
      return false;
    }
  };
  await waitFor(ready, "the node to serve KV, locks, queues and the cache", 30_000);
});

after(async () => {
  await conn?.close();
  await cluster?.destroy();
});

/** Nested arrays `depth` deep. */
function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** A value of every kind MessagePack can carry to a handler (no extension types). */
const ODD_VALUES: readonly [string, unknown][] = [
  ["uint64 2^63 (BigInt)", 2n ** 63n],
  ["int64 -2^63 (BigInt)", -(2n ** 63n)],
  ["NaN", NaN],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
  ["-1.5", -1.5],
  ["-1", -1],
  ["2^53+2", 2 ** 53 + 2],
  ["a string", "x"],
  ["an empty string", ""],
  ["bytes", new Uint8Array([1, 2, 3])],
  ["an array", [1, "a"]],
  ["a map", { a: 1 }],
  ["nil", null],
  ["true", true],
  ["64 nested arrays", nested(64)],
];

/** Codes that would mean the node failed the request rather than judging it. */
const NOT_AN_ANSWER = new Set<number>([ErrorCode.INTERNAL, ErrorCode.UNKNOWN_TYPE, ErrorCode.PROTOCOL_ERROR, ErrorCode.CONNECTION_CLOSED, ErrorCode.TIMEOUT]);

/** Sends one request; returns the error code, or null for a reply. Fails on INTERNAL, a lost answer or a dropped connection. */
async function answer(op: number, body: unknown, what: string): Promise<number | null> {
  const before = disconnects;
  let code: number | null = null;
  try {
    await conn.call(op, body);
  } catch (err) {
    assert.ok(err instanceof DsyncError, `${what}: ${String(err)}`);
    code = err.code;
    if (NOT_AN_ANSWER.has(err.code)) assert.fail(`${what}: answered ${err.code} ${err.message}; node log:\n${cluster.nodes[0]!.output.slice(-3000)}`);
  }
  if (disconnects !== before) assert.fail(`${what}: the connection stays open; node log:\n${cluster.nodes[0]!.output.slice(-3000)}`);
  return code;
}

interface Case {
  readonly op: number;
  /** A body the node serves (it may still refuse for the service's own reasons, e.g. NOT_HELD). */
  readonly body: () => Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Whether to replace each field with odd values (not for requests whose valid variants change the cluster). */
  readonly sweep: boolean;
}

async function session(): Promise<number> {
  const r = (await conn.call(Op.LOCK_SESSION_OPEN, { clientId: "conformance", ttlMs: 60_000 })) as { sessionId: number };
  return r.sessionId;
}

async function receipt(): Promise<string> {
  await conn.call(Op.QUEUE_ENQUEUE, { queue: "cq", messages: [{ payload: new Uint8Array(1) }] });
  const r = (await conn.call(Op.QUEUE_CONSUME, { queue: "cq", max: 1 })) as { messages: { receipt: string }[] };
  return r.messages[0]?.receipt ?? "none";
}

/** One backup's id, taken once: a node holds at most two backups being fetched. */
let backup: Promise<string> | null = null;
function backupId(): Promise<string> {
  backup ??= conn.call(Op.ADMIN_BACKUP, {}).then((r) => (r as { backupId: string }).backupId);
  return backup;
}

let seq = 1;
const CASES: readonly Case[] = [
  { op: Op.PING, body: () => ({}), sweep: false },
  { op: Op.STATUS, body: () => ({}), sweep: false },
  { op: Op.KV_PUT, body: () => ({ key: "k", value: new Uint8Array(2) }), sweep: true },
  { op: Op.KV_GET, body: () => ({ key: "k", stale: false }), sweep: true },
  { op: Op.KV_DELETE, body: () => ({ key: "k" }), sweep: true },
  { op: Op.ADMIN_TRANSFER_LEADER, body: () => ({ to: "node_0" }), sweep: true },
  // Valid variants would add or remove members: only odd values that cannot be valid.
  { op: Op.ADMIN_ADD_NODE, body: () => ({ nodeId: 2n ** 63n, peerAddr: "127.0.0.1:1" }), sweep: false },
  { op: Op.ADMIN_REMOVE_NODE, body: () => ({ nodeId: ["node_0"] }), sweep: false },
  { op: Op.ADMIN_BACKUP, body: () => ({}), sweep: false },
  { op: Op.ADMIN_SHARDS, body: () => ({}), sweep: true },
  { op: Op.ADMIN_REBALANCE, body: () => ({ dryRun: true }), sweep: true },
  { op: Op.ADMIN_BACKUP_CHUNK, body: async () => ({ backupId: await backupId(), group: 0, offset: 0 }), sweep: true },
  { op: Op.LOCK_SESSION_OPEN, body: () => ({ clientId: "c", ttlMs: 10_000 }), sweep: true },
  { op: Op.LOCK_KEEPALIVE, body: async () => ({ sessionId: await session() }), sweep: true },
  { op: Op.LOCK_SESSION_CLOSE, body: async () => ({ sessionId: await session() }), sweep: true },
  { op: Op.LOCK_ACQUIRE, body: async () => ({ sessionId: await session(), seq: seq++, resource: "r", mode: "exclusive", waitMs: 0, ttlMs: 5000 }), sweep: true },
  { op: Op.LOCK_RELEASE, body: async () => ({ sessionId: await session(), seq: seq++, resource: "r", token: 1 }), sweep: true },
  { op: Op.LOCK_STATUS, body: () => ({ resource: "r", stale: false }), sweep: true },
  { op: Op.LOCK_LIST, body: () => ({ stale: true }), sweep: true },
  { op: Op.QUEUE_ENQUEUE, body: () => ({ queue: "cq", messages: [{ payload: new Uint8Array(1), delayMs: 0, dedupId: "d" }] }), sweep: true },
  { op: Op.QUEUE_CONSUME, body: () => ({ queue: "cq", max: 1, visibilityMs: 30_000, waitMs: 0, detached: false }), sweep: true },
  { op: Op.QUEUE_ACK, body: async () => ({ queue: "cq", receipts: [await receipt()] }), sweep: true },
  { op: Op.QUEUE_NACK, body: async () => ({ queue: "cq", receipt: await receipt(), delayMs: 0 }), sweep: true },
  { op: Op.QUEUE_SUBSCRIBE, body: () => ({ queue: "cq-sub", prefetch: 1, visibilityMs: 30_000 }), sweep: true },
  { op: Op.QUEUE_UNSUBSCRIBE, body: () => ({ subscriptionId: 1 }), sweep: true },
  { op: Op.QUEUE_STATS, body: () => ({ queue: "cq", stale: false }), sweep: true },
  { op: Op.QUEUE_CONFIGURE, body: () => ({ queue: "cq", maxDeliveries: 5, visibilityMs: 30_000, backoff: { baseMs: 100, factor: 2, capMs: 1000, jitter: 0.1 }, dlq: "cq.dlq", dedupWindowMs: 60_000 }), sweep: true },
  { op: Op.QUEUE_DLQ_LIST, body: () => ({ queue: "cq", max: 10, stale: false }), sweep: true },
  { op: Op.QUEUE_DLQ_REDRIVE, body: () => ({ queue: "cq", max: 10 }), sweep: true },
  { op: Op.QUEUE_PURGE, body: () => ({ queue: "cq-purge", dlq: false }), sweep: true },
  { op: Op.QUEUE_LIST, body: () => ({ stale: false }), sweep: true },
  // A key nothing writes: with near: true this connection holds a near copy, and a write would
  // send it an invalidation this raw client never acknowledges (the node then drops it, by design).
  { op: Op.CACHE_GET, body: () => ({ key: "ck-read-only", near: false }), sweep: true },
  { op: Op.CACHE_SET, body: () => ({ key: "ck", value: new Uint8Array(3), ttlMs: 60_000, wid: "w" }), sweep: true },
  { op: Op.CACHE_DELETE, body: () => ({ key: "ck2", wid: "w2" }), sweep: true },
  { op: Op.CACHE_INVALIDATE, body: () => ({ key: "ck" }), sweep: true },
  { op: Op.CACHE_STATE, body: () => ({ key: "ck" }), sweep: true },
  { op: Op.CACHE_STATS, body: () => ({}), sweep: false },
  { op: Op.CACHE_NEAR_ACK, body: () => ({ seq: 1 }), sweep: true },
  { op: Op.CACHE_NEAR_RENEW, body: () => ({ items: [["ck", 1]] }), sweep: true },
];

/**
 * Served by another test: any map is a valid ADMIN_DRAIN and would drain the node these cases run
 * on (test/cluster/drain.test.ts drives it); its non-map bodies are checked below.
 */
const ELSEWHERE: ReadonlySet<number> = new Set([Op.ADMIN_DRAIN]);

test("conformance - every client request type of PROTOCOL.md is covered here", () => {
  const clientOps = Object.values(Op).filter((op) => op >= 3 && op <= 63);
  assert.deepEqual(
    clientOps.filter((op) => !CASES.some((c) => c.op === op) && !ELSEWHERE.has(op)).map(opName),
    [],
    "request types without a conformance case",
  );
});

test("conformance - a valid body of every request type is served (no INVALID_ARGUMENT, no INTERNAL)", { timeout: 120_000 }, async () => {
  for (const c of CASES) {
    if (c.op === Op.ADMIN_ADD_NODE || c.op === Op.ADMIN_REMOVE_NODE) continue;
    const code = await answer(c.op, await c.body(), `${opName(c.op)} (valid)`);
    assert.notEqual(code, ErrorCode.INVALID_ARGUMENT, `${opName(c.op)}: a valid body is not an invalid argument`);
  }
});

test("conformance - every field replaced by every kind of value: answered under its id, never INTERNAL, connection open", { timeout: 300_000 }, async () => {
  let sent = 0;
  let refused = 0;
  for (const c of CASES) {
    const body = await c.body();
    if (!c.sweep) {
      await answer(c.op, body, `${opName(c.op)} ${JSON.stringify(body, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v))}`);
      continue;
    }
    for (const field of Object.keys(body)) {
      for (const [kind, value] of ODD_VALUES) {
        const code = await answer(c.op, { ...body, [field]: value }, `${opName(c.op)} with ${field} = ${kind}`);
        sent++;
        if (code === ErrorCode.INVALID_ARGUMENT) refused++;
      }
    }
    // Missing fields: the empty map and nil (read as an empty map).
    await answer(c.op, {}, `${opName(c.op)} {}`);
    await answer(c.op, null, `${opName(c.op)} nil`);
  }
  assert.ok(sent > 500 && refused > sent / 2, `${sent} odd requests, ${refused} refused as INVALID_ARGUMENT`);
});

test("conformance - a body that is not a map (nor nil) is INVALID_ARGUMENT under the request's id; the connection stays open", async () => {
  for (const body of [[1, 2], "text", 7, new Uint8Array(4), true, 2n ** 63n]) {
    const code = await answer(Op.KV_GET, body, `KV_GET body ${typeof body}`);
    assert.equal(code, ErrorCode.INVALID_ARGUMENT);
    assert.equal(await answer(Op.ADMIN_DRAIN, body, `ADMIN_DRAIN body ${typeof body}`), ErrorCode.INVALID_ARGUMENT);
  }
  await answer(Op.PING, {}, "PING after the bad bodies");
});
