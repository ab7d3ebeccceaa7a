import { test } from "node:test";
import assert from "node:assert/strict";
import { createRng } from "../../src/raft/rng.ts";
import type { Message } from "../../src/raft/types.ts";
import { Network, dec, enc } from "./network.ts";

/**
 * A small randomized run: message loss, duplication, reordering, partitions and restarts from
 * storage, checking Election Safety and State Machine Safety after every step, then liveness
 * after healing. The full simulator lives in test/sim; this guards the core on its own.
 */
function run(seed: number): void {
  const rng = createRng(seed);
  const ids = ["n1", "n2", "n3", "n4", "n5"];
  const net = new Network(ids, { snapshotChunkBytes: 32 }, seed);
  const leaderOfTerm = new Map<number, string>();
  const appliedAt = new Map<number, string>();
  const appliedCount = new Map<string, number>();
  let inflight: Message[] = [];
  let proposals = 0;
  let reads = 0;
  const readFloor = new Map<string, number>();
  const readsServed = new Map<string, number>();

  const check = (): void => {
    for (const n of net.nodes.values()) {
      const s = n.raw.status();
      if (s.role === "leader") {
        const prev = leaderOfTerm.get(s.term);
        assert.ok(prev === undefined || prev === n.id, `seed ${seed}: two leaders in term ${s.term}: ${prev}, ${n.id}`);
        leaderOfTerm.set(s.term, n.id);
      }
      // State Machine Safety: every node applies the same entry at each index.
      const from = appliedCount.get(n.id) ?? 0;
      for (let i = from; i < n.applied.length; i++) {
        const e = n.applied[i]!;
        const v = `${e.term}:${dec(e.data)}`;
        const prev = appliedAt.get(e.index);
        assert.ok(prev === undefined || prev === v, `seed ${seed}: index ${e.index} applied as ${prev} and ${v}`);
        appliedAt.set(e.index, v);
      }
      appliedCount.set(n.id, n.applied.length);
      for (const rs of n.readStates.slice(readsServed.get(n.id) ?? 0)) {
        const floor = readFloor.get(rs.context);
        assert.ok(floor !== undefined && rs.index >= floor, `seed ${seed}: read ${rs.context} at ${rs.index} below ${floor}`);
      }
      readsServed.set(n.id, n.readStates.length);
    }
  };

  for (let step = 0; step < 1500; step++) {
    const r = rng.nextInt(100);
    if (r < 30) {
      for (const n of net.nodes.values()) n.raw.tick();
    } else if (r < 45) {
      for (const n of net.nodes.values()) {
        if (n.raw.status().role === "leader") n.raw.propose(enc(`p${proposals++}`));
      }
    } else if (r < 47) {
      net.heal();
      if (rng.nextInt(2) === 0) net.isolate(ids[rng.nextInt(ids.length)]!);
    } else if (r < 48) {
      // Crash and restart from durable state (everything handed to storage is durable here).
      const id = ids[rng.nextInt(ids.length)]!;
      net.add(id, net.node(id).storage);
      appliedCount.set(id, 0);
      readsServed.set(id, 0);
      inflight = inflight.filter((m) => m.to !== id);
    } else if (r < 49) {
      const leader = [...net.nodes.values()].find((n) => n.raw.status().role === "leader");
      if (leader) {
        const idx = leader.raw.status().applied;
        if (idx > leader.storage.snapshot().meta.index) {
          leader.storage.createSnapshot(idx, leader.conf, enc(`image-at-${idx}`));
          leader.storage.compact(idx);
        }
      }
    } else if (r < 52) {
      // Linearizable reads: the read point must cover everything committed before the request.
      const n = net.node(ids[rng.nextInt(ids.length)]!);
      const ctx = `r${reads++}`;
      if (n.raw.readIndex(ctx)) readFloor.set(ctx, Math.max(...[...net.nodes.values()].map((x) => x.raw.status().commit)));
    } else if (r < 53) {
      const leader = [...net.nodes.values()].find((n) => n.raw.status().role === "leader");
      leader?.raw.transferLeader(ids[rng.nextInt(ids.length)]!);
    }
    for (const n of net.nodes.values()) while (n.raw.hasReady()) inflight.push(...net.processReady(n));
    // Deliver a random subset in random order; drop 10%, duplicate 5%.
    const next: Message[] = [];
    for (const m of inflight) {
      const x = rng.nextInt(100);
      if (x < 10) continue;
      if (x < 40) next.push(m);
      else {
        if (x < 45) next.push(m);
        deliver(net, m);
      }
    }
    inflight = next;
    check();
  }
  // Liveness: heal and let the cluster settle on one leader that can commit.
  net.heal();
  for (const m of inflight) deliver(net, m);
  net.stabilize();
  net.tick(60);
  const leaders = net.leaders();
  assert.equal(leaders.length, 1, `seed ${seed}: leaders after healing: ${leaders}`);
  const leader = net.node(leaders[0]!);
  assert.equal(leader.raw.propose(enc("final")).ok, true);
  net.stabilize();
  net.tick(2);
  check();
  const commit = leader.raw.status().commit;
  if (process.env["RAFT_RANDOM_VERBOSE"]) console.log(`seed ${seed}: terms ${leaderOfTerm.size} commit ${commit} snapshot ${leader.storage.snapshot().meta.index}`);
  for (const n of net.nodes.values()) assert.equal(n.raw.status().commit, commit, `seed ${seed}: ${n.id} commit`);
}

function deliver(net: Network, m: Message): void {
  if (net.isCut(m.from, m.to)) return;
  net.node(m.to).raw.step(m);
}

test("random - safety under loss, duplication, reordering, partitions and restarts", () => {
  const seeds = Number(process.env["RAFT_RANDOM_SEEDS"] ?? 30);
  const start = Number(process.env["RAFT_RANDOM_SEED_START"] ?? 1);
  for (let seed = start; seed < start + seeds; seed++) run(seed);
});
