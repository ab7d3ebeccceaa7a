import { MovedError, UnavailableError } from "../../../protocol/index.ts";
import { QueueMachine, type QueueEvent } from "./machine/index.ts";
import { PartitionMap, groupOfPartition, type QueueLayout } from "./machine/layout.ts";
import type { ShardMap } from "../cluster/machine/shard-map.ts";
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

export interface QueuePartitionsOptions {
  readonly host: RaftHost;
  readonly peers: PeerLinks;
  readonly nodeId: string;
  readonly log: Logger;
  readonly onEvent: (partition: number, e: QueueEvent) => void;
  /** A replica opened here (at start, or moved onto this node). */
  readonly onOpen: (part: Partition) => void;
  /** A replica closed here (moved off this node). */
  readonly onClose: (part: Partition) => void;
  /** The client address of a node, for redirects. */
  readonly clientAddrOf: (id: string) => string | null;
}

/**
 * This node's replicas of the queue partitions: the ones group 0's shard map places here (and
 * the ones a move is bringing here), opened and closed as the map changes. Maps queue names to
 * partitions, sends requests for partitions held elsewhere to a node that holds them, and spreads
 * partition leadership as the map prefers.
 */
export class QueuePartitions {
  #map: PartitionMap | null = null;
  #shards: ShardMap | null = null;
  readonly #parts = new Map<number, Partition>();
  /** Syncs run one at a time, in the order the map changed. */
  #syncing: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #balancer: LeaderBalancer;

  constructor(readonly o: QueuePartitionsOptions) {
    this.#balancer = new LeaderBalancer("queue partition", o.nodeId, o.peers, o.log, () => {
      const shards = this.#shards;
      if (shards === null) return [];
      return this.all().flatMap((p) => {
        const leader = shards.partition(p.partition)?.leader;
        return leader === undefined ? [] : [{ group: p.group, preferred: leader }];
      });
    });
  }

  /** The ring that maps queue names to partitions (recorded once). */
  setLayout(layout: QueueLayout): void {
    this.#map ??= new PartitionMap(layout);
  }

  /** Opens the replicas the map now places here and retires those it moved away. */
  sync(shards: ShardMap): Promise<void> {
    this.#shards = shards;
    this.#syncing = this.#syncing.then(() => this.#sync()).catch((err: unknown) => this.o.log.error({ err }, "could not open or close queue partitions"));
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    const shards = this.#shards;
    if (shards === null || this.#closed) return;
    const want = new Set(shards.partitionsOn(this.o.nodeId));
    for (const p of want) {
      if (this.#parts.has(p) || this.#closed) continue;
      const machine = new QueueMachine({ onEvent: (e) => this.o.onEvent(p, e) });
      const group = await this.o.host.addGroup(groupOfPartition(p), machine, shards.bootstrapVoters(p, this.o.nodeId));
      const part = { partition: p, group, machine };
      this.#parts.set(p, part);
      this.o.onOpen(part);
    }
    for (const [p, part] of this.#parts) {
      // The map drops a replica only after the partition's group committed its removal (the job
      // is done once the removal applied on its leader), so it goes now, whatever this replica's
      // own view: a removed replica may never hear that its removal committed.
      if (want.has(p)) continue;
      this.#parts.delete(p);
      this.o.onClose(part);
      await this.o.host.retireGroup(part.group.group);
      this.o.log.info({ partition: p }, "queue partition moved off this node");
    }
  }

  get layout(): QueueLayout | null {
    return this.#map?.layout ?? null;
  }

  get shards(): ShardMap | null {
    return this.#shards;
  }

  /** The partition number of `queue`. @throws UnavailableError before the layout is known here. */
  partitionOf(queue: string): number {
    const map = this.#map;
    if (map === null) throw new UnavailableError("queue partitions are not set up yet (the cluster has no leader yet); retry shortly");
    return map.partitionOf(queue);
  }

  /**
   * This node's replica of the partition holding `queue`.
   * @throws MovedError naming a node that holds it, when this node does not.
   * @throws UnavailableError before the layout is known, or while the replica is opening.
   */
  partitionFor(queue: string): Partition {
    const p = this.partitionOf(queue);
    const part = this.#parts.get(p);
    if (part) return part;
    const placed = this.#shards?.partition(p);
    if (!placed || placed.replicas.includes(this.o.nodeId)) throw new UnavailableError(`queue partition ${p} is opening on this node; retry shortly`);
    const to = this.reachableHolder(p) ?? placed.leader;
    throw new MovedError(to, this.o.clientAddrOf(to), `queue partition ${p} is held by ${placed.replicas.join(", ")}, not by this node; send it to ${to}`);
  }

  /** A node holding partition `p` that this node can reach: the preferred leader first, then any replica. */
  reachableHolder(p: number): string | undefined {
    const placed = this.#shards?.partition(p);
    if (!placed) return undefined;
    return [placed.leader, ...placed.replicas].find((id) => this.o.peers.isConnected(id));
  }

  /** This node's replica of partition `p`, if it holds one. */
  get(p: number): Partition | undefined {
    return this.#parts.get(p);
  }

  all(): Partition[] {
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
