import { everyOnGrid } from "../../host/grid.ts";
import { ConfChangeType, inConf } from "../../raft/index.ts";
import type { Logger } from "../../host/logger.ts";
import type { Proposer } from "../../host/proposer.ts";
import type { RaftGroup } from "../../host/raft-group.ts";
import type { MoveJob, ShardMap } from "../cluster/machine/shard-map.ts";
import type { QueuePartitions } from "./partitions.ts";

/**
 * How often each node looks for a move it should take a step in: it divides the default idle beat
 * (500 ms), so on an idle node every other look shares the beat's wake-up (see src/host/grid.ts).
 */
const STEP_EVERY_MS = 250;
/** Entries a learner may lag its leader and still be promoted. */
const PROMOTE_LAG_MAX = 10;
/** Progress of a catch-up is written to group 0 at most this often. */
const PROGRESS_EVERY_MS = 1000;
/** Time one membership change may take. */
const CHANGE_TIMEOUT_MS = 10_000;

/**
 * Runs replica moves (group 0's jobs), one step at a time, on the node that leads the partition
 * being moved. Each step is chosen from the partition group's actual membership, not from what
 * the job last recorded, so a step repeated after a crash or a leadership change is harmless and
 * a job resumes wherever its partition is next led:
 *
 *   new replica absent → add it as a learner; a learner that lags → wait, reporting progress;
 *   a caught-up learner → promote it; the old replica still there → hand leadership away if this
 *   node is the old replica, else remove it; neither → the job is done (group 0's map follows).
 *
 * The partition gains its new voter before it loses the old one, so it never has fewer
 * replicas than before the move; each change is one Raft membership change at a time.
 *
 * A partition may be more than one group: the queue partition and, when the cache follows the
 * shard map, the cache partition of the same number. Each group is stepped by its own leader's
 * driver; the queue group's leader reports progress and marks the job done once every group of
 * the partition has its new replica and has dropped the old one (as this node's replicas see it).
 */
export class MoveDriver {
  #stop: (() => void) | null = null;
  #busy = false;
  readonly #lastProgress = new Map<number, number>();

  constructor(
    readonly partitions: QueuePartitions,
    readonly proposer: Proposer,
    readonly nodeId: string,
    readonly log: Logger,
    /** A new replica caught up on this many entries and is being promoted. */
    readonly onCaughtUp: (entries: number) => void = () => {},
    /** This node's replica of the other groups that move with partition p (the cache partition). */
    readonly companionsOf: (p: number) => readonly RaftGroup[] | null = () => [],
  ) {}

  start(): void {
    this.#stop = everyOnGrid(STEP_EVERY_MS, () => void this.#tick());
  }

  stop(): void {
    this.#stop?.();
  }

