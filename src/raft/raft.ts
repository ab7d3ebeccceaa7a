import { assert } from "./assert.ts";
import { applyToConfState, confChangeError, encodeConfChange } from "./conf-change.ts";
import type { ResolvedConfig } from "./config.ts";
import { FollowerReplication } from "./follower-replication.ts";
import { RaftLog } from "./log.ts";
import { CAMPAIGN_TRANSFER_CONTEXT, makeMessage, type MessageInit } from "./message.ts";
import { progressOf, reconcileProgress, type Progress } from "./progress.ts";
import { QUIESCE_CONTEXT, QUIET_AFTER_ROUNDS, membersLive, quiescable, type PeerLiveness } from "./quiescence.ts";
import { voteResult } from "./quorum.ts";
import { LeaderReads } from "./read-index.ts";
import { Replication } from "./replication.ts";
import { SnapshotSending } from "./snapshot-sending.ts";
import {
  ConfChangeType,
  EntryType,
  MessageType,
  Role,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type SoftState,
} from "./types.ts";

type State = "follower" | "pre-candidate" | "candidate" | "leader";

/** Why a proposal was refused; `leader` is a redirect hint (null when unknown or transferring). */
export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; leader: NodeId | null; reason?: "not-leader" | "transferring" | "conf-change-pending" | "invalid-conf-change" };

/**
 * The Raft protocol state machine of one node in one group (etcd's `raft` struct). Pure: output
 * goes to `msgs` and `readStates` and to the log's unstable part; {@link RawNode} packages it.
 */
export class Raft {
  readonly id: NodeId;
  readonly cfg: ResolvedConfig;
  readonly log: RaftLog;
  term = 0;
  vote: NodeId | null = null;
  lead: NodeId | null = null;
  state: State = "follower";
  conf: ConfState;
  /** Replication progress of every member (meaningful on the leader only). */
  prs = new Map<NodeId, Progress>();
  /** Messages to send once the Ready carrying them is persisted. */
  msgs: Message[] = [];
  readStates: ReadState[] = [];

  #votes = new Map<NodeId, boolean>();
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTimeout = 0;
  /** Quiet (see quiescence.ts): as leader, no heartbeats; as follower, no election timer. */
  #quiet = false;
  /** Leader: heartbeat rounds in a row in which it could have gone quiet. */
  #quietRounds = 0;
  /** The host's view of peer liveness, from the last tick (none: never quiet). */
  #live: PeerLiveness | undefined;
  leadTransferee: NodeId | null = null;
  /** The last term in which this node, as leader, started a leadership transfer (0: never). */
  #transferTerm = 0;
  /**
   * Ticks since this node started, up to an election timeout. Until then it grants no vote that
   * is not forced: it may have acknowledged a leader just before it restarted, and that leader's
   * lease counts on it (see RaftGroup's lease reads).
   */
  #sinceStart = 0;
  /** Index of the latest ConfChange entry that may not be applied yet; a new one waits for it. */
  #pendingConfIndex = 0;
  // Each side of replication lives in helpers that hold its own state (each file says why).
  readonly #follower: FollowerReplication;
  readonly #snapshots: SnapshotSending;
  readonly #reads: LeaderReads;
  readonly #replication: Replication;

  constructor(cfg: ResolvedConfig) {
    this.id = cfg.id;
    this.cfg = cfg;
    this.log = new RaftLog(cfg.storage);
    const send = (init: MessageInit & { to: NodeId }) => this.#send(init);
    this.#follower = new FollowerReplication(this, send);
    this.#snapshots = new SnapshotSending(cfg.snapshotChunkBytes, () => this.log.snapshot(), send);
    this.#reads = new LeaderReads(this, send, (context) => this.#replication.bcastHeartbeat(context));
    this.#replication = new Replication(this, send, this.#snapshots, this.#reads);
    const { hardState, confState } = cfg.storage.initialState();
    this.conf = { voters: [...confState.voters], learners: [...confState.learners] };
    this.term = hardState.term;
    this.vote = hardState.vote;
    // Invariant: the persisted commit index lies within the persisted log.
    assert(hardState.commit <= this.log.lastIndex(), `restart: commit ${hardState.commit} beyond last index ${this.log.lastIndex()}`);
    this.log.commitTo(hardState.commit);
    if (cfg.applied > 0) this.log.appliedTo(Math.min(cfg.applied, this.log.committed));
    this.becomeFollower(this.term, null);
  }

  // ---- Views -------------------------------------------------------------------------------

