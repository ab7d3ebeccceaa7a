/**
 * The bounded fault campaign of the test suite: kv, locks, queue and cache on 3 real nodes, every
 * fault kind at least once (kill, pause, partition, delay, disk, clock, restart), histories
 * checked; then queues, cache and kv on 5 nodes while replicas move between them under faults.
 * `CHAOS_SEED=n` replays a seed's fault schedule; the seed is printed either way.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { waitFor } from "../helpers/daemon.ts";
import { Prng } from "../sim/prng.ts";
import { cleanUp, runCampaign } from "./campaign.ts";
import { ChaosCluster } from "./cluster.ts";
import { FAULT_KINDS, type FaultKind } from "./nemesis.ts";
import { kvWorkload } from "./workloads/kv.ts";
import { sleep } from "./workloads/workload.ts";

test("chaos campaign - kv, locks, queue, cache and backups stay correct under every fault kind", async (t) => {
  const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
  const result = await runCampaign({
    workloads: ["kv", "locks", "queue", "cache", "backup"],
    // Every kind in turn, a fault every ~4 s (a rolling restart takes longer): each comes up at least once.
    seconds: 45,
    seed,
    nodes: 3,
    faults: FAULT_KINDS,
    order: "cycle",
    quietMs: [500, 1500],
    faultMs: [1000, 4000],
    // No client operation for 600 ms of every 3 s: the groups go quiet, and faults land on quiet groups too.
    idleGaps: [3000, 600],
    keep: false,
    log: (l) => t.diagnostic(l),
  });
  for (const kind of FAULT_KINDS) assert.ok((result.faults[kind] ?? 0) > 0, `fault kind ${kind} was not injected (faults: ${JSON.stringify(result.faults)})`);
  for (const w of result.workloads) assert.ok(w.outcomes.ok > 0, `${w.name}: no operation succeeded`);
  assert.ok(result.ok, `violations found (seed ${seed}); kept in ${result.dir}:\n${result.report}`);
  await cleanUp(result, false);
});

test("chaos campaign - queues, cache, kv and backups stay correct while replicas move between 5 nodes under kills, pauses and partitions", async (t) => {
  const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
  const lines: string[] = [];
  const kinds: FaultKind[] = ["move", "kill", "pause", "partition"];
  const result = await runCampaign({
    workloads: ["kv", "queue", "cache", "backup"],
    // 3 replicas per partition over 5 nodes: a move takes a replica (queue and cache partition, so
    // a cache home too) to a node without one, and a backup fetches the partitions its node lacks
    // from the nodes holding them.
    seconds: 30,
    seed,
    nodes: 5,
    faults: kinds,
    order: "cycle",
    quietMs: [300, 800],
    faultMs: [1000, 3000],
    keep: false,
    log: (l) => {
      lines.push(l);
      t.diagnostic(l);
    },
  });
  for (const kind of kinds) assert.ok((result.faults[kind] ?? 0) > 0, `fault kind ${kind} was not injected (faults: ${JSON.stringify(result.faults)})`);
  assert.ok(lines.some((l) => / move: replica of partition \d+ from /.test(l)), "a replica move was started");
  for (const w of result.workloads) assert.ok(w.outcomes.ok > 0, `${w.name}: no operation succeeded`);
  assert.ok(result.ok, `violations found (seed ${seed}); kept in ${result.dir}:\n${result.report}`);
  await cleanUp(result, false);
});

test("chaos campaign - the checker catches a read path that skips ReadIndex (follower's own state) on a real cluster", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-chaos-stale-"));
  const cluster = await ChaosCluster.create(3, dir, {});
  // Reads with stale: true answer from the connected node's copy: what a node that served KV
  // reads without confirming its leadership or its commit index would do.
  const w = kvWorkload(6, 2, true);
  try {
    const leader = await waitFor(() => cluster.leader(), "a leader");
    const follower = cluster.nodes.map((n) => n.spec.id).find((id) => id !== leader)!;
    const rest = cluster.nodes.map((n) => n.spec.id).filter((id) => id !== follower);
    await w.start({ addrs: cluster.clientAddrs, rng: new Prng(1), dir });
    await sleep(1000);
    // The follower falls behind while it is cut off; its clients keep reading from it.
    cluster.cut([follower], rest, "stall");
    await sleep(3000);
    cluster.heal();
    await sleep(1000);
    await w.stop();
    const r = w.check();
    t.diagnostic(`${JSON.stringify(w.outcomes())}; ${r.lines.slice(0, 4).join(" | ")}`);
    assert.ok(w.outcomes().ok > 100, "the workload ran");
    assert.equal(r.ok, false, "stale reads from a cut-off follower are reported as violations");
    assert.ok(r.violations > 0);
  } finally {
    await w.close();
    await cluster.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
