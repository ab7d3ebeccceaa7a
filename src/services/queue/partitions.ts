import { UnavailableError } from "../../../protocol/index.ts";
import { QueueMachine, type QueueEvent } from "./machine/index.ts";
import { PartitionMap, groupOfPartition, type QueueLayout } from "./machine/layout.ts";
import type { PeerLinks } from "../../transport/peer-links.ts";
import { LeaderBalancer } from "../../host/leader-balancer.ts";
import type { Logger } from "../../host/logger.ts";
import type { RaftGroup } from "../../host/raft-group.ts";
import type { RaftHost } from "../../host/raft-host.ts";

export interface Partition {
  readonly partition: number;
  readonly group: RaftGroup;
  readonly machine: QueueMachine;
}

/**
 * This node's replicas of the queue partitions: opens one Raft group per partition once group 0
 * has recorded the layout, maps queue names to partitions, and spreads partition leadership over
 * the nodes (each partition has a preferred leader; a node leading a partition that is not its
 * own hands it back once the preferred node is up and caught up).
 */
export class QueuePartitions {
  #map: PartitionMap | null = null;
  readonly #parts = new Map<number, Partition>();
  #opening: Promise<void> | null = null;
  readonly #balancer: LeaderBalancer;

  constructor(
    readonly host: RaftHost,
    readonly peers: PeerLinks,
    readonly nodeId: string,
    readonly log: Logger,
    readonly onEvent: (partition: number, e: QueueEvent) => void,
  ) {
    this.#balancer = new LeaderBalancer("queue partition", nodeId, peers, log, () => {
      const map = this.#map;
      return map === null ? [] : this.all().map((p) => ({ group: p.group, preferred: map.preferredLeader(p.partition) }));
    });
  }

  /** Opens the partitions of `layout` this node is a member of (once; later calls are ignored). */
  open(layout: QueueLayout): Promise<void> {
    this.#opening ??= (async () => {
      this.#map = new PartitionMap(layout);
      if (!layout.members.includes(this.nodeId)) {
        this.log.info({ partitions: layout.partitions }, "this node holds no queue partitions (it joined after the cluster was created)");
        return;
      }
      for (let p = 1; p <= layout.partitions; p++) {
        const machine = new QueueMachine({ onEvent: (e) => this.onEvent(p, e) });
        const group = await this.host.addGroup(groupOfPartition(p), machine, layout.members);
        this.#parts.set(p, { partition: p, group, machine });
      }
      this.log.info({ partitions: layout.partitions, members: layout.members }, "queue partitions open");
    })();
    return this.#opening;
  }

  get layout(): QueueLayout | null {
    return this.#map?.layout ?? null;
  }

  /** The partition holding `queue`. @throws UnavailableError before the layout is known here. */
  partitionFor(queue: string): Partition {
    const map = this.#map;
    if (map === null) throw new UnavailableError("queue partitions are not set up yet (the cluster has no leader yet); retry shortly");
    const p = map.partitionOf(queue);
    const part = this.#parts.get(p);
    if (!part) throw new UnavailableError(`queue partition ${p} is not open on this node; use a node that was a member when the cluster was created`);
    return part;
  }

  all(): Partition[] {
    return [...this.#parts.values()];
  }

  startBalancer(): void {
    this.#balancer.start();
  }

  stop(): void {
    this.#balancer.stop();
  }
}
