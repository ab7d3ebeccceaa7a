/**
 * ADMIN_SHARDS and ADMIN_REBALANCE: the shard map as an operator sees it (each partition's
 * replicas, leader, lag and state, gathered from the nodes that hold them) and the replica moves
 * that balance it. Also starts the move driver, which runs the jobs.
 */
import { asFields, bool, int, InvalidArgumentError, Op, str, type AdminRebalanceReply, type AdminShardsReply, type ShardView } from "../../../protocol/index.ts";
import type { Logger } from "../../host/logger.ts";
import type { RaftGroup } from "../../host/raft-group.ts";
import type { Proposer } from "../../host/proposer.ts";
import type { Handlers, Service } from "../../host/service.ts";
import type { MoveJob } from "../cluster/machine/shard-map.ts";
import { isFinished } from "../cluster/machine/shard-map.ts";
import { MoveDriver } from "./move-driver.ts";
import { ShardMetrics } from "./shard-metrics.ts";
import type { NodeMetrics } from "../../host/metrics.ts";
import type { QueuePartitions } from "./partitions.ts";

/** How long ADMIN_SHARDS waits for another node's partition status. */
const STATUS_PEER_TIMEOUT_MS = 3000;
/** Finished jobs ADMIN_SHARDS lists after the running ones. */
const FINISHED_JOBS_SHOWN = 20;

/** The Raft status of one replica of a partition, as PARTITION_STATUS carries it. */
interface ReplicaStatus {
  readonly partition: number;
  /** Absent: the queue group; "cache": the cache partition of the same number. */
  readonly kind?: "cache";
  readonly node: string;
  readonly leader: string | null;
  readonly isLeader: boolean;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly lastIndex: number;
  /** Match index of each replica (only from the leader). */
  readonly match: Readonly<Record<string, number>> | null;
}

export class ShardsAdmin implements Service {
  readonly name = "shards";
  readonly #driver: MoveDriver;
  readonly #metrics: ShardMetrics;

  constructor(
    readonly partitions: QueuePartitions,
    readonly proposer: Proposer,
    readonly nodeId: string,
    metrics: NodeMetrics,
    readonly log: Logger,
    /** This node's replicas of the other groups that move with partition p (see MoveDriver). */
    readonly companionsOf: (p: number) => readonly RaftGroup[] | null = () => [],
  ) {
    this.#metrics = new ShardMetrics(metrics.registry);
    this.#driver = new MoveDriver(partitions, proposer, nodeId, log, (entries) => this.#metrics.moved(entries), companionsOf);
  }

  refreshGauges(): void {
    const peers = this.partitions.o.peers;
    const led = this.partitions.all().filter((p) => p.group.isLeader);
    this.#metrics.refresh(this.partitions.shards, led, (id) => id === this.nodeId || peers.isConnected(id));
  }

  start(): void {
    this.#driver.start();
  }

  stop(): void {
    this.#driver.stop();
  }

