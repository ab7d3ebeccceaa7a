import { assert } from "./assert.ts";
import { applyToConfState, confChangeError, encodeConfChange } from "./conf-change.ts";
import type { ResolvedConfig } from "./config.ts";
import { RaftLog } from "./log.ts";
import { CAMPAIGN_TRANSFER_CONTEXT, makeMessage, type MessageInit } from "./message.ts";
import { Progress } from "./progress.ts";
import { committedIndex, hasQuorum, voteResult } from "./quorum.ts";
import { ReadOnly } from "./read-only.ts";
import { SNAPSHOT_RESTART_HEARTBEATS, SNAPSHOT_STALL_HEARTBEATS_MAX, SnapshotReceiver, SnapshotSender } from "./snapshot-transfer.ts";
import {
  CompactedError,
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
  type Snapshot,
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
  leadTransferee: NodeId | null = null;
  /** Index of the latest ConfChange entry that may not be applied yet; a new one waits for it. */
  #pendingConfIndex = 0;
  #readOnly = new ReadOnly();
  /** ReadIndex requests waiting for the leader to commit an entry of its own term. */
  #pendingReadIndex: Message[] = [];
  #snapSenders = new Map<NodeId, SnapshotSender>();
  /**
   * Id of the last snapshot transfer attempt started by this node. Never reset: together with the
   * term (a node leads a term at most once) it identifies an attempt for the receiver.
   */
  #snapAttempt = 0;
  #snapReceiver = new SnapshotReceiver();

  constructor(cfg: ResolvedConfig) {
    this.id = cfg.id;
    this.cfg = cfg;
    this.log = new RaftLog(cfg.storage);
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

  // ---- Role transitions --------------------------------------------------------------------

  #reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.#votes.clear();
    this.#pendingConfIndex = 0;
    this.#readOnly = new ReadOnly();
    this.#pendingReadIndex = [];
    this.#snapSenders.clear();
    this.#resetProgress();
  }

  #resetProgress(): void {
    const next = this.log.lastIndex() + 1;
    const prs = new Map<NodeId, Progress>();
    for (const id of this.conf.voters) prs.set(id, new Progress(next, this.cfg.maxInflightMsgs, false));
    for (const id of this.conf.learners) prs.set(id, new Progress(next, this.cfg.maxInflightMsgs, true));
    this.prs = prs;
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

  tick(): void {
    if (this.state === "leader") this.#tickHeartbeat();
    else this.#tickElection();
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
      if (this.cfg.checkQuorum && !this.#checkQuorumActive()) {
        this.becomeFollower(this.term, null);
        return;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.leadTransferee !== null) this.leadTransferee = null;
    }
    if (this.#heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#bcastHeartbeat(this.#readOnly.lastPendingKey());
      this.#tickSnapshotSenders();
    }
  }

  /** Whether a quorum of voters was heard from in the last election timeout; resets the marks. */
  #checkQuorumActive(): boolean {
    const active = new Set<NodeId>([this.id]);
    for (const [id, pr] of this.prs) {
      if (pr.recentActive) active.add(id);
      if (id !== this.id) pr.recentActive = false;
    }
    return hasQuorum(this.conf.voters, active);
  }

  step(m: Message): void {
    assert(m.group === this.cfg.group, `step: message of group ${m.group} delivered to group ${this.cfg.group}`);
    assert(m.to === this.id, `step: message to ${m.to} delivered to ${this.id}`);
    if (m.term === 0) {
      // Local message (Hup, or a ReadIndex/TransferLeader forwarded by a follower).
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context === CAMPAIGN_TRANSFER_CONTEXT;
        const inLease = this.cfg.checkQuorum && this.lead !== null && this.#electionElapsed < this.cfg.electionTicks;
        // Leader lease: while we hear from a live leader, a (pre)candidate is ignored, so a node
        // that rejoins from a partition cannot depose a healthy leader.
        if (!force && inLease) return;
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
    if (this.#hasUnappliedConfChanges()) return;
    if (this.cfg.preVote && !transfer) this.#campaign("pre-election", false);
    else this.#campaign("election", transfer);
  }

  #hasUnappliedConfChanges(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    let ents: Entry[];
    try {
      ents = this.log.slice(this.log.applied + 1, this.log.committed + 1, Number.MAX_SAFE_INTEGER);
    } catch (e) {
      if (e instanceof CompactedError) return false;
      throw e;
    }
    return ents.some((e) => e.type === EntryType.ConfChange);
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
        this.#handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.#handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.#handleSnap(m);
        return;
      case myRespType: {
        if (!this.#votes.has(m.from)) this.#votes.set(m.from, !m.reject);
        const res = voteResult(this.conf.voters, this.#votes);
        if (res === "won") {
          if (this.state === "pre-candidate") {
            this.#campaign("election", false);
          } else {
            this.#becomeLeader();
            this.#bcastAppend();
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
        this.lead = m.from;
        this.#handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.#electionElapsed = 0;
        this.lead = m.from;
        this.#handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.#electionElapsed = 0;
        this.lead = m.from;
        this.#handleSnap(m);
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

  #handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.#send({ to: m.from, type: MessageType.AppResp, index: this.log.committed });
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.#send({ to: m.from, type: MessageType.AppResp, index: lastNew });
      return;
    }
    // Fast backtracking: point the leader at the last index that can possibly match, skipping
    // every entry of a term newer than the leader's term at m.index.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    const hintTerm = this.log.term(hintIndex) ?? 0;
    this.#send({ to: m.from, type: MessageType.AppResp, index: m.index, reject: true, rejectHint: hintIndex, rejectTerm: hintTerm });
  }

  #handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    this.#send({ to: m.from, type: MessageType.HeartbeatResp, ...(m.context !== undefined ? { context: m.context } : {}) });
  }

  #handleSnap(m: Message): void {
    const chunk = m.snapshot;
    if (!chunk) return;
    if (chunk.meta.index <= this.log.committed) {
      // Already have it (e.g. the AppResp after install was lost): tell the leader where we are.
      this.#snapReceiver.reset();
      this.#send({ to: m.from, type: MessageType.AppResp, index: this.log.committed });
      return;
    }
    const attempt = m.snapshotAttempt;
    const echo = attempt !== undefined ? { snapshotAttempt: attempt } : {};
    const r = this.#snapReceiver.offer(chunk, m.term, attempt ?? 0);
    switch (r.kind) {
      case "stale":
        // A reordered or duplicated chunk of an attempt the leader has already abandoned.
        return;
      case "progress":
        this.#send({ to: m.from, type: MessageType.SnapResp, index: chunk.meta.index, rejectHint: r.received, ...echo });
        return;
      case "mismatch":
        this.#send({ to: m.from, type: MessageType.SnapResp, index: chunk.meta.index, reject: true, ...echo });
        return;
      case "complete":
        if (this.#restore(r.snapshot)) this.#send({ to: m.from, type: MessageType.AppResp, index: this.log.lastIndex() });
        else this.#send({ to: m.from, type: MessageType.AppResp, index: this.log.committed });
        return;
    }
  }

  /** Installs a complete snapshot; false when it is stale or already covered by our log. */
  #restore(s: Snapshot): boolean {
    if (s.meta.index <= this.log.committed) return false;
    if (this.state !== "follower") {
      // Only a follower of the sender steps Snap; anything else is a bug upstream. Be safe.
      this.becomeFollower(this.term + 1, null);
      return false;
    }
    // No "the snapshot's membership must include us" check (etcd has one, as defense in depth,
    // where node ids are never reused). Here a removed node can be re-added, and the leader's newest
    // snapshot may predate the re-add: refusing it would leave the node stuck forever, as nothing
    // makes the leader take a newer one on a quiet log. Installing it is safe: a snapshot holds
    // only committed state and comes from the leader of our current term, which sends it only to
    // members of its (applied) configuration. That configuration adds us at an index above the
    // snapshot's, and the leader still holds that entry in its log (it only compacts up to its
    // snapshot), so we receive and apply it next. Until then our membership is the snapshot's,
    // exactly as for any follower whose log ends there: without us as a voter we are not
    // promotable, so we never campaign on it, and votes we grant count only where the candidate's
    // own configuration makes us a voter — as they would anyway.
    if (this.log.matchTerm(s.meta.index, s.meta.term)) {
      // Our log already contains the snapshot's last entry: just fast-forward the commit index.
      this.log.commitTo(s.meta.index);
      return false;
    }
    this.log.restore(s);
    this.conf = { voters: [...s.meta.conf.voters], learners: [...s.meta.conf.learners] };
    this.#resetProgress();
    return true;
  }

  // ---- Leader ------------------------------------------------------------------------------

  #stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.ReadIndex:
        this.#handleReadIndex(m);
        return;
      case MessageType.TransferLeader:
        this.#handleTransferLeader(m.context ?? m.from);
        return;
    }
    const pr = this.prs.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.#handleAppResp(m, pr);
        return;
      case MessageType.HeartbeatResp:
        this.#handleHeartbeatResp(m, pr);
        return;
      case MessageType.SnapResp:
        this.#handleSnapResp(m, pr);
        return;
      default:
        return;
    }
  }

  #handleAppResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      let nextProbeIdx = m.rejectHint;
      if ((m.rejectTerm ?? 0) > 0) {
        // Skip every entry of ours whose term is newer than the follower's term at rejectHint.
        nextProbeIdx = this.log.findConflictByTerm(m.rejectHint, m.rejectTerm!);
      }
      if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.#sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    const updated = pr.maybeUpdate(m.index);
    if (pr.state === "snapshot") {
      // Still installing: nothing to do until the follower reports the snapshot's index.
      if (pr.match < pr.pendingSnapshot && pr.match + 1 < this.log.firstIndex()) return;
      this.#snapSenders.delete(m.from);
      pr.becomeProbe();
      if (pr.match + 1 < this.log.firstIndex()) {
        // We compacted past the snapshot it just installed: send the newer one.
        this.#sendAppend(m.from, true);
        return;
      }
      // Resume log replication after the snapshot.
      pr.becomeReplicate();
    } else if (updated || (pr.match === m.index && pr.state === "probe")) {
      if (pr.state === "probe") pr.becomeReplicate();
      else pr.inflights.freeLE(m.index);
    } else {
      return;
    }
    if (this.#maybeCommit()) {
      this.#onCommitAdvanced();
    } else if (wasPaused) {
      this.#sendAppend(m.from, true);
    }
    // Pipelining: fill the freed window with as many batches as it holds.
    while (this.#sendAppend(m.from, false)) {
      /* keep sending */
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.#send({ to: m.from, type: MessageType.TimeoutNow });
    }
  }

  #handleHeartbeatResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    // If every App filling the window was lost, free one slot so replication can resume.
    if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.#sendAppend(m.from, true);
    if (m.context === undefined) return;
    const acks = this.#readOnly.recvAck(m.from, m.context);
    if (!acks || !hasQuorum(this.conf.voters, acks)) return;
    for (const req of this.#readOnly.advance(m.context)) this.#answerRead(req.from, req.context, req.index);
  }

  #handleSnapResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    const sender = this.#snapSenders.get(m.from);
    if (!sender || pr.state !== "snapshot" || sender.snapshot.meta.index !== m.index) return;
    // A response to a chunk of an earlier attempt says nothing about the current one. (A peer
    // without attempt ids echoes none: take its response as it comes.)
    if (m.snapshotAttempt !== undefined && m.snapshotAttempt !== sender.attempt) return;
    if (m.reject) {
      // Never restart on the spot: duplicated rejects would each start a new window. Restart at
      // the next heartbeat, so at most one new attempt per heartbeat interval.
      sender.restartRequested = true;
      return;
    }
    if (sender.onAck(m.rejectHint)) this.#sendSnapshotChunks(m.from, sender);
  }

  #handleReadIndex(m: Message): void {
    const context = m.context ?? "";
    const from = m.from === this.id ? null : m.from;
    if (!this.#committedEntryInCurrentTerm()) {
      // Until the leader commits in its term, its commit index may lag the true one (§6.4).
      this.#pendingReadIndex.push(m);
      return;
    }
    if (this.conf.voters.length === 1 && this.isVoter()) {
      this.#answerRead(from, context, this.log.committed);
      return;
    }
    // Contexts are unique per requester only, so the round is keyed by both.
    const key = JSON.stringify([from, context]);
    if (!this.#readOnly.add(key, context, this.log.committed, from)) return;
    this.#readOnly.recvAck(this.id, key);
    this.#bcastHeartbeat(key);
  }

  #answerRead(from: NodeId | null, context: string, index: number): void {
    if (from === null) this.readStates.push({ context, index });
    else this.#send({ to: from, type: MessageType.ReadIndexResp, index, context });
  }

  #committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
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
    if (pr.match === this.log.lastIndex()) this.#send({ to: target, type: MessageType.TimeoutNow });
    else this.#sendAppend(target, true);
  }

  /** Advances the commit index to the quorum's match, counting only current-term entries (§5.4.2). */
  #maybeCommit(): boolean {
    const mci = committedIndex(this.conf.voters, (id) => this.prs.get(id)?.match ?? 0);
    if (mci > this.log.committed && this.log.term(mci) === this.term) {
      this.log.commitTo(mci);
      return true;
    }
    return false;
  }

  #onCommitAdvanced(): void {
    if (this.#pendingReadIndex.length > 0 && this.#committedEntryInCurrentTerm()) {
      const pending = this.#pendingReadIndex;
      this.#pendingReadIndex = [];
      for (const m of pending) this.#handleReadIndex(m);
    }
    // Followers learn the new commit index from the next App.
    this.#bcastAppend();
  }

  #appendEntry(type: EntryType, data: Uint8Array): Entry {
    const e: Entry = { term: this.term, index: this.log.lastIndex() + 1, type, data };
    this.log.append([e]);
    return e;
  }

  #bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.#sendAppend(id, true);
  }

  #bcastHeartbeat(context: string | undefined): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      // Never tell a follower to commit past what it is known to hold.
      const commit = Math.min(pr.match, this.log.committed);
      this.#send({ to: id, type: MessageType.Heartbeat, commit, ...(context !== undefined ? { context } : {}) });
    }
  }

  /**
   * Sends the next batch of entries to `to`, or a snapshot when they are compacted. Returns whether
   * something was sent; with `sendIfEmpty` false an App without entries is not sent.
   */
  #sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      // Invariant: next never runs past our log's end, so an unknown term means "compacted".
      assert(prevIndex < this.log.firstIndex(), `sendAppend: next ${pr.next} beyond last index ${this.log.lastIndex()}`);
      return this.#sendSnapshot(to, pr);
    }
    let entries: Entry[];
    try {
      entries = this.log.slice(pr.next, this.log.lastIndex() + 1, this.cfg.maxMsgBytes);
    } catch (e) {
      if (e instanceof CompactedError) return this.#sendSnapshot(to, pr);
      throw e;
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.#send({ to, type: MessageType.App, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed });
    pr.sentEntries(entries.length, prevIndex + entries.length);
    return true;
  }

  #sendSnapshot(to: NodeId, pr: Progress): boolean {
    // Streaming a snapshot to a peer we have not heard from is likely wasted bandwidth.
    if (!pr.recentActive) return false;
    this.#startSnapshot(to, pr);
    return true;
  }

  /** Starts a new transfer attempt of our newest snapshot to `to`, from offset 0. */
  #startSnapshot(to: NodeId, pr: Progress): void {
    const snap = this.log.snapshot();
    // Invariant: entries are only compacted into a snapshot, so one exists.
    assert(snap.meta.index > 0, "sendSnapshot: log compacted but no snapshot");
    pr.becomeSnapshot(snap.meta.index);
    const sender = new SnapshotSender(snap, this.cfg.snapshotChunkBytes, ++this.#snapAttempt);
    this.#snapSenders.set(to, sender);
    this.#sendSnapshotChunks(to, sender);
  }

  #sendSnapshotChunks(to: NodeId, sender: SnapshotSender): void {
    for (const chunk of sender.nextChunks()) {
      this.#send({ to, type: MessageType.Snap, index: chunk.meta.index, logTerm: chunk.meta.term, snapshot: chunk, snapshotAttempt: sender.attempt });
    }
  }

  /**
   * Once per heartbeat: repairs stalled transfers. Without ack progress for a few heartbeats a
   * chunk or ack was lost: resend from the last acked offset. If that does not help either (the
   * follower lost its assembly, e.g. it restarted), or the follower rejected the attempt, start a
   * new attempt with the newest snapshot (the log may have been compacted further).
   *
   * Deliberately not gated on `recentActive` (unlike the first send from {@link #sendAppend}): with
   * CheckQuorum that mark is cleared at every election-timeout boundary, just before this runs in
   * the same tick, so a gated retry could be skipped every time and the follower stay in snapshot
   * state forever. The cost of retrying to a dead follower is one window per few heartbeats.
   */
  #tickSnapshotSenders(): void {
    for (const [to, sender] of this.#snapSenders) {
      const pr = this.prs.get(to);
      if (!pr || pr.state !== "snapshot") {
        this.#snapSenders.delete(to);
        continue;
      }
      sender.stalledHeartbeats++;
      if (sender.restartRequested || sender.stalledHeartbeats >= SNAPSHOT_RESTART_HEARTBEATS) {
        this.#startSnapshot(to, pr);
      } else if (sender.stalledHeartbeats % SNAPSHOT_STALL_HEARTBEATS_MAX === 0) {
        sender.rewind();
        this.#sendSnapshotChunks(to, sender);
      }
    }
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
    const out: ProposeResult[] = datas.map((data) => {
      const e = this.#appendEntry(type, data);
      return { ok: true, index: e.index, term: e.term };
    });
    if (out.length > 0) this.#bcastAppend();
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
    const next = this.log.lastIndex() + 1;
    const added: NodeId[] = [];
    for (const id of [...this.conf.voters, ...this.conf.learners]) {
      const isLearner = this.conf.learners.includes(id);
      const pr = this.prs.get(id);
      if (pr) {
        pr.isLearner = isLearner;
      } else {
        const p = new Progress(next, this.cfg.maxInflightMsgs, isLearner);
        // A new member gets a grace period before CheckQuorum counts it as silent.
        p.recentActive = true;
        this.prs.set(id, p);
        added.push(id);
      }
    }
    for (const id of [...this.prs.keys()]) {
      if (!this.conf.voters.includes(id) && !this.conf.learners.includes(id)) {
        this.prs.delete(id);
        this.#snapSenders.delete(id);
      }
    }
    if (this.state !== "leader") return this.conf;
    if (!this.isVoter()) {
      // A leader removed (or demoted) by this change steps down; the remaining voters elect one.
      this.becomeFollower(this.term, null);
      return this.conf;
    }
    if (this.leadTransferee !== null && !this.isVoter(this.leadTransferee)) this.leadTransferee = null;
    // The quorum changed: a removal may let entries commit now.
    if (this.#maybeCommit()) this.#onCommitAdvanced();
    for (const id of added) this.#sendAppend(id, true);
    if (cc.type === ConfChangeType.AddVoter) this.#sendAppend(cc.node, true);
    return this.conf;
  }

  /** Entries up to `(index, term)` are durable locally; the leader counts itself for them. */
  onPersisted(index: number, term: number): void {
    this.log.unstable.stableTo(index, term);
    if (this.state !== "leader" || this.log.term(index) !== term) return;
    const self = this.prs.get(this.id);
    if (self && self.maybeUpdate(index) && this.#maybeCommit()) this.#onCommitAdvanced();
  }

  reportUnreachable(to: NodeId): void {
    const pr = this.prs.get(to);
    if (this.state === "leader" && pr && pr.state === "replicate") pr.becomeProbe();
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.prs.get(to);
    if (this.state !== "leader" || !pr || pr.state !== "snapshot") return;
    if (!ok) pr.pendingSnapshot = 0;
    // Either way, probe: after success next = snapshot index + 1; after failure from match + 1.
    pr.becomeProbe();
    // Wait for a heartbeat response before probing, as etcd does.
    pr.msgAppFlowPaused = true;
    this.#snapSenders.delete(to);
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
