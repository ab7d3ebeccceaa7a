import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { InvalidArgumentError, Op } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { QueueClient, type DeliveredMessage } from "../../src/client/queues.ts";
import { ROOT, TestCluster, waitFor, type DaemonProcess } from "../helpers/daemon.ts";

const run = promisify(execFile);
const text = (b: Uint8Array): string => Buffer.from(b).toString();

function clientFor(cluster: TestCluster, nodes: string[] = cluster.clientAddrs): DsyncClient {
  return new DsyncClient({ nodes, preferLeader: false, requestTimeoutMs: 8000, maxAttempts: 30, backoff: { baseMs: 50, maxMs: 500, factor: 2 } });
}

/** Waits until the queue service answers (group 0 has recorded the layout, partitions elected). */
async function queueReady(q: QueueClient, queue: string): Promise<void> {
  await waitFor(() => q.stats(queue).then((s) => s.leader !== null).catch(() => false), "the queue partitions to elect leaders", 30_000, 100);
}

async function partitionLeader(cluster: TestCluster, q: QueueClient, queue: string): Promise<DaemonProcess> {
  const id = await waitFor(() => q.stats(queue).then((s) => s.leader).catch(() => null), `a leader for ${queue}'s partition`, 30_000, 50);
  return cluster.nodes.find((n) => n.spec.id === id)!;
}

async function cli(cluster: TestCluster, ...args: string[]): Promise<string> {
  const { stdout } = await run(path.join(ROOT, "bin/dsync"), ["--nodes", cluster.clientAddrs.join(","), ...args], { cwd: ROOT, timeout: 30_000 });
  return stdout;
}

