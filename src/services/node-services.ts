/**
 * The services a node runs, built from its Raft host, peer links and settings, in the order the
 * node registers, starts and stops them. Group 0's queue layout opens the queue and cache
 * partitions once it is known.
 */
import type { ClusterMachine } from "./cluster/machine/cluster-machine.ts";
import { adminService } from "./cluster/admin-handlers.ts";
import { CachePartitions, CacheService, RedisStore } from "./cache/index.ts";
import { CACHE_GROUP_BASE } from "./cache/partitions.ts";
import { kvService } from "./kv/handlers.ts";
import { LockService } from "./lock/service.ts";
import { QueuePartitions } from "./queue/partitions.ts";
import { QueueService } from "./queue/service.ts";
import { ShardsAdmin } from "./queue/shards-admin.ts";
import { SpaceWatch } from "./queue/space-watch.ts";
import { NodeLifecycle } from "./cluster/node-lifecycle.ts";
import { BackupImages } from "../backup/image-service.ts";
import type { Logger } from "../host/logger.ts";
import type { NodeMetrics } from "../host/metrics.ts";
import type { Proposer } from "../host/proposer.ts";
import type { RaftGroup } from "../host/raft-group.ts";
import type { RaftHost } from "../host/raft-host.ts";
import type { Service } from "../host/service.ts";
import type { PeerLinks } from "../transport/peer-links.ts";
import type { CacheServiceOptions } from "./cache/service.ts";

/** The node's settings the services read (a NodeConfig has them all). */
export interface ServiceSettings {
  readonly nodeId: string;
  readonly cacheCapacity: number;
  readonly cacheCapacityBytes: number;
  readonly cacheWriteBackMs: number;
  readonly cacheWritePolicy: CacheServiceOptions["writePolicy"];
  readonly cacheEvictionPolicy: CacheServiceOptions["evictionPolicy"];
  readonly cacheInvalidationTimeoutMs: number;
  readonly redisUrl: string | null;
  readonly maxFrameBytes: number;
  readonly replaceDeadAfterMs: number;
  readonly zone: string | null;
  readonly spaceBudgetBytes: number;
  readonly queueAckLingerMs: number;
}

export interface NodeServicesContext {
  readonly config: ServiceSettings;
  readonly host: RaftHost;
  readonly group0: RaftGroup;
  readonly machine: ClusterMachine;
  readonly proposer: Proposer;
  readonly peers: PeerLinks;
  readonly metrics: NodeMetrics;
  readonly log: Logger;
  /** The client address of a node, for leader hints. */
  readonly leaderAddr: (id: string | null) => string | null;
  readonly clusterId: () => string;
  /** This node left the cluster (decommissioned): it stops serving clients. */
  readonly onLeft: () => void;
  /** This node was removed from the cluster while it was down: it stops serving clients. */
  readonly onRemoved: () => void;
}

/** Admin, KV, locks, queues, cache and backups, wired to group 0 and the partitions. */
export function nodeServices(x: NodeServicesContext): Service[] {
  const c = x.config;
  const locks = new LockService(x.machine.locks, x.group0, x.proposer, x.metrics, x.log);
  x.machine.setLockEventListener((e) => locks.onEvent(e));
  const cacheParts = new CachePartitions(x.host, x.peers, c.nodeId, x.log);
  const cache = new CacheService({
    nodeId: c.nodeId,
    capacity: c.cacheCapacity,
    capacityBytes: c.cacheCapacityBytes,
    writeBackMs: c.cacheWriteBackMs,
    writePolicy: c.cacheWritePolicy,
    evictionPolicy: c.cacheEvictionPolicy,
    invalidationTimeoutMs: c.cacheInvalidationTimeoutMs,
    redis: c.redisUrl !== null ? new RedisStore(c.redisUrl) : null,
    partitions: cacheParts,
    peers: x.peers,
    clientAddrOf: (id) => x.leaderAddr(id),
    members: () => {
      const conf = x.group0.status().conf;
      return [...conf.voters, ...conf.learners];
    },
    metrics: x.metrics,
    log: x.log,
  });
  let queues: QueueService | null = null;
  const partitions = new QueuePartitions({
    host: x.host,
    peers: x.peers,
    nodeId: c.nodeId,
    log: x.log,
    onEvent: (p, e) => queues?.onEvent(p, e),
    onOpen: (part) => queues?.onPartitionOpen(part),
    onClose: (part) => queues?.onPartitionClose(part),
    clientAddrOf: (id) => x.leaderAddr(id),
  });
  const space = new SpaceWatch({ nodeId: c.nodeId, budgetBytes: c.spaceBudgetBytes, partitions, proposer: x.proposer, alarms: () => x.machine.spaceAlarms(), registry: x.metrics.registry, log: x.log });
  queues = new QueueService(partitions, x.proposer, c.nodeId, x.metrics, x.log, x.leaderAddr, space, c.queueAckLingerMs);
  x.machine.setQueueLayoutListener((layout) => {
    partitions.setLayout(layout);
    cacheParts.open(layout).catch((err: unknown) => x.log.error({ err }, "could not open the cache partitions"));
  });
  x.machine.setShardMapListener((shards) => {
    void partitions.sync(shards);
    void cacheParts.sync(shards);
  });
  const backups = new BackupImages({
    host: () => x.host,
    nodeId: c.nodeId,
    clusterId: x.clusterId,
    maxFrameBytes: c.maxFrameBytes,
    log: x.log,
    peers: x.peers,
    groups: () => {
      const shards = x.machine.shards;
      const layout = x.machine.queueLayout;
      if (shards === null || layout === null) return [{ group: 0, holders: [] }];
      const queueGroups = Array.from({ length: shards.partitionCount }, (_, i) => {
        const placed = shards.partition(i + 1)!;
        return { group: i + 1, holders: [placed.leader, ...placed.replicas.filter((r) => r !== placed.leader)] };
      });
      const cacheGroups = Array.from({ length: cacheParts.count }, (_, i) => ({ group: CACHE_GROUP_BASE + i + 1, holders: cacheParts.holders(i + 1) }));
      return [{ group: 0, holders: [] }, ...queueGroups, ...cacheGroups];
    },
  });
  const lifecycle = new NodeLifecycle({ nodeId: c.nodeId, zone: c.zone, group0: x.group0, machine: x.machine, proposer: x.proposer, peers: x.peers, log: x.log, replaceDeadAfterMs: c.replaceDeadAfterMs, onLeft: x.onLeft, onRemoved: x.onRemoved });
  const admin = adminService({ group0: x.group0, machine: x.machine, proposer: x.proposer, peers: x.peers, selfId: c.nodeId, lifecycle });
  // A cache partition on the shard map moves with its queue partition, in the same job.
  const shards = new ShardsAdmin(partitions, x.proposer, c.nodeId, x.metrics, x.log, (p) => {
    if (!cacheParts.onShards) return [];
    const part = cacheParts.get(p);
    return part ? [part.group] : null;
  });
  return [admin, shards, kvService(x.proposer, x.machine.kv), locks, queues, cache, backups];
}