  async #tick(): Promise<void> {
    const shards = this.partitions.shards;
    if (this.#busy || shards === null) return;
    this.#busy = true;
    try {
      for (const job of shards.runningJobs()) {
        const queue = this.partitions.get(job.partition)?.group;
        // null: a companion group that should be here is not open yet; nothing is final then.
        const companions = this.companionsOf(job.partition);
        for (const g of [queue, ...(companions ?? [])]) {
          if (!g?.isLeader) continue;
          try {
            await this.#advance(shards, job, g, g === queue);
          } catch (err) {
            this.log.warn({ job: job.id, partition: job.partition, group: g.group, err: (err as Error).message }, "a replica move step failed; it is tried again");
          }
        }
        if (!queue?.isLeader) continue;
        try {
          await this.#finish(shards, job, [queue, ...(companions ?? [])], companions !== null);
        } catch (err) {
          this.log.warn({ job: job.id, partition: job.partition, err: (err as Error).message }, "could not record a replica move's end; it is tried again");
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Takes group `g` (led here) one step further; `reports`: this group's steps are the job's recorded progress. */
  async #advance(shards: ShardMap, job: MoveJob, g: RaftGroup, reports: boolean): Promise<void> {
    const s = g.status();
    const member = (id: string): boolean => inConf(s.conf, id);
    const step = (cmd: Record<string, unknown>): Promise<unknown> => (reports ? this.#group0({ ...cmd, id: job.id }) : Promise.resolve());
    if (shards.node(job.to)?.state !== "active") {
      // The new replica's node is leaving too: undo what the move added (the job is then cancelled).
      if (member(job.to) && !(shards.partition(job.partition)?.replicas ?? []).includes(job.to)) {
        await g.proposeConfChange({ type: ConfChangeType.RemoveNode, node: job.to }, CHANGE_TIMEOUT_MS);
      }
      return;
    }
    if (!member(job.to)) {
      this.log.info({ job: job.id, partition: job.partition, group: g.group, to: job.to }, "replica move: adding the new replica as a learner");
      await g.proposeConfChange({ type: ConfChangeType.AddLearner, node: job.to }, CHANGE_TIMEOUT_MS);
      await step({ op: "job.step", step: "catching-up", caughtUp: 0, target: g.status().lastIndex });
      return;
    }
    if (s.conf.learners.includes(job.to)) {
      const match = s.progress?.[job.to]?.match ?? 0;
      if (s.lastIndex - match > PROMOTE_LAG_MAX) {
        const now = Date.now();
        if (reports && now - (this.#lastProgress.get(job.id) ?? 0) >= PROGRESS_EVERY_MS && match !== job.caughtUp) {
          this.#lastProgress.set(job.id, now);
          await step({ op: "job.step", step: "catching-up", caughtUp: match, target: s.lastIndex });
        }
        return;
      }
      this.log.info({ job: job.id, partition: job.partition, group: g.group, to: job.to, match, last: s.lastIndex }, "replica move: promoting the caught-up learner");
      if (reports) this.onCaughtUp(match);
      await step({ op: "job.step", step: "promoting", caughtUp: match, target: s.lastIndex });
      await g.proposeConfChange({ type: ConfChangeType.AddVoter, node: job.to }, CHANGE_TIMEOUT_MS);
      return;
    }
    if (job.from !== null && member(job.from)) {
      if (job.from === this.nodeId) {
        // The old replica leads: hand the group to the new one, which carries on.
        const to = g.mostCaughtUpVoter((id) => id !== job.from && this.partitions.o.peers.isConnected(id));
        if (to !== undefined) g.transferLeader(to);
        return;
      }
      this.log.info({ job: job.id, partition: job.partition, group: g.group, from: job.from }, "replica move: removing the old replica");
      await step({ op: "job.step", step: "removing", caughtUp: job.target, target: job.target });
      await g.proposeConfChange({ type: ConfChangeType.RemoveNode, node: job.from }, CHANGE_TIMEOUT_MS);
    }
  }

  /**
   * Ends the job once every group of the partition is where it should be: cancelled once no
   * group holds the leaving target any more, done once each has the new voter and not the old
   * replica. `complete`: every companion group is open here (else this node cannot judge yet).
   */
  async #finish(shards: ShardMap, job: MoveJob, groups: readonly RaftGroup[], complete: boolean): Promise<void> {
    if (!complete) return;
    const confs = groups.map((g) => g.status().conf);
    if (shards.node(job.to)?.state !== "active") {
      const undone = (shards.partition(job.partition)?.replicas ?? []).includes(job.to) || confs.every((c) => !inConf(c, job.to));
      if (undone) await this.#group0({ op: "job.cancel", id: job.id, note: `${job.to} is no longer an active node` });
      return;
    }
    if (!confs.every((c) => c.voters.includes(job.to) && (job.from === null || !inConf(c, job.from)))) return;
    this.log.info({ job: job.id, partition: job.partition, from: job.from, to: job.to, groups: groups.map((g) => g.group) }, "replica move done");
    this.#lastProgress.delete(job.id);
    await this.#group0({ op: "job.done", id: job.id });
  }

  #group0(cmd: Record<string, unknown>): Promise<unknown> {
    return this.proposer.proposeStamped(0, cmd);
  }
}
