/**
 * Fields of the wrong type are refused with INVALID_ARGUMENT naming the field, never coerced and
 * never answered INTERNAL — booleans included, and integers too big for a double (a MessagePack
 * uint64 decodes as a BigInt).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { InvalidArgumentError, Op } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

let cluster: TestCluster;
let conn: DsyncClient;

before(async () => {
  cluster = await TestCluster.create(1, { FSYNC: "false" });
  conn = new DsyncClient({ nodes: cluster.clientAddrs, maxAttempts: 1 });
  await waitFor(async () => conn.call(Op.KV_PUT, { key: "ready", value: new Uint8Array(1) }).then(() => true, () => false), "the node to serve", 20_000);
});

after(async () => {
  await conn?.close();
  await cluster?.destroy();
});

test("field types - boolean fields refuse other types (seen: stale:\"yes\" was read as false)", async () => {
  const cases: [number, Record<string, unknown>, string][] = [
    [Op.KV_GET, { key: "k", stale: "yes" }, "stale"],
    [Op.LOCK_STATUS, { resource: "r", stale: 1 }, "stale"],
    [Op.LOCK_LIST, { stale: "no" }, "stale"],
    [Op.QUEUE_CONSUME, { queue: "q", max: 1, detached: "yes" }, "detached"],
    [Op.QUEUE_PURGE, { queue: "q", dlq: "yes" }, "dlq"],
    [Op.QUEUE_LIST, { stale: 1 }, "stale"],
    [Op.CACHE_GET, { key: "k", near: 0 }, "near"],
  ];
  for (const [op, body, field] of cases) {
    await assert.rejects(conn.call(op, body), (err: Error) => err instanceof InvalidArgumentError && err.message.includes(`"${field}" must be a boolean`), `${op} ${JSON.stringify(body)}`);
  }
  // The same fields with real booleans are served.
  await conn.call(Op.KV_GET, { key: "k", stale: true });
  await conn.call(Op.LOCK_LIST, { stale: false });
});

test("field types - an integer beyond 2^53 (decoded as a BigInt) is INVALID_ARGUMENT, not INTERNAL", async () => {
  const big = 2n ** 63n;
  const cases: [number, Record<string, unknown>, RegExp][] = [
    [Op.LOCK_ACQUIRE, { sessionId: 1, seq: 1, resource: "r", mode: big }, /"mode" must be "exclusive" or "shared", got 9223372036854775808n/],
    [Op.LOCK_ACQUIRE, { sessionId: big, seq: 1, resource: "r" }, /"sessionId" must be an integer, got integer \(beyond 2\^53\)/],
    [Op.KV_GET, { key: "k", stale: big }, /"stale" must be a boolean/],
    [Op.CACHE_SET, { key: "k", value: new Uint8Array(1), ttlMs: big }, /"ttlMs" must be an integer/],
  ];
  for (const [op, body, message] of cases) {
    await assert.rejects(conn.call(op, body), (err: Error) => err instanceof InvalidArgumentError && message.test(err.message), `${op}: ${String(body.mode ?? body.sessionId ?? body.stale ?? body.ttlMs)}`);
  }
});