test("queue cluster - CLI walk-through: enqueue, consume, ack, stats on a 3-node cluster; bad input is refused", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const client = clientFor(cluster);
  const q = new QueueClient(client);
  try {
    await queueReady(q, "emails");
    assert.match(await cli(cluster, "queue", "enqueue", "emails", "first", "second"), /enqueued emails #1\nenqueued emails #2/);
    assert.match(await cli(cluster, "queue", "enqueue", "emails", "third", "--dedup", "abc"), /#3/);
    assert.match(await cli(cluster, "queue", "enqueue", "emails", "third again", "--dedup", "abc"), /#3 \(duplicate/);
    const consumed = JSON.parse(await cli(cluster, "--json", "queue", "consume", "emails", "--max", "2")) as { id: number; receipt: string; payload: string }[];
    assert.deepEqual(consumed.map((m) => m.payload), ["first", "second"], "FIFO");
    assert.match(await cli(cluster, "queue", "ack", "emails", consumed[0]!.receipt, consumed[1]!.receipt), /acked .*\nacked /);
    const stats = JSON.parse(await cli(cluster, "--json", "queue", "stats", "emails")) as { stats: { depth: number; inFlight: number; acked: number } };
    assert.deepEqual([stats.stats.depth, stats.stats.inFlight, stats.stats.acked], [1, 0, 2]);
    assert.match(await cli(cluster, "queue", "stats"), /PARTITION\s+LEADER\s+QUEUE/);

    // The library learns the partition leader from replies and sends there directly.
    await q.enqueue("emails", "routed");
    const led = await q.stats("emails");
    assert.equal(q.clientFor("emails").connectedTo, led.leaderAddr, "requests for the queue go to its partition leader");
    const third = await q.consume("emails", { max: 1, waitMs: 1000 });
    assert.equal((await q.ack("emails", third.map((m) => m.receipt))).acked, 1);

    // Bad input: typed errors, nothing enqueued, the daemon keeps serving.
    await assert.rejects(client.call(Op.QUEUE_ENQUEUE, { queue: "emails", messages: "nope" }), InvalidArgumentError);
    await assert.rejects(client.call(Op.QUEUE_ENQUEUE, { queue: "x".repeat(300), messages: [{ payload: "a" }] }), InvalidArgumentError);
    await assert.rejects(client.call(Op.QUEUE_ENQUEUE, { queue: "emails", messages: [{ payload: new Uint8Array(1024 * 1024 + 1) }] }), InvalidArgumentError);
    await assert.rejects(client.call(Op.QUEUE_CONSUME, { queue: "emails", max: 0 }), InvalidArgumentError);
    await assert.rejects(client.call(Op.QUEUE_ACK, { queue: "emails", receipts: [42] }), InvalidArgumentError);
    const ack = await q.ack("emails", ["1:1", "garbage"]);
    assert.deepEqual(ack.outcomes.map((o) => o.ok), [false, false], "stale and malformed receipts are refused, not thrown");
    assert.equal((await q.stats("emails")).stats.depth, 1);

    // Per-queue metrics on every node (replicated gauges), and a delivery-latency histogram where it delivered.
    const scrapes = await Promise.all(cluster.nodes.map((n) => fetch(`${n.httpUrl}/metrics`).then((r) => r.text())));
    for (const text of scrapes) {
      assert.match(text, /dsync_queue_depth\{queue="emails",node="node_\d"\} 1\n/);
      assert.match(text, /dsync_queue_acked\{queue="emails",node="node_\d"\} 3\n/);
    }
    assert.ok(scrapes.some((t) => /dsync_queue_delivery_latency_seconds_count\{node="node_\d",queue="emails"\} [1-9]/.test(t)), "some node observed delivery latency");
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("queue cluster - long-poll consume wakes on enqueue through another node; push subscription respects its credit window", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const a = clientFor(cluster, [cluster.nodes[0]!.clientAddr]);
  const b = clientFor(cluster, [cluster.nodes[1]!.clientAddr]);
  // No routing to the partition leader: the wake-up must cross nodes.
  const qa = new QueueClient(a, { routeToLeader: false });
  const qb = new QueueClient(b, { routeToLeader: false });
  try {
    await queueReady(qa, "poll");
    const started = Date.now();
    const waiting = qa.consume("poll", { max: 5, waitMs: 20_000 });
    await new Promise((r) => setTimeout(r, 300));
    await qb.enqueue("poll", "wake up");
    const got = await waiting;
    assert.deepEqual(got.map((m) => text(m.payload)), ["wake up"]);
    assert.ok(Date.now() - started < 15_000, "the long poll returned on the enqueue, not at its deadline");
    assert.deepEqual(await qa.consume("poll", { waitMs: 200 }), [], "an empty long poll ends at its deadline with nothing");

    // Credit: with prefetch 3 and a handler that holds messages, at most 3 are in hand.
    let maxInHand = 0;
    let inHand = 0;
    const release: (() => void)[] = [];
    const seen: string[] = [];
    const sub = await qa.subscribe("push", { prefetch: 3 }, async (m) => {
      inHand++;
      maxInHand = Math.max(maxInHand, inHand);
      seen.push(text(m.payload));
      await new Promise<void>((r) => release.push(r));
      inHand--;
    });
    await qb.enqueueBatch("push", Array.from({ length: 10 }, (_, i) => ({ payload: `p${i}` })));
    await waitFor(() => seen.length === 3, "the first 3 deliveries");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(seen.length, 3, "no delivery beyond the credit window while 3 are unacked");
    for (let i = 0; i < 20 && seen.length < 10; i++) {
      for (const r of release.splice(0)) r();
      await waitFor(() => release.length > 0 || seen.length === 10, "more deliveries after acks");
    }
    for (const r of release.splice(0)) r();
    await waitFor(() => seen.length === 10, "all 10 pushed");
    await sub.close();
    assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => `p${i}`), "pushed in enqueue order");
    assert.equal(maxInHand, 3);
    await waitFor(async () => (await qa.stats("push")).stats.acked === 10, "all 10 acked");
  } finally {
    await a.close();
    await b.close();
    await cluster.destroy();
  }
});

test("queue cluster - a consumer killed mid-batch: its messages come back; a stalled one's come back after the visibility timeout", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const client = clientFor(cluster);
  const q = new QueueClient(client);
  try {
    await queueReady(q, "work");
    await q.enqueueBatch("work", Array.from({ length: 6 }, (_, i) => ({ payload: `job${i}` })));

    // A separate consumer process takes 3 messages and is SIGKILLed before acking.
    const script = `import { DsyncClient } from "./src/client/client.ts"; import { QueueClient } from "./src/client/queues.ts";
      const c = new DsyncClient({ nodes: ${JSON.stringify(cluster.clientAddrs)}, preferLeader: false });
      const ms = await new QueueClient(c).consume("work", { max: 3, visibilityMs: 600000 });
      process.stdout.write("got " + ms.length + "\\n"); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes("got 3"), "the consumer process to take 3 messages");
    child.kill("SIGKILL");
    // Visibility was 10 minutes: getting them back now shows the node released them on disconnect.
    const back: DeliveredMessage[] = [];
    await waitFor(async () => {
      back.push(...(await q.consume("work", { max: 10, waitMs: 500 })));
      return back.length >= 6;
    }, "all six (three of them redelivered) to be consumable", 30_000, 10);
    const redelivered = back.filter((m) => m.deliveryCount === 2).map((m) => text(m.payload)).sort();
    assert.deepEqual(redelivered, ["job0", "job1", "job2"]);
    await q.ack("work", back.map((m) => m.receipt));

    // A consumer that stops without disconnecting: its messages return when visibility ends.
    await q.enqueue("work", "slow");
    const stalled = clientFor(cluster);
    const first = await new QueueClient(stalled).consume("work", { max: 1, visibilityMs: 1500 });
    const takenAt = Date.now();
    assert.equal(first.length, 1);
    const again = await q.consume("work", { max: 1, waitMs: 20_000 });
    const after = Date.now() - takenAt;
    assert.equal(again.length, 1);
    assert.equal(again[0]!.id, first[0]!.id);
    assert.equal(again[0]!.deliveryCount, 2);
    assert.ok(after >= 1400, `redelivered ${after} ms after the consume, not before its 1500 ms visibility`);
    assert.equal((await q.ack("work", [first[0]!.receipt])).outcomes[0]!.ok, false, "the stalled consumer's late ack is stale");
    assert.equal((await q.ack("work", [again[0]!.receipt])).acked, 1);
    await stalled.close();
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("queue cluster - nacks back off exponentially, the message dead-letters after maxDeliveries, redrive brings it back", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const client = clientFor(cluster);
  const q = new QueueClient(client);
  try {
    await queueReady(q, "flaky");
    const base = 150;
    const config = await q.configure("flaky", { maxDeliveries: 4, backoff: { baseMs: base, factor: 2, capMs: 10_000, jitter: 0 } });
    assert.equal(config.maxDeliveries, 4);
    await q.enqueue("flaky", "boom");
    const gaps: number[] = [];
    // Measured from when each nack was sent: the leader stamps the delay's start when it gets the
    // nack, which is after the send; from the reply instead, a slow commit shortens the gap.
    let nackSentAt = 0;
    for (let delivery = 1; delivery <= 4; delivery++) {
      const [m] = await q.consume("flaky", { max: 1, waitMs: 20_000 });
      assert.ok(m, `delivery ${delivery}`);
      if (delivery > 1) gaps.push(Date.now() - nackSentAt);
      assert.equal(m.deliveryCount, delivery);
      nackSentAt = Date.now();
      const r = await q.nack("flaky", m.receipt);
      assert.equal(r.deadLettered, delivery === 4);
    }
    // Delays 150, 300, 600 ms: each observed gap is at least its delay (minus clock granularity).
    for (let i = 0; i < gaps.length; i++) assert.ok(gaps[i]! >= base * 2 ** i - 20, `gap ${i + 1} was ${gaps[i]} ms, expected >= ${base * 2 ** i}`);
    assert.ok(gaps[2]! > gaps[0]!, `delays grow: ${gaps.join(", ")} ms`);
    assert.deepEqual(await q.consume("flaky", { waitMs: 300 }), [], "nothing left in the queue");
    const dead = await q.dlqList("flaky");
    assert.equal(dead.dlq, "flaky.dlq");
    assert.equal(dead.messages.length, 1);
    assert.equal(text(dead.messages[0]!.payload), "boom");
    assert.equal(dead.messages[0]!.reason, "max-deliveries");
    assert.deepEqual(dead.messages[0]!.history.map((h) => h.outcome), ["nacked", "nacked", "nacked", "nacked"]);
    assert.equal((await q.stats("flaky")).stats.deadLettered, 1);
    const redriven = await q.dlqRedrive("flaky");
    assert.equal(redriven.ids.length, 1);
    const [back] = await q.consume("flaky", { max: 1, waitMs: 5000 });
    assert.equal(text(back!.payload), "boom");
    assert.equal(back!.deliveryCount, 1, "a redriven message starts over");
    await q.ack("flaky", [back!.receipt]);
    assert.equal((await q.dlqList("flaky")).messages.length, 0);
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("queue cluster - 50,000 numbered messages while the partition leader is SIGKILLed and restarted: none lost, first deliveries in order", { timeout: 600_000 }, async (t) => {
  const TOTAL = 50_000;
  const PRODUCERS = 8;
  const BATCH = 25;
  const CONSUMERS = 4;
  const KILLS_AT = [5_000, 15_000, 25_000];
  const QUEUE = "numbers";
  const cluster = await TestCluster.create(3, { SNAPSHOT_THRESHOLD: "500" });
  const admin = clientFor(cluster);
  const qa = new QueueClient(admin);
  const clients: DsyncClient[] = [];
  const subs: { close(): Promise<void> }[] = [];
  try {
    await queueReady(qa, QUEUE);
    /** Numbers whose enqueue was acknowledged, with the id the cluster gave them. */
    const acked = new Map<number, number>();
    /** Every delivery of every number. */
    const deliveries = new Map<number, number>();
    /** The message ids each number was delivered under: more than one means dedup let a resend in twice. */
    const idsOfNumber = new Map<number, Set<number>>();
    let duplicates = 0;
    let orderViolations = 0;
    let enqueueRetries = 0;
    let kills = 0;

    // Producers: each sends its own numbers in order, in batches, with dedup ids, retrying a
    // batch until it is acknowledged (a lost reply is then harmless).
    const perProducer = TOTAL / PRODUCERS;
    const producer = async (p: number): Promise<void> => {
      const c = clientFor(cluster, [cluster.clientAddrs[p % 3]!, ...cluster.clientAddrs]);
      clients.push(c);
      const q = new QueueClient(c);
      let lastId = 0;
      for (let i = 0; i < perProducer; i += BATCH) {
        // Production may not run more than 5,000 past a planned kill that has not happened yet
        // (restarting a node can take longer than producing the rest), so every kill lands mid-run.
        while (kills < KILLS_AT.length && acked.size >= KILLS_AT[kills]! + 5_000) await new Promise((r) => setTimeout(r, 20));
        const nums = Array.from({ length: Math.min(BATCH, perProducer - i) }, (_, k) => p * perProducer + i + k);
        const messages = nums.map((n) => ({ payload: String(n), dedupId: `n${n}` }));
        for (let attempt = 0; ; attempt++) {
          try {
            const r = await q.enqueueBatch(QUEUE, messages);
            r.ids.forEach((id, k) => acked.set(nums[k]!, id));
            // One producer's enqueue order is its ids' order.
            if (r.ids[0]! <= lastId) orderViolations++;
            lastId = r.ids[r.ids.length - 1]!;
            break;
          } catch {
            enqueueRetries++;
            if (attempt > 200) throw new Error(`producer ${p}: batch at ${i} never acknowledged`);
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      }
    };

    // Consumers: push subscriptions spread over the nodes; each checks that its first deliveries
    // come in id order (enqueue order).
    for (let k = 0; k < CONSUMERS; k++) {
      const c = clientFor(cluster, [cluster.clientAddrs[k % 3]!, ...cluster.clientAddrs]);
      clients.push(c);
      let lastFirst = 0;
      const sub = await new QueueClient(c).subscribe(QUEUE, { prefetch: 64, visibilityMs: 5000 }, (m) => {
        const n = Number(text(m.payload));
        const seen = deliveries.get(n) ?? 0;
        if (seen > 0) duplicates++;
        deliveries.set(n, seen + 1);
        let ids = idsOfNumber.get(n);
        if (!ids) idsOfNumber.set(n, (ids = new Set()));
        ids.add(m.id);
        if (m.deliveryCount === 1) {
          if (m.id <= lastFirst) orderViolations++;
          lastFirst = m.id;
        }
      });
      subs.push(sub);
    }

    // The killer: at given progress points, SIGKILL the queue's partition leader, then restart it.
    const killer = (async () => {
      for (const at of KILLS_AT) {
        await waitFor(() => acked.size >= at, `${at} acknowledged enqueues`, 300_000, 20);
        const victim = await partitionLeader(cluster, qa, QUEUE);
        await victim.kill("SIGKILL");
        kills++;
        t.diagnostic(`SIGKILLed partition leader ${victim.spec.id} at ${acked.size} acknowledged enqueues`);
        await new Promise((r) => setTimeout(r, 1000));
        await victim.start();
      }
    })();

    const started = Date.now();
    await Promise.all(Array.from({ length: PRODUCERS }, (_, p) => producer(p)));
    await killer;
    const produced = (Date.now() - started) / 1000;
    await waitFor(() => [...acked.keys()].every((n) => deliveries.has(n)), "every acknowledged message delivered", 120_000, 100).catch(async (err: Error) => {
      const missing = [...acked.keys()].filter((n) => !deliveries.has(n));
      throw new Error(`${err.message}: ${missing.length} of ${acked.size} never delivered (e.g. ${missing.slice(0, 5).join(", ")}); stats ${JSON.stringify(await qa.stats(QUEUE).catch(() => null))}`);
    });
    const elapsed = (Date.now() - started) / 1000;
    for (const s of subs) await s.close();

    const lost = [...acked.keys()].filter((n) => !deliveries.has(n));
    t.diagnostic(`${acked.size} acknowledged enqueues, ${deliveries.size} distinct numbers delivered, ${duplicates} duplicate deliveries, ${enqueueRetries} enqueue retries, ${kills} leader kills, produced in ${produced.toFixed(1)} s, all delivered after ${elapsed.toFixed(1)} s`);
    assert.equal(acked.size, TOTAL, "every batch was eventually acknowledged");
    assert.deepEqual(lost, [], "no acknowledged message is lost");
    assert.equal(kills, KILLS_AT.length, "the leader was killed as planned");
    assert.equal(orderViolations, 0, "first deliveries (and each producer's ids) follow enqueue order");
    // Snapshots keep the partition's log bounded (SNAPSHOT_THRESHOLD=500 here).
    const part = (await qa.stats(QUEUE)).partition;
    const metrics = await fetch(`${cluster.nodes[0]!.httpUrl}/metrics`).then((r) => r.text());
    const snapIndex = Number(new RegExp(`dsync_raft_snapshot_index\\{group="${part}",node="node_0"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    t.diagnostic(`partition ${part} (Raft group ${part}) last snapshot at index ${snapIndex}`);
    assert.ok(snapIndex > 0, "the queue partition took snapshots");
    const twice = [...idsOfNumber].filter(([, ids]) => ids.size > 1);
    assert.deepEqual(twice.slice(0, 5).map(([n, ids]) => `${n}: ids ${[...ids].join(",")}`), [], `dedup ids kept each number to one message (${twice.length} numbers were enqueued as several messages)`);
    await waitFor(async () => {
      const s = (await qa.stats(QUEUE)).stats;
      // Exactly TOTAL: a message enqueued twice despite its dedup id would be acked twice.
      return s.depth === 0 && s.inFlight === 0 && s.acked === TOTAL;
    }, "the queue to drain and every message to be acked", 60_000, 200);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    await admin.close();
    await cluster.destroy();
  }
});
