import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { DsyncClient } from "../../src/client/client.ts";
import { QueueClient } from "../../src/client/queues.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

const text = (b: Uint8Array): string => Buffer.from(b).toString();

function clientFor(nodes: string[]): DsyncClient {
  return new DsyncClient({ nodes, preferLeader: false, requestTimeoutMs: 3000, maxAttempts: 30, backoff: { baseMs: 50, maxMs: 500, factor: 2 } });
}

/** Sum over the nodes of every metric line named `name` (any labels; with `label`, only lines that carry it, e.g. `group="4"`). */
async function metricSum(cluster: TestCluster, name: string, label = ""): Promise<number> {
  let sum = 0;
  for (const n of cluster.nodes) {
    const t = await (await fetch(`${n.httpUrl}/metrics`)).text();
    for (const m of t.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, "gm"))) if ((m[1] ?? "").includes(label)) sum += Number(m[2]);
  }
  return sum;
}

/** Queue log entries proposed (or forwarded) and the commands they carried, summed over the nodes. */
async function queueEntries(cluster: TestCluster): Promise<{ entries: number; commands: number }> {
  return { entries: await metricSum(cluster, "dsync_queue_log_entries_total"), commands: await metricSum(cluster, "dsync_queue_commands_total") };
}

/** The partition's leader once it has stayed the same for `quietMs` (the leader balancer is done). */
async function settledLeader(q: QueueClient, queue: string, quietMs = 1500): Promise<string> {
  let last: string | null = null;
  let since = Date.now();
  return waitFor(
    async () => {
      const leader = (await q.stats(queue).catch(() => null))?.leader ?? null;
      if (leader !== last) [last, since] = [leader, Date.now()];
      return leader !== null && Date.now() - since >= quietMs ? leader : null;
    },
    `${queue}'s partition leader to settle`,
    30_000,
    100,
  );
}

/**
 * Waits until the producer's requests for `queue` go where the subscription is (the partition's
 * leader). After a leader change the subscription moves by itself; the producer learns the new
 * leader from a reply, so each look asks for the queue's stats.
 */
async function producerBesideSubscription(q: QueueClient, queue: string, sub: { client: { connectedTo: string | null } }): Promise<void> {
  await waitFor(
    async () => {
      await q.stats(queue).catch(() => null);
      return sub.client.connectedTo !== null && sub.client.connectedTo === q.clientFor(queue).connectedTo;
    },
    "the subscription and the producer on one node",
    30_000,
    100,
  );
}

/**
 * Runs `body` until one run saw no leader change of the queue partition's group (partition p is
 * group p) on any node, at most five runs. A leader change in the middle (a slow machine can miss
 * heartbeats) moves consumers and producers apart for a while, so such a run says nothing about
 * what one node does; it is reported and not counted.
 */
async function withSteadyLeader<T>(t: TestContext, cluster: TestCluster, partition: number, body: (attempt: number) => Promise<T>): Promise<T> {
  const changes = (): Promise<number> => metricSum(cluster, "dsync_raft_leader_changes_total", `group="${partition}"`);
  for (let attempt = 1; ; attempt++) {
    assert.ok(attempt <= 5, "five tries in a row saw a leader change");
    const before = await changes();
    const result = await body(attempt);
    if ((await changes()) === before) return result;
    t.diagnostic(`try ${attempt}: the partition's leader changed meanwhile; not counted`);
  }
}

