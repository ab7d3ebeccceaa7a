import { UnavailableError } from "../../../protocol/index.ts";
import { LeaderBalancer } from "../../host/leader-balancer.ts";
import type { Logger } from "../../host/logger.ts";
import type { RaftGroup } from "../../host/raft-group.ts";
import type { RaftHost } from "../../host/raft-host.ts";
import type { PeerLinks } from "../../transport/peer-links.ts";
import type { ShardMap } from "../cluster/machine/shard-map.ts";
import { PartitionMap, type QueueLayout } from "../queue/machine/layout.ts";
import { CacheMachine } from "./machine/index.ts";

/** Cache partition p (1-based) is Raft group CACHE_GROUP_BASE + p, clear of the queue partitions' ids. */
export const CACHE_GROUP_BASE = 0x4000;

export interface CachePartition {
  readonly partition: number;
  readonly group: RaftGroup;
  readonly machine: CacheMachine;
}

/**
 * This node's replicas of the cache partitions. A key's partition comes from a consistent-hash
 * ring; its home is that partition's leader.
 *
 * Two placements, chosen by the layout group 0 recorded when the cluster was created:
 * - on the shard map (`cacheOnShards`, every cluster created since): as many cache partitions as
 *   queue partitions, cache partition p placed with queue partition p (same replicas, same
 *   preferred leader) and moved with it, so homes spread over every node, added ones included;
 * - founders (older layouts): one partition per founding member, replicated on every founder; a
 *   node added later holds none and serves through the founders' homes.
 */
export class CachePartitions {
  #map: PartitionMap | null = null;
  #layout: QueueLayout | null = null;
  /** Founders placement: every founding member, sorted. */
  #founders: readonly string[] = [];
  #shards: ShardMap | null = null;
  readonly #parts = new Map<number, CachePartition>();
  readonly #byGroup = new Map<number, CachePartition>();
  /** Opens and closes run one at a time, in the order they were asked for. */
  #syncing: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #balancer: LeaderBalancer;

  constructor(
    readonly host: RaftHost,
    readonly peers: PeerLinks,
    readonly nodeId: string,
    readonly log: Logger,
  ) {
    this.#balancer = new LeaderBalancer("cache partition", nodeId, peers, log, () => this.all().flatMap((p) => {
      const preferred = this.#preferredLeader(p.partition);
      return preferred === undefined ? [] : [{ group: p.group, preferred }];
    }));
  }

  /** Whether cache partitions follow the shard map (and move with queue partitions). */
  get onShards(): boolean {
    return this.#layout?.cacheOnShards === true;
  }

  /** Opens the cache partitions of `layout` (once; later calls are ignored). */
  open(layout: QueueLayout): Promise<void> {
    if (this.#layout !== null) return this.#syncing;
    this.#layout = layout;
    if (layout.cacheOnShards === true) {
      this.#map = new PartitionMap({ partitions: layout.partitions, virtualNodes: layout.virtualNodes, members: layout.members });
      return this.#enqueue(() => this.#syncShards());
    }
    const members = [...layout.members].sort();
    this.#founders = members;
    this.#map = new PartitionMap({ partitions: members.length, virtualNodes: layout.virtualNodes, members });
    return this.#enqueue(async () => {
      if (!members.includes(this.nodeId)) {
        this.log.info("this node holds no cache partitions (it joined a cluster whose cache stays on its founding nodes); it serves cache requests through their homes");
        return;
      }
      for (let p = 1; p <= members.length; p++) await this.#openPart(p, members);
      this.log.info({ partitions: members.length }, "cache partitions open");
    });
  }

  /** The shard map changed: open the partitions it places here, retire those it moved away. */
  sync(shards: ShardMap): Promise<void> {
    this.#shards = shards;
    return this.#enqueue(() => this.#syncShards());
  }

  #enqueue(fn: () => Promise<void>): Promise<void> {
    this.#syncing = this.#syncing.then(fn).catch((err: unknown) => this.log.error({ err }, "could not open or close cache partitions"));
    return this.#syncing;
  }

  async #syncShards(): Promise<void> {
    const shards = this.#shards;
    if (shards === null || !this.onShards || this.#closed) return;
    const want = new Set(shards.partitionsOn(this.nodeId));
    for (const p of want) {
      if (this.#parts.has(p) || this.#closed) continue;
      await this.#openPart(p, shards.bootstrapVoters(p, this.nodeId));
      this.log.info({ partition: p }, "cache partition open on this node");
    }
    for (const [p, part] of this.#parts) {
      // As for queue partitions: the map drops a replica only once the group committed its removal.
      if (want.has(p)) continue;
      this.#parts.delete(p);
      this.#byGroup.delete(part.group.group);
      await this.host.retireGroup(part.group.group);
      this.log.info({ partition: p }, "cache partition moved off this node");
    }
  }

  async #openPart(p: number, voters: readonly string[]): Promise<void> {
    const machine = new CacheMachine();
    const group = await this.host.addGroup(CACHE_GROUP_BASE + p, machine, voters);
    const part = { partition: p, group, machine };
    this.#parts.set(p, part);
    this.#byGroup.set(group.group, part);
  }

  /** The partition (1-based) of `key`. @throws UnavailableError before the layout is known. */
  partitionOf(key: string): number {
    const map = this.#map;
    if (map === null) throw new UnavailableError("cache partitions are not set up yet (the cluster has no leader yet); retry shortly");
    return map.partitionOf(key);
  }

  /** This node's replica of `key`'s partition, if it holds one. */
  localPart(key: string): CachePartition | undefined {
    return this.#parts.get(this.partitionOf(key));
  }

  /** This node's replica of partition `p`, if it holds one. */
  get(p: number): CachePartition | undefined {
    return this.#parts.get(p);
  }

  /**
   * Where to send `key`'s requests, best guess first: the leader of this node's replica; on a
   * node holding no replica, the partition's preferred leader, then its other replicas (a wrong
   * guess answers CACHE_WRONG_HOME). Empty while a local replica has no leader.
   */
  homeCandidates(key: string): readonly string[] {
    const local = this.localPart(key);
    if (local) return local.group.leader === null ? [] : [local.group.leader];
    const p = this.partitionOf(key);
    const holders = this.holders(p);
    const preferred = this.#preferredLeader(p);
    return preferred === undefined ? holders : [preferred, ...holders.filter((m) => m !== preferred)];
  }

  /** The nodes that hold partition `p`, sorted (the map keeps replicas sorted). */
  holders(p: number): readonly string[] {
    if (this.onShards) return this.#shards?.partition(p)?.replicas ?? [];
    return this.#founders;
  }

  /** How many cache partitions the cluster has (0 before the layout is known). */
  get count(): number {
    return this.#map?.layout.partitions ?? 0;
  }

  #preferredLeader(p: number): string | undefined {
    if (this.onShards) return this.#shards?.partition(p)?.leader;
    return this.#map?.preferredLeader(p);
  }

  /** The partition run by Raft group `group`, if it is a cache partition here. */
  byGroup(group: number): CachePartition | undefined {
    return this.#byGroup.get(group);
  }

  all(): CachePartition[] {
    return [...this.#parts.values()];
  }

  startBalancer(): void {
    this.#balancer.start();
  }

  stop(): void {
    this.#closed = true;
    this.#balancer.stop();
  }
}