  isVoter(id: NodeId = this.id): boolean {
    return this.conf.voters.includes(id);
  }

  role(): Role {
    switch (this.state) {
      case "leader":
        return Role.Leader;
      case "candidate":
        return Role.Candidate;
      case "pre-candidate":
        return Role.PreCandidate;
      case "follower":
        return this.isVoter() ? Role.Follower : Role.Learner;
    }
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.role() };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** A node may campaign only as a voter without a pending snapshot to install. */
  #promotable(): boolean {
    return this.isVoter() && this.log.unstable.snapshot === undefined;
  }

  get quiesced(): boolean {
    return this.#quiet;
  }

  /**
   * Whether this leader started a leadership transfer in its current term. Its TimeoutNow makes
   * the target campaign past the other members' leader lease, and may still be on its way after
   * the transfer was abandoned: for the rest of the term, leadership is only proven by a round.
   */
  get transferredThisTerm(): boolean {
    return this.#transferTerm === this.term;
  }

  // ---- Role transitions --------------------------------------------------------------------

  #reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#quiet = false;
    this.#quietRounds = 0;
    this.#resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.#votes.clear();
    this.#pendingConfIndex = 0;
    this.#reads.reset();
    this.#snapshots.clear();
    this.#resetProgress();
  }

  #resetProgress(): void {
    this.prs = progressOf(this.conf, this.log.lastIndex() + 1, this.cfg.maxInflightMsgs);
  }

  #resetRandomizedElectionTimeout(): void {
    // Drawn from [electionTicks, 2 * electionTicks): the spread breaks split votes.
    this.#randomizedElectionTimeout = this.cfg.electionTicks + this.cfg.rng.nextInt(this.cfg.electionTicks);
  }

  becomeFollower(term: number, lead: NodeId | null): void {
    this.#reset(term);
    this.lead = lead;
    this.state = "follower";
  }

  #becomePreCandidate(): void {
    assert(this.state !== "leader", "transition leader -> pre-candidate");
    // Neither term nor vote change: a pre-election must not disrupt anyone if it fails.
    this.#votes.clear();
    this.lead = null;
    this.state = "pre-candidate";
    this.#resetRandomizedElectionTimeout();
  }

  #becomeCandidate(): void {
    assert(this.state !== "leader", "transition leader -> candidate");
    this.#reset(this.term + 1);
    this.vote = this.id;
    this.state = "candidate";
  }

  #becomeLeader(): void {
    assert(this.state === "candidate", `transition ${this.state} -> leader`);
    this.#reset(this.term);
    this.lead = this.id;
    this.state = "leader";
    for (const pr of this.prs.values()) pr.recentActive = true;
    // The leader's own progress is always in sync; its match grows as its entries become durable.
    this.prs.get(this.id)?.becomeReplicate();
    // Any ConfChange in the log may be unapplied; the next one must wait until it is.
    this.#pendingConfIndex = this.log.lastIndex();
    // The no-op lets the leader commit (and so learn the commit index of) earlier terms' entries.
    this.#appendEntry(EntryType.Normal, new Uint8Array(0));
  }

  // ---- Inputs ------------------------------------------------------------------------------

  /**
   * One tick. `beat`, when given, is the host's tick count: a leader then heartbeats on the
   * host's ticks that are multiples of heartbeatTicks (not counted from when it became leader),
   * so every group a node leads heartbeats in the same tick and a host sends each peer one batch
   * per interval instead of one per group.
   * `live`, when given, is the host's view of which peer nodes are live: the group may then go
   * quiet when idle (see quiescence.ts). Without it (the simulator's ticks) it never does.
   * Returns false when the tick could not have produced work (a quiet group staying quiet).
   */
  tick(beat?: number, live?: PeerLiveness): boolean {
    this.#live = live;
    if (this.#sinceStart < this.cfg.electionTicks) this.#sinceStart++;
    if (this.state === "leader") {
      if (beat !== undefined) this.#heartbeatElapsed = beat % this.cfg.heartbeatTicks;
      if (this.#quiet) {
        // Quiet while every member's node is live; otherwise heartbeat again, so CheckQuorum judges.
        if (live !== undefined && membersLive(this.prs, this.id, live)) return false;
        this.#wakeLeader();
      }
      this.#tickHeartbeat();
      return true;
    }
    if (this.#quiet) {
      if (live !== undefined && this.lead !== null && live(this.lead)) return false;
      // The leader's node went silent: behave as if its heartbeats had stopped an election timeout
      // ago (out of its lease, so pre-votes are granted; campaign within the randomized timeout).
      this.#quiet = false;
      this.#electionElapsed = this.cfg.electionTicks;
    }
    this.#tickElection();
    return true;
  }

  /** A quiet leader resumes heartbeats and CheckQuorum, counting as active the peers whose node is live. */
  #wakeLeader(): void {
    if (!this.#quiet) return;
    this.#quiet = false;
    this.#quietRounds = 0;
    this.#electionElapsed = 0;
    for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = this.#live?.(id) ?? false;
  }

  /** Whether, at this heartbeat, the leader goes quiet (it has had nothing to do for a while). */
  #goQuiet(): boolean {
    const live = this.#live;
    const can =
      live !== undefined &&
      quiescable(
        {
          id: this.id,
          lastIndex: this.log.lastIndex(),
          committed: this.log.committed,
          committedInTerm: this.log.term(this.log.committed) === this.term,
          prs: this.prs,
          idle: this.#reads.idle && this.leadTransferee === null && this.#pendingConfIndex <= this.log.applied,
        },
        live,
      );
    this.#quietRounds = can ? this.#quietRounds + 1 : 0;
    if (this.#quietRounds < QUIET_AFTER_ROUNDS) return false;
    this.#quiet = true;
    this.#replication.bcastHeartbeat(QUIESCE_CONTEXT);
    return true;
  }

  #tickElection(): void {
    this.#electionElapsed++;
    if (this.#promotable() && this.#electionElapsed >= this.#randomizedElectionTimeout) {
      this.#electionElapsed = 0;
      this.#hup(false);
    }
  }

  #tickHeartbeat(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.cfg.electionTicks) {
      this.#electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.#replication.quorumActive()) {
        this.becomeFollower(this.term, null);
        return;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.leadTransferee !== null) this.leadTransferee = null;
    }
    if (this.#heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      if (this.#goQuiet()) return;
      this.#replication.bcastHeartbeat(this.#reads.lastPendingKey());
      this.#snapshots.tick(this.prs);
    }
  }

  step(m: Message): void {
    assert(m.group === this.cfg.group, `step: message of group ${m.group} delivered to group ${this.cfg.group}`);
    assert(m.to === this.id, `step: message to ${m.to} delivered to ${this.id}`);
    if (m.term === 0) {
      // Local message (Hup, or a ReadIndex/TransferLeader forwarded by a follower).
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context === CAMPAIGN_TRANSFER_CONTEXT;
        if (this.#quiet && m.from === this.lead) {
          // Our leader campaigns: it no longer leads (its node restarted), though its node is live.
          this.#quiet = false;
          this.#electionElapsed = this.cfg.electionTicks;
        }
        const inLease = this.cfg.checkQuorum && ((this.lead !== null && this.#electionElapsed < this.cfg.electionTicks) || (this.cfg.holdVotesAtStart && this.#sinceStart < this.cfg.electionTicks));
        // Leader lease: while we hear from a live leader, a (pre)candidate is ignored, so a node
        // that rejoins from a partition cannot depose a healthy leader. A quiet leader that gets one
        // wakes: some member is not quiet (e.g. it restarted) and needs its heartbeats.
        if (!force && inLease) {
          if (this.state === "leader") this.#wakeLeader();
          return;
        }
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote never changes our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // Granted pre-votes carry the future term; we bump it ourselves once we win the pre-election.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.App || m.type === MessageType.Heartbeat)) {
        // A stale leader (e.g. after a partition) learns our term from this and steps down;
        // without it, pre-vote/lease could leave it and the cluster stuck.
        this.#send({ to: m.from, type: MessageType.AppResp });
      } else if (m.type === MessageType.PreVote) {
        this.#send({ to: m.from, type: MessageType.PreVoteResp, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.#hup(false);
        return;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.#handleVoteRequest(m);
        return;
    }
    switch (this.state) {
      case "leader":
        this.#stepLeader(m);
        return;
      case "candidate":
      case "pre-candidate":
        this.#stepCandidate(m);
        return;
      case "follower":
        this.#stepFollower(m);
        return;
    }
  }

  // ---- Elections ---------------------------------------------------------------------------

  #hup(transfer: boolean): void {
    if (this.state === "leader") return;
    if (!this.#promotable()) return;
    // A pending membership change could change who the voters are: wait until it is applied.
    if (this.log.hasUnappliedConfChanges()) return;
    if (this.cfg.preVote && !transfer) this.#campaign("pre-election", false);
    else this.#campaign("election", transfer);
  }

  #campaign(kind: "pre-election" | "election", transfer: boolean): void {
    let type: MessageType;
    let voteTerm: number;
    if (kind === "pre-election") {
      this.#becomePreCandidate();
      type = MessageType.PreVote;
      // Ask with the term we would use, without adopting it yet.
      voteTerm = this.term + 1;
    } else {
      this.#becomeCandidate();
      type = MessageType.Vote;
      voteTerm = this.term;
    }
    // Our own vote is durable before any Vote is sent: the Ready persists hardState first.
    this.#votes.set(this.id, true);
    if (voteResult(this.conf.voters, this.#votes) === "won") {
      // Single-voter group.
      if (kind === "pre-election") this.#campaign("election", false);
      else this.#becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const voter of this.conf.voters) {
      if (voter === this.id) continue;
      this.#send({
        to: voter,
        type,
        term: voteTerm,
        index: lastIndex,
        logTerm: lastTerm,
        ...(transfer ? { context: CAMPAIGN_TRANSFER_CONTEXT } : {}),
      });
    }
  }

  #handleVoteRequest(m: Message): void {
    const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.lead === null) ||
      (m.type === MessageType.PreVote && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // Reply with the request's term: a granted pre-vote is for a term we have not adopted.
      this.#send({ to: m.from, type: respType, term: m.term });
      if (m.type === MessageType.Vote) {
        this.#electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.#send({ to: m.from, type: respType, term: this.term, reject: true });
    }
  }

  #stepCandidate(m: Message): void {
    const myRespType = this.state === "pre-candidate" ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.#follower.onAppend(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.#stepFollower(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.#follower.onSnap(m);
        return;
      case myRespType: {
        if (!this.#votes.has(m.from)) this.#votes.set(m.from, !m.reject);
        const res = voteResult(this.conf.voters, this.#votes);
        if (res === "won") {
          if (this.state === "pre-candidate") {
            this.#campaign("election", false);
          } else {
            this.#becomeLeader();
            this.#replication.bcastAppend();
          }
        } else if (res === "lost") {
          this.becomeFollower(this.term, null);
        }
        return;
      }
      default:
        // Proposals, reads and transfers have no leader to go to; TimeoutNow is stale.
        return;
    }
  }

  // ---- Follower ----------------------------------------------------------------------------

  #stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.#electionElapsed = 0;
        this.#quiet = false;
        this.lead = m.from;
        this.#follower.onAppend(m);
        return;
      case MessageType.Heartbeat:
        this.#electionElapsed = 0;
        this.lead = m.from;
        this.#follower.onHeartbeat(m);
        // Quiet only holding exactly the leader's whole log, all of it committed.
        this.#quiet = m.context === QUIESCE_CONTEXT && m.commit === this.log.lastIndex() && this.log.committed === m.commit;
        return;
      case MessageType.Snap:
        this.#electionElapsed = 0;
        this.#quiet = false;
        this.lead = m.from;
        this.#follower.onSnap(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === null) return;
        this.#send({ to: this.lead, type: MessageType.TransferLeader, term: 0, context: m.context ?? m.from });
        return;
      case MessageType.TimeoutNow:
        // The leader chose us: campaign at once, skipping pre-vote and overriding the lease.
        this.#hup(true);
        return;
      case MessageType.ReadIndex:
        // Forward only our own requests: the answer goes to the sender, so relaying someone
        // else's request (it thought we lead) would deliver the answer to the wrong node.
        if (this.lead === null || m.from !== this.id) return;
        this.#send({ to: this.lead, type: MessageType.ReadIndex, term: 0, context: m.context ?? "" });
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context ?? "" });
        return;
      default:
        return;
    }
  }

  // ---- Leader ------------------------------------------------------------------------------

  #stepLeader(m: Message): void {
    // Anything but the answer to a heartbeat is work (or news of a member that is not quiet).
    if (m.type !== MessageType.HeartbeatResp) this.#wakeLeader();
    switch (m.type) {
      case MessageType.ReadIndex:
        this.#reads.request(m);
        return;
      case MessageType.TransferLeader:
        this.#handleTransferLeader(m.context ?? m.from);
        return;
      default:
        this.#replication.onResponse(m);
        return;
    }
  }

  #handleTransferLeader(target: NodeId): void {
    const pr = this.prs.get(target);
    if (!pr || pr.isLearner) return;
    if (this.leadTransferee !== null) {
      if (this.leadTransferee === target) return;
      this.leadTransferee = null;
    }
    if (target === this.id) return;
    // The transfer must finish within one election timeout, measured from now.
    this.#electionElapsed = 0;
    this.leadTransferee = target;
    this.#transferTerm = this.term;
    if (pr.match === this.log.lastIndex()) this.#send({ to: target, type: MessageType.TimeoutNow });
    else this.#replication.sendAppend(target, true);
  }

  #appendEntry(type: EntryType, data: Uint8Array): Entry {
    const e: Entry = { term: this.term, index: this.log.lastIndex() + 1, type, data };
    this.log.append([e]);
    return e;
  }

  // ---- API used by RawNode -----------------------------------------------------------------

  propose(type: EntryType, data: Uint8Array): ProposeResult {
    return this.proposeBatch(type, [data])[0]!;
  }

  /**
   * Appends every payload as one entry, in order, then sends one append per follower for the
   * whole batch (not one per entry): under load this is what keeps messages, acks and fsyncs
   * per proposal low.
   */
  proposeBatch(type: EntryType, datas: readonly Uint8Array[]): ProposeResult[] {
    if (this.state !== "leader") return datas.map(() => ({ ok: false, leader: this.lead, reason: "not-leader" }));
    // During a transfer, new entries would only delay the target catching up.
    if (this.leadTransferee !== null) return datas.map(() => ({ ok: false, leader: null, reason: "transferring" }));
    this.#wakeLeader();
    const out: ProposeResult[] = datas.map((data) => {
      const e = this.#appendEntry(type, data);
      return { ok: true, index: e.index, term: e.term };
    });
    if (out.length > 0) this.#replication.bcastAppend();
    return out;
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    if (this.state !== "leader") return { ok: false, leader: this.lead, reason: "not-leader" };
    if (this.#pendingConfIndex > this.log.applied) return { ok: false, leader: this.id, reason: "conf-change-pending" };
    if (confChangeError(this.conf, cc) !== null) return { ok: false, leader: this.id, reason: "invalid-conf-change" };
    const r = this.propose(EntryType.ConfChange, encodeConfChange(cc));
    if (r.ok) this.#pendingConfIndex = r.index;
    return r;
  }

  /** Applies a committed ConfChange entry. An invalid change is skipped identically on every node. */
  applyConfChange(cc: ConfChange): ConfState {
    if (confChangeError(this.conf, cc) !== null) return this.conf;
    this.conf = applyToConfState(this.conf, cc);
    const { added, removed } = reconcileProgress(this.prs, this.conf, this.log.lastIndex() + 1, this.cfg.maxInflightMsgs);
    for (const id of removed) this.#snapshots.stop(id);
    if (this.state !== "leader") return this.conf;
    if (!this.isVoter()) {
      // A leader removed (or demoted) by this change steps down; the remaining voters elect one.
      this.becomeFollower(this.term, null);
      return this.conf;
    }
    if (this.leadTransferee !== null && !this.isVoter(this.leadTransferee)) this.leadTransferee = null;
    // The quorum changed: a removal may let entries commit now.
    this.#replication.maybeCommit();
    for (const id of added) this.#replication.sendAppend(id, true);
    if (cc.type === ConfChangeType.AddVoter) this.#replication.sendAppend(cc.node, true);
    return this.conf;
  }

  /** Entries up to `(index, term)` are durable locally; the leader counts itself for them. */
  onPersisted(index: number, term: number): void {
    this.log.unstable.stableTo(index, term);
    if (this.state !== "leader" || this.log.term(index) !== term) return;
    const self = this.prs.get(this.id);
    if (self && self.maybeUpdate(index)) this.#replication.maybeCommit();
  }

  reportUnreachable(to: NodeId): void {
    if (this.state === "leader") this.#replication.reportUnreachable(to);
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    if (this.state === "leader") this.#replication.reportSnapshot(to, ok);
  }

  /** Queues an outgoing message stamped with our group, id and (unless given) term. */
  #send(init: MessageInit & { to: NodeId }): void {
    const m = makeMessage({ ...init, group: this.cfg.group, from: this.id, term: init.term ?? this.term });
    // Invariant: only forwarded local requests travel with term 0, and pre-vote rejections from a
    // node that has never seen a term (they are harmless if taken as local: a rejection either way).
    assert(
      m.term > 0 || m.type === MessageType.ReadIndex || m.type === MessageType.TransferLeader || (m.type === MessageType.PreVoteResp && m.reject),
      `send: message type ${m.type} without a term`,
    );
    this.msgs.push(m);
  }
}