test("queue cluster - a message meets a waiting subscription or long poll in the enqueue's own log entry; an idle subscription proposes nothing", { timeout: 120_000 }, async (t) => {
  const cluster = await TestCluster.create(3);
  const client = clientFor(cluster.clientAddrs);
  const q = new QueueClient(client);
  try {
    const Q = "join";
    await settledLeader(q, Q);
    const got: string[] = [];
    const sub = await q.subscribe(Q, { prefetch: 8 }, (m) => {
      got.push(text(m.payload));
    });
    await q.enqueue(Q, "warm-up");
    await waitFor(async () => (await q.stats(Q)).stats.acked === 1, "the warm-up message acked");
    const { partition } = await q.stats(Q);

    const pushed = await withSteadyLeader(t, cluster, partition, async (attempt) => {
      await producerBesideSubscription(q, Q, sub);
      const idle = await queueEntries(cluster);
      await new Promise((r) => setTimeout(r, 1600)); // three turns of the pump's 500 ms safety net
      const still = await queueEntries(cluster);
      const body = `joined ${attempt}`;
      await q.enqueue(Q, body);
      await waitFor(() => got.includes(body), "the message delivered");
      await waitFor(async () => (await q.stats(Q)).stats.inFlight === 0, "the message acked");
      const after = await queueEntries(cluster);
      return { idle, still, after };
    });
    assert.deepEqual(pushed.still, pushed.idle, "an idle subscription proposed no empty consume");
    // enqueue + consume in one entry, then the ack in its own: 3 commands in 2 entries (3 in 3 before).
    assert.deepEqual({ entries: pushed.after.entries - pushed.still.entries, commands: pushed.after.commands - pushed.still.commands }, { entries: 2, commands: 3 });
    assert.equal(got[0], "warm-up");
    await sub.close();

    // A long poll waiting at the node: its consume rides in the enqueue's entry too.
    const polled = await withSteadyLeader(t, cluster, partition, async (attempt) => {
      const body = `polled ${attempt}`;
      const waiting = q.consume(Q, { max: 1, waitMs: 20_000 });
      await new Promise((r) => setTimeout(r, 500)); // its first consume found nothing; it waits
      const before = await queueEntries(cluster);
      await q.enqueue(Q, body);
      const msgs = await waiting;
      const after = await queueEntries(cluster);
      await q.ack(Q, msgs.map((m) => m.receipt));
      return { payloads: msgs.map((m) => text(m.payload)), body, delta: { entries: after.entries - before.entries, commands: after.commands - before.commands } };
    });
    assert.deepEqual(polled.payloads, [polled.body]);
    assert.deepEqual(polled.delta, { entries: 1, commands: 2 }, "the enqueue and the long poll's consume in one entry");
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("queue cluster - a subscription's ack lingers to share the partition's next write; alone, it still commits", { timeout: 120_000 }, async (t) => {
  // A long linger, so the test does not depend on the machine's speed: the next enqueue comes
  // 100 ms after the delivery, well inside it, and without the linger the ack commits alone first.
  const cluster = await TestCluster.create(3, { QUEUE_ACK_LINGER_MS: "1000" });
  const client = clientFor(cluster.clientAddrs);
  const q = new QueueClient(client);
  try {
    const Q = "linger";
    await settledLeader(q, Q);
    const got: string[] = [];
    let after: ((body: string) => void) | null = null;
    const sub = await q.subscribe(Q, { prefetch: 8 }, (m) => {
      got.push(text(m.payload));
      after?.(text(m.payload));
    });
    await q.enqueue(Q, "warm-up");
    await waitFor(async () => (await q.stats(Q)).stats.acked === 1, "the warm-up message acked");
    const { partition } = await q.stats(Q);

    const run = await withSteadyLeader(t, cluster, partition, async (attempt) => {
      await producerBesideSubscription(q, Q, sub);
      const before = await queueEntries(cluster);
      const ackedBefore = (await q.stats(Q)).stats.acked;
      const [first, second] = [`first ${attempt}`, `second ${attempt}`];
      const sent = new Promise<void>((resolve, reject) => {
        after = (body) => {
          if (body !== first) return;
          after = null;
          setTimeout(() => q.enqueue(Q, second).then(() => resolve(), reject), 100);
        };
      });
      await q.enqueue(Q, first);
      await sent;
      await waitFor(() => got.includes(second), "the second message delivered");
      // The second message's ack finds no write to join: it commits when its linger is up.
      await waitFor(async () => (await q.stats(Q)).stats.inFlight === 0, "both messages acked", 20_000);
      const end = await queueEntries(cluster);
      const acked = (await q.stats(Q)).stats.acked - ackedBefore;
      return { entries: end.entries - before.entries, commands: end.commands - before.commands, acked };
    });
    // enqueue + consume; enqueue + the first ack + consume; the second ack: 6 commands in 3
    // entries (4 entries with the first ack on its own).
    assert.deepEqual(run, { entries: 3, commands: 6, acked: 2 });
    await sub.close();
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("queue cluster - a subscription follows its partition's leader when leadership moves, and loses nothing", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const client = clientFor(cluster.clientAddrs);
  const q = new QueueClient(client);
  try {
    const Q = "follow";
    const first = await settledLeader(q, Q);
    const got = new Set<string>();
    const sub = await q.subscribe(Q, { prefetch: 8 }, (m) => {
      got.add(text(m.payload));
    });
    const paused = cluster.nodes.find((n) => n.spec.id === first)!;
    assert.equal(sub.client.connectedTo, paused.clientAddr, "subscribed at the leader");

    // The leader pauses past the election timeout; another node takes the partition over.
    const others = cluster.nodes.filter((n) => n !== paused);
    const watcher = new QueueClient(clientFor(others.map((n) => n.clientAddr)), { routeToLeader: false });
    await paused.kill("SIGSTOP");
    let next: string;
    try {
      next = await waitFor(async () => {
        const leader = (await watcher.stats(Q).catch(() => null))?.leader ?? null;
        return leader !== null && leader !== first ? leader : null;
      }, "another leader while the first is paused", 30_000, 50);
    } finally {
      await paused.kill("SIGCONT");
    }
    const nextAddr = cluster.nodes.find((n) => n.spec.id === next)!.clientAddr;
    // The resumed node learns of the new leader and ends its subscription with a leader-moved push
    // naming it; the client subscribes there. (The balancer may later hand the partition back.)
    await waitFor(() => sub.client.connectedTo === nextAddr, `the subscription to move to ${next}`, 30_000, 10);

    const sent = Array.from({ length: 20 }, (_, i) => `m${i}`);
    for (const m of sent) await q.enqueue(Q, m);
    await waitFor(() => sent.every((m) => got.has(m)), "every message enqueued after the move delivered", 30_000);
    await waitFor(async () => {
      const s = (await q.stats(Q)).stats;
      return s.acked === 20 && s.depth === 0 && s.inFlight === 0;
    }, "every message acked, none left in flight", 30_000);
    await sub.close();
    await watcher.client.close();
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("queue cluster - unsubscribing while the subscription's delivery is still being committed: the message reaches the handler and is acked, not left in flight", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const client = clientFor(cluster.clientAddrs);
  const q = new QueueClient(client);
  try {
    const Q = "unsubscribe";
    const leader = await settledLeader(q, Q);
    const got: string[] = [];
    // A visibility timeout far past the test: only an ack can settle the message in time.
    const sub = await q.subscribe(Q, { prefetch: 8, visibilityMs: 120_000 }, (m) => {
      got.push(text(m.payload));
    });
    const followers = cluster.nodes.filter((n) => n.spec.id !== leader);
    // With both followers paused, the entry holding the enqueue and the subscription's consume
    // cannot commit: the unsubscribe arrives while that consume is in flight.
    for (const f of followers) await f.kill("SIGSTOP");
    let enqueued: Promise<unknown>;
    let closed: Promise<void>;
    try {
      enqueued = q.enqueue(Q, "in flight");
      await new Promise((r) => setTimeout(r, 30));
      closed = sub.close();
      await new Promise((r) => setTimeout(r, 30));
    } finally {
      for (const f of followers) await f.kill("SIGCONT");
    }
    await enqueued;
    await closed;
    assert.deepEqual(got, ["in flight"], "the delivery reached the handler before close() returned");
    await waitFor(async () => {
      const s = (await q.stats(Q)).stats;
      return s.acked === 1 && s.inFlight === 0;
    }, "the message acked, nothing in flight", 30_000);
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test("queue cluster - a long poll whose client went away takes nothing: the next message goes to a live consumer at once", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(3);
  const client = clientFor(cluster.clientAddrs);
  const q = new QueueClient(client);
  const gone = clientFor(cluster.clientAddrs);
  try {
    const Q = "gone";
    await settledLeader(q, Q);
    const leaving = new QueueClient(gone);
    await leaving.locate(Q);
    // Waits at the partition leader, holding what it takes for a minute; then its client leaves.
    const abandoned = leaving.consume(Q, { max: 1, waitMs: 30_000, visibilityMs: 60_000 }).catch(() => []);
    await new Promise((r) => setTimeout(r, 500));
    await gone.close();
    await abandoned;
    await new Promise((r) => setTimeout(r, 300));
    await q.enqueue(Q, "for the living");
    const got = await q.consume(Q, { max: 1, waitMs: 10_000 });
    assert.deepEqual(got.map((m) => text(m.payload)), ["for the living"], "not taken by the abandoned long poll (it would be in flight for a minute)");
    await q.ack(Q, got.map((m) => m.receipt));
  } finally {
    await gone.close();
    await client.close();
    await cluster.destroy();
  }
});