  register({ client, peer }: Handlers): void {
    client.register(Op.ADMIN_SHARDS, async (): Promise<AdminShardsReply> => this.#report());
    client.register(Op.ADMIN_REBALANCE, async (body): Promise<AdminRebalanceReply> => {
      const f = asFields(body, "ADMIN_REBALANCE");
      const dryRun = bool(f, "dryRun", "ADMIN_REBALANCE");
      const shards = this.partitions.shards;
      if (shards === null) return { dryRun, moves: [], jobs: [] };
      if (f.move !== undefined && f.move !== null) {
        // One replica, moved where the operator says.
        const m = asFields(f.move, "ADMIN_REBALANCE move");
        const move = { partition: int(m, "partition", "ADMIN_REBALANCE move", { min: 1, max: 0xffff }), from: str(m, "from", "ADMIN_REBALANCE move", { maxBytes: 64 }), to: str(m, "to", "ADMIN_REBALANCE move", { maxBytes: 64 }) };
        if (dryRun) return { dryRun, moves: [move], jobs: [] };
        const r = (await this.proposer.proposeStamped(0, { op: "shards.move", ...move })) as { error?: string; jobs?: MoveJob[] };
        if (r.error !== undefined) throw new InvalidArgumentError(r.error);
        return { dryRun, moves: [move], jobs: r.jobs ?? [] };
      }
      if (dryRun) {
        // Planned from this node's replica of group 0, after a read barrier: what a rebalance now would do.
        await this.proposer.readBarrier(0);
        return { dryRun, moves: shards.plan(), jobs: shards.activeJobs() };
      }
      const r = (await this.proposer.proposeStamped(0, { op: "shards.rebalance" })) as { jobs: MoveJob[] };
      return { dryRun, moves: r.jobs.map(({ partition, from, to }) => ({ partition, from, to })), jobs: r.jobs };
    });
    peer(Op.PARTITION_STATUS, async () => ({ replicas: this.#localStatus() }));
  }

  #localStatus(): ReplicaStatus[] {
    const status = (partition: number, g: RaftGroup, kind?: "cache"): ReplicaStatus => {
      const s = g.status();
      const match = s.progress ? Object.fromEntries(Object.entries(s.progress).map(([id, pr]) => [id, pr.match])) : null;
      return { partition, ...(kind && { kind }), node: this.nodeId, leader: s.leader, isLeader: s.role === "leader", voters: s.conf.voters, learners: s.conf.learners, lastIndex: s.lastIndex, match };
    };
    const out = this.partitions.all().map((p) => status(p.partition, p.group));
    for (let p = 1; p <= (this.partitions.shards?.partitionCount ?? 0); p++) for (const g of this.companionsOf(p) ?? []) out.push(status(p, g, "cache"));
    return out;
  }

  async #report(): Promise<AdminShardsReply> {
    await this.proposer.readBarrier(0);
    const shards = this.partitions.shards;
    if (shards === null) return { version: 0, replicationFactor: 0, nodes: [], partitions: [], jobs: [] };
    const peers = this.partitions.o.peers;
    const reachable = (id: string): boolean => id === this.nodeId || peers.isConnected(id);
    const remote = await Promise.all(
      shards
        .nodes()
        .filter((n) => n.id !== this.nodeId && peers.isConnected(n.id))
        .map((n) =>
          peers
            .request(n.id, Op.PARTITION_STATUS, {}, STATUS_PEER_TIMEOUT_MS)
            .then((r) => (r as { replicas: ReplicaStatus[] }).replicas)
            .catch(() => [] as ReplicaStatus[]),
        ),
    );
    const all = [...this.#localStatus(), ...remote.flat()];
    const running = new Set(shards.runningJobs().map((j) => j.partition));
    const partitions: ShardView[] = [];
    for (let p = 1; p <= shards.partitionCount; p++) {
      const placed = shards.partition(p)!;
      const mine = all.filter((r) => r.partition === p && r.kind === undefined);
      const lead = mine.find((r) => r.isLeader);
      const cacheLead = all.find((r) => r.partition === p && r.kind === "cache" && r.isLeader);
      const cacheHeld = all.some((r) => r.partition === p && r.kind === "cache");
      const lag: Record<string, number> = {};
      if (lead?.match) for (const [id, m] of Object.entries(lead.match)) lag[id] = Math.max(0, lead.lastIndex - m);
      const voters = lead?.voters ?? placed.replicas;
      const live = voters.filter(reachable).length;
      const state = running.has(p) ? "moving" : lead === undefined ? "no-leader" : live < Math.min(shards.rf, voters.length) || voters.length < shards.rf ? "under-replicated" : "ok";
      const cache = cacheHeld ? { leader: cacheLead?.node ?? null, voters: cacheLead?.voters ?? [], learners: cacheLead?.learners ?? [] } : null;
      partitions.push({ partition: p, replicas: placed.replicas, preferredLeader: placed.leader, leader: lead?.node ?? null, voters, learners: lead?.learners ?? [], lag, state, cache });
    }
    const load = shards.load();
    const jobs = shards.jobs();
    return {
      version: shards.version,
      replicationFactor: shards.rf,
      nodes: shards.nodes().map((n) => ({ ...n, replicas: load.get(n.id)?.replicas ?? 0, leaders: load.get(n.id)?.leaders ?? 0, reachable: reachable(n.id) })),
      partitions,
      jobs: [...jobs.filter((j) => !isFinished(j)), ...jobs.filter(isFinished).slice(-FINISHED_JOBS_SHOWN).reverse()],
    };
  }
}
