/**
 * Wire types of the shard map (where queue partitions' replicas live) and of replica moves:
 * ADMIN_SHARDS, ADMIN_REBALANCE and ADMIN_REMOVE_NODE's reply. One declaration for the daemon's
 * group-0 machine, the daemon's handlers and the client library.
 */

export type NodeState = "active" | "leaving";

export interface ShardNode {
  readonly id: string;
  readonly zone?: string;
  /** A leaving node (decommissioned, or dead past the replace time) gets no new replicas. */
  readonly state: NodeState;
}

/**
 * Where a job stands: `queued` behind another job of its partition; `adding` the new replica as a
 * learner; `catching-up` (progress in `caughtUp` / `target`); `promoting` it to voter; `removing`
 * the old replica; then `done`, or `cancelled` (nothing of the move stays).
 */
export type JobStep = "queued" | "adding" | "catching-up" | "promoting" | "removing" | "done" | "cancelled";
export type JobReason = "rebalance" | "decommission" | "replace" | "manual";

/** One replica move of one partition. */
export interface MoveJob {
  readonly id: number;
  readonly partition: number;
  /** The replica that goes away; null when the partition was short of one. */
  readonly from: string | null;
  readonly to: string;
  readonly reason: JobReason;
  readonly step: JobStep;
  /** Leader clock, ms since the epoch. */
  readonly createdAt: number;
  readonly updatedAt: number;
  /** The new replica's last log index, as the partition's leader last saw it. */
  readonly caughtUp: number;
  /** The partition leader's last log index at that moment. */
  readonly target: number;
  /** Why a job was cancelled. */
  readonly note?: string;
}

/** One partition as ADMIN_SHARDS reports it. */
export interface ShardView {
  readonly partition: number;
  /** Replicas in the map (sorted). */
  readonly replicas: readonly string[];
  /** The replica the map prefers as leader. */
  readonly preferredLeader: string;
  /** The leader now (null: none known, or no replica answered). */
  readonly leader: string | null;
  /** The partition group's voters and learners, as its leader reports them. */
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** Entries each replica lags its leader (from the leader's view). */
  readonly lag: Readonly<Record<string, number>>;
  /** `ok`; `moving` (a job runs); `under-replicated` (fewer live voters than the factor); `no-leader`. */
  readonly state: "ok" | "moving" | "under-replicated" | "no-leader";
  /**
   * The cache partition of the same number, placed and moved with this one (its leader is the
   * home of its keys), as its leader reports it; null when the cluster's cache stays on its
   * founding nodes, or no replica of it answered.
   */
  readonly cache: { readonly leader: string | null; readonly voters: readonly string[]; readonly learners: readonly string[] } | null;
}

/** ADMIN_SHARDS' reply. */
export interface AdminShardsReply {
  /** Bumped by every change of the map. */
  readonly version: number;
  readonly replicationFactor: number;
  readonly nodes: readonly (ShardNode & { readonly replicas: number; readonly leaders: number; readonly reachable: boolean })[];
  readonly partitions: readonly ShardView[];
  /** Running and queued jobs first, then the latest finished ones. */
  readonly jobs: readonly MoveJob[];
}

/** ADMIN_REBALANCE's reply: the moves planned (dry run) or queued as jobs. */
export interface AdminRebalanceReply {
  readonly dryRun: boolean;
  readonly moves: readonly { readonly partition: number; readonly from: string | null; readonly to: string }[];
  readonly jobs: readonly MoveJob[];
}

/**
 * ADMIN_REMOVE_NODE's reply. A node holding replicas is marked leaving and leaves the cluster
 * once the jobs moving them are done (`removed: false`); one holding none leaves at once.
 */
export interface AdminRemoveReply {
  readonly nodeId: string;
  readonly removed: boolean;
  readonly jobs: readonly MoveJob[];
  /** Group 0's membership when the reply was sent. */
  readonly conf: { readonly voters: readonly string[]; readonly learners: readonly string[] };
}
