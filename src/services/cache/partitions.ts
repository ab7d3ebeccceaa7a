import { UnavailableError } from "../../../protocol/index.ts";
import { LeaderBalancer } from "../../host/leader-balancer.ts";
import type { Logger } from "../../host/logger.ts";
import type { RaftGroup } from "../../host/raft-group.ts";
import type { RaftHost } from "../../host/raft-host.ts";
import type { PeerLinks } from "../../transport/peer-links.ts";
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
 * This node's replicas of the cache partitions: one Raft group per member of the recorded layout
 * (so homes spread over the nodes), each replicated on every member. A key's partition comes from
 * a consistent-hash ring; its home is that partition's leader.
 */
export class CachePartitions {
  /** One partition per member, on the same kind of ring (and leader rota) as the queue partitions. */
  #map: PartitionMap | null = null;
  readonly #parts = new Map<number, CachePartition>();
  readonly #byGroup = new Map<number, CachePartition>();
  #opening: Promise<void> | null = null;
  readonly #balancer: LeaderBalancer;

  constructor(
    readonly host: RaftHost,
    readonly peers: PeerLinks,
    readonly nodeId: string,
    readonly log: Logger,
  ) {
    this.#balancer = new LeaderBalancer("cache partition", nodeId, peers, log, () => {
      const map = this.#map;
      return map === null ? [] : this.all().map((p) => ({ group: p.group, preferred: map.preferredLeader(p.partition) }));
    });
  }

  /** Opens the cache partitions of `layout` (once; later calls are ignored). */
  open(layout: QueueLayout): Promise<void> {
    this.#opening ??= (async () => {
      const members = [...layout.members].sort();
      this.#map = new PartitionMap({ partitions: members.length, virtualNodes: layout.virtualNodes, members });
      if (!members.includes(this.nodeId)) {
        this.log.info("this node holds no cache partitions (it joined after the cluster was created); it serves cache requests through the founding nodes' homes");
        return;
      }
      for (let p = 1; p <= members.length; p++) {
        const machine = new CacheMachine();
        const group = await this.host.addGroup(CACHE_GROUP_BASE + p, machine, members);
        const part = { partition: p, group, machine };
        this.#parts.set(p, part);
        this.#byGroup.set(group.group, part);
      }
      this.log.info({ partitions: members.length }, "cache partitions open");
    })();
    return this.#opening;
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

  /**
   * Where to send `key`'s requests, best guess first: the leader of this node's replica; on a
   * node holding no replica (added after the cluster was created), the partition's preferred
   * leader, then the other founding nodes in turn (a wrong guess answers CACHE_WRONG_HOME).
   * Empty while a local replica has no leader.
   */
  homeCandidates(key: string): string[] {
    const local = this.localPart(key);
    if (local) return local.group.leader === null ? [] : [local.group.leader];
    const map = this.#map;
    if (map === null) throw new UnavailableError("cache partitions are not set up yet (the cluster has no leader yet); retry shortly");
    const preferred = map.preferredLeader(map.partitionOf(key));
    return [preferred, ...[...map.layout.members].sort().filter((m) => m !== preferred)];
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
    this.#balancer.stop();
  }
}
