import { everyOnGrid } from "../../host/grid.ts";
import { Op } from "../../../protocol/index.ts";
import { ConfChangeType, inConf } from "../../raft/index.ts";
import type { Logger } from "../../host/logger.ts";
import type { Proposer } from "../../host/proposer.ts";
import type { RaftGroup } from "../../host/raft-group.ts";
import type { PeerLinks } from "../../transport/peer-links.ts";
import type { ClusterMachine } from "./machine/cluster-machine.ts";
import { group0VoterTarget } from "./machine/voter-target.ts";

/** How often group 0's leader looks after the cluster's nodes. */
const CHECK_EVERY_MS = 1000;
/** Group 0 leaderless this long: this node asks the others whether it is still a member. */
const MEMBER_CHECK_AFTER_MS = 5000;
const MEMBER_CHECK_TIMEOUT_MS = 2000;
/** Entries a group-0 learner may lag and still be promoted. */
const PROMOTE_LAG_MAX = 10;
const CHANGE_TIMEOUT_MS = 10_000;

export interface NodeLifecycleOptions {
  readonly nodeId: string;
  readonly zone: string | null;
  readonly group0: RaftGroup;
  readonly machine: ClusterMachine;
  readonly proposer: Proposer;
  readonly peers: PeerLinks;
  readonly log: Logger;
  /** A node unreachable this long has its replicas re-created elsewhere; 0 = never. */
  readonly replaceDeadAfterMs: number;
  /** This node is leaving and holds no replica any more: it stops serving clients. */
  readonly onLeft: () => void;
  /** This node was removed from the cluster while it was down (another member said so). */
  readonly onRemoved: (by: string) => void;
}

/** MEMBER_CHECK's reply. */
export interface MemberCheckReply {
  readonly member: boolean;
  /** The answering node's group-0 applied index: the answer is about that point of the log. */
  readonly applied: number;
}

/**
 * The cluster's node bookkeeping, done by group 0's leader: a node that is unreachable past the
 * replace time is marked leaving (its replicas are re-created elsewhere), a leaving node that
 * holds nothing more leaves group 0 and the map, and group 0 keeps 3 or 5 voters by promoting
 * caught-up learners. Every node also records its own zone in the map, and stops serving clients
 * once it is leaving and holds nothing.
 */
export class NodeLifecycle {
  #stop: (() => void) | null = null;
  #busy = false;
  /** When each node was last seen connected (from this node, while it led group 0). */
  readonly #seen = new Map<string, number>();
  #leaderSince: number | null = null;
  #leaderlessSince: number | null = null;
  #removed = false;

  constructor(readonly o: NodeLifecycleOptions) {}

  /** Answers another node's MEMBER_CHECK from this node's group 0. */
  memberCheck(id: string): MemberCheckReply {
    const s = this.o.group0.status();
    return { member: inConf(s.conf, id), applied: this.o.group0.applied };
  }

  start(): void {
    this.#stop = everyOnGrid(CHECK_EVERY_MS, () => void this.#tick());
  }

  stop(): void {
    this.#stop?.();
  }

