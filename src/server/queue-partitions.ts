import { UnavailableError } from "../../protocol/index.ts";
import { QueueMachine, type QueueEvent } from "../services/queue/index.ts";
import { PartitionMap, groupOfPartition, type QueueLayout } from "../services/queue/layout.ts";
import type { PeerLinks } from "../transport/peer-links.ts";
import type { Logger } from "./logger.ts";
import type { RaftGroup } from "./raft-group.ts";
import type { RaftHost } from "./raft-host.ts";

/** How often a node checks whether it leads a partition that another node should lead. */
const BALANCE_EVERY_MS = 1000;
/** A leader hands a partition over only after holding it this long (no ping-pong after elections). */
const BALANCE_SETTLE_MS = 3000;
/** Entries the preferred leader may lag and still be handed the partition. */
const BALANCE_LAG_MAX = 50;

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
  readonly #leaderSince = new Map<number, number>();
  #opening: Promise<void> | null = null;
  #balancer: NodeJS.Timeout | null = null;

  constructor(
    readonly host: RaftHost,
    readonly peers: PeerLinks,
    readonly nodeId: string,
    readonly log: Logger,
    readonly onEvent: (partition: number, e: QueueEvent) => void,
  ) {}

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
    this.#balancer = setInterval(() => this.#balance(), BALANCE_EVERY_MS);
    this.#balancer.unref();
  }

  stop(): void {
    if (this.#balancer) clearInterval(this.#balancer);
  }

  /** Hands at most one partition per round to its preferred leader. */
  #balance(): void {
    const map = this.#map;
    if (map === null) return;
    const now = Date.now();
    for (const part of this.#parts.values()) {
      if (!part.group.isLeader) {
        this.#leaderSince.delete(part.partition);
        continue;
      }
      const since = this.#leaderSince.get(part.partition) ?? now;
      this.#leaderSince.set(part.partition, since);
      const preferred = map.preferredLeader(part.partition);
      if (preferred === this.nodeId || now - since < BALANCE_SETTLE_MS || !this.peers.isConnected(preferred)) continue;
      const s = part.group.status();
      const match = s.progress?.[preferred]?.match ?? 0;
      if (!s.conf.voters.includes(preferred) || s.lastIndex - match > BALANCE_LAG_MAX) continue;
      this.log.info({ partition: part.partition, to: preferred }, "handing a queue partition to its preferred leader");
      this.#leaderSince.delete(part.partition);
      part.group.transferLeader(preferred);
      return;
    }
  }
}
