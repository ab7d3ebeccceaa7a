import { Counter, Gauge, type Registry } from "prom-client";
import type { ShardMap } from "../cluster/machine/shard-map.ts";
import type { Partition } from "./partitions.ts";

/**
 * The shard map in /metrics. Replicas and preferred leaderships per node, jobs by step and the
 * map's version are replicated state (the same on every node); under-replicated partitions are
 * those this node leads, so summing the series over the nodes counts each partition once.
 */
export class ShardMetrics {
  readonly #replicas: Gauge<"node">;
  readonly #leaders: Gauge<"node">;
  readonly #jobs: Gauge<"step">;
  readonly #version: Gauge;
  readonly #under: Gauge;
  readonly #moved: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#replicas = new Gauge({ name: "dsync_shard_replicas", help: "Queue partition replicas the shard map places on each node (replicated).", labelNames: ["node"] as const, registers });
    this.#leaders = new Gauge({ name: "dsync_shard_preferred_leaders", help: "Queue partitions the shard map prefers each node to lead (replicated).", labelNames: ["node"] as const, registers });
    this.#jobs = new Gauge({ name: "dsync_shard_jobs", help: "Replica-move jobs by step: queued, adding, catching-up, promoting, removing (replicated).", labelNames: ["step"] as const, registers });
    this.#version = new Gauge({ name: "dsync_shard_map_version", help: "Version of the shard map (bumped by every change).", registers });
    this.#under = new Gauge({ name: "dsync_shard_under_replicated_partitions", help: "Partitions this node leads with fewer voters than the replication factor, or with a voter it cannot reach.", registers });
    this.#moved = new Counter({ name: "dsync_shard_moved_entries_total", help: "Log entries new replicas caught up on, in moves this node ran as the partition's leader.", registers });
  }

  refresh(shards: ShardMap | null, led: readonly Partition[], reachable: (id: string) => boolean): void {
    if (shards === null) return;
    this.#replicas.reset();
    this.#leaders.reset();
    for (const [id, l] of shards.load()) {
      this.#replicas.labels(id).set(l.replicas);
      this.#leaders.labels(id).set(l.leaders);
    }
    this.#jobs.reset();
    for (const step of ["queued", "adding", "catching-up", "promoting", "removing"]) this.#jobs.labels(step).set(0);
    for (const j of shards.activeJobs()) this.#jobs.labels(j.step).inc();
    this.#version.set(shards.version);
    let under = 0;
    for (const p of led) {
      const voters = p.group.status().conf.voters;
      if (voters.length < shards.rf || voters.some((v) => !reachable(v))) under++;
    }
    this.#under.set(under);
  }

  /** A move this node ran promoted a replica that had caught up on `entries` entries. */
  moved(entries: number): void {
    this.#moved.inc(Math.max(0, entries));
  }
}