  async #tick(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      await this.#recordZone();
      this.#checkLeft();
      await this.#checkRemoved();
      if (!this.o.group0.isLeader) {
        this.#leaderSince = null;
        return;
      }
      this.#leaderSince ??= Date.now();
      await this.#replaceDead();
      // Voters first: a leaving voter's replacement is promoted before it is removed.
      await this.#keepVoters();
      await this.#forgetLeft();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, "node bookkeeping failed; it is tried again");
    } finally {
      this.#busy = false;
    }
  }

  async #recordZone(): Promise<void> {
    const me = this.o.machine.shards?.node(this.o.nodeId);
    if (me?.state !== "active" || (me.zone ?? null) === this.o.zone) return;
    await this.o.proposer.proposeStamped(0, { op: "shards.node", id: this.o.nodeId, ...(this.o.zone !== null && { zone: this.o.zone }) });
  }

  #left = false;

  /**
   * Decided here, from this node's own map, rather than when it applies its removal from group 0:
   * a removed node may never hear that its removal committed.
   */
  #checkLeft(): void {
    const shards = this.o.machine.shards;
    const me = shards?.node(this.o.nodeId);
    if (this.#left || shards === null || me?.state !== "leaving" || shards.partitionsOn(this.o.nodeId).length > 0) return;
    if (shards.activeJobs().some((j) => j.from === this.o.nodeId || j.to === this.o.nodeId)) return;
    this.#left = true;
    this.o.log.warn("this node holds no replica any more and is leaving the cluster: it serves no more clients; stop it");
    this.o.onLeft();
  }

  /**
   * A node removed while it was down comes back with its old group 0, in which it is still a
   * member: it would wait for a leader forever (nobody sends it anything). So when group 0 has
   * had no leader for a while here, this node asks the members it knows. A "not a member" from a
   * node whose group 0 applied more of the log than this one did is final: this node was removed
   * at some point in between (had it been added again, it would be a member).
   */
  async #checkRemoved(): Promise<void> {
    const g = this.o.group0;
    const s = g.status();
    const self = this.o.nodeId;
    if (this.#removed || s.leader !== null || !inConf(s.conf, self)) {
      this.#leaderlessSince = null;
      return;
    }
    const now = Date.now();
    this.#leaderlessSince ??= now;
    if (now - this.#leaderlessSince < MEMBER_CHECK_AFTER_MS) return;
    // Every node this one links with: the founders (from its configuration) and those added since.
    for (const { id } of this.o.peers.status()) {
      if (id === self) continue;
      if (!this.o.peers.isConnected(id)) {
        this.o.peers.connect(id);
        continue;
      }
      const r = (await this.o.peers.request(id, Op.MEMBER_CHECK, { id: self }, MEMBER_CHECK_TIMEOUT_MS).catch(() => null)) as Partial<MemberCheckReply> | null;
      if (r?.member === false && typeof r.applied === "number" && r.applied > g.applied) {
        this.#removed = true;
        this.o.log.error({ by: id, theirApplied: r.applied, ourApplied: g.applied }, "this node was removed from the cluster while it was down: it serves no clients. To bring it back, stop it, empty its DATA_DIR, start it with --join and add it again (dsync admin add-node)");
        this.o.onRemoved(id);
        return;
      }
    }
  }

  /** Unreachable, from this leader's view, for the whole replace time: its replicas go elsewhere. */
  async #replaceDead(): Promise<void> {
    const shards = this.o.machine.shards;
    const after = this.o.replaceDeadAfterMs;
    if (shards === null || after === 0) return;
    const now = Date.now();
    for (const n of shards.nodes()) {
      if (n.id === this.o.nodeId || this.o.peers.isConnected(n.id)) {
        this.#seen.set(n.id, now);
        continue;
      }
      const since = Math.max(this.#seen.get(n.id) ?? 0, this.#leaderSince ?? now);
      if (n.state !== "active" || now - since < after) continue;
      this.o.log.warn({ node: n.id, unreachableMs: now - since }, "node unreachable past the replace time: re-creating its replicas on other nodes");
      const r = (await this.o.proposer.proposeStamped(0, { op: "shards.leave", id: n.id, reason: "replace" })) as { error?: string } | null;
      if (r?.error) this.o.log.warn({ node: n.id, why: r.error }, "cannot replace the unreachable node's replicas yet");
      // Asked once per replace time, not every tick, when it cannot be done yet.
      this.#seen.set(n.id, now);
    }
  }

  /** A leaving node that holds no replica leaves group 0, then the map. */
  async #forgetLeft(): Promise<void> {
    const shards = this.o.machine.shards;
    if (shards === null) return;
    for (const n of shards.nodes()) {
      if (n.state !== "leaving" || shards.partitionsOn(n.id).length > 0 || shards.activeJobs().some((j) => j.from === n.id || j.to === n.id)) continue;
      const conf = this.o.group0.status().conf;
      if (inConf(conf, n.id)) {
        if (n.id === this.o.nodeId) {
          // Group 0's leader is the one leaving: another voter takes over and removes it.
          const to = this.o.group0.mostCaughtUpVoter((id) => this.o.peers.isConnected(id));
          if (to !== undefined) this.o.group0.transferLeader(to);
          return;
        }
        this.o.log.info({ node: n.id }, "the leaving node holds no replica any more: removing it from the cluster");
        await this.o.group0.proposeConfChange({ type: ConfChangeType.RemoveNode, node: n.id }, CHANGE_TIMEOUT_MS);
      }
      await this.o.proposer.proposeStamped(0, { op: "shards.forget", id: n.id });
    }
  }

  /** Promotes caught-up learners while group 0 has fewer voters than its target. */
  async #keepVoters(): Promise<void> {
    const conf = this.o.group0.status().conf;
    const shards = this.o.machine.shards;
    const leaving = new Set(shards?.nodes().filter((n) => n.state === "leaving").map((n) => n.id) ?? []);
    const members = [...conf.voters, ...conf.learners].filter((id) => !leaving.has(id)).length;
    if (conf.voters.filter((id) => !leaving.has(id)).length < group0VoterTarget(members)) await this.#promoteLearner(conf.voters.length);
  }

  /** Promotes the most caught-up reachable learner that is not leaving, if any. */
  async #promoteLearner(voters: number): Promise<void> {
    const s = this.o.group0.status();
    if (s.conf.voters.length !== voters) return;
    const leaving = new Set(this.o.machine.shards?.nodes().filter((n) => n.state === "leaving").map((n) => n.id) ?? []);
    const match = (id: string): number => s.progress?.[id]?.match ?? 0;
    const pick = s.conf.learners
      .filter((id) => !leaving.has(id) && this.o.peers.isConnected(id) && s.lastIndex - match(id) <= PROMOTE_LAG_MAX)
      .sort((a, b) => match(b) - match(a))[0];
    if (pick === undefined) return;
    this.o.log.info({ node: pick }, "promoting a group-0 learner to voter");
    await this.o.group0.proposeConfChange({ type: ConfChangeType.AddVoter, node: pick }, CHANGE_TIMEOUT_MS);
  }
}
