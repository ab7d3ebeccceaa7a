import { assert } from "./assert.ts";
import { resolveConfig } from "./config.ts";
import { Raft, type ProposeResult } from "./raft.ts";
import type { PeerLiveness } from "./quiescence.ts";
import {
  EntryType,
  MessageType,
  type ConfChange,
  type ConfState,
  type GroupId,
  type HardState,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type Role,
  type SoftState,
} from "./types.ts";
import { makeMessage } from "./message.ts";

export { encodeConfChange, decodeConfChange } from "./conf-change.ts";
export type { ProposeResult } from "./raft.ts";

/** Upper bound of entry bytes handed to the application in one Ready. */
const COMMITTED_ENTRIES_BYTES_MAX = 16 * 1024 * 1024;

/** A read-only snapshot of a node's Raft state, for status pages, metrics and tests. */
export interface RaftStatus {
  id: NodeId;
  group: GroupId;
  term: number;
  role: Role;
  leader: NodeId | null;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  conf: ConfState;
  /** Whether the group is quiet here (no heartbeats as leader, no election timer as follower). */
  quiesced: boolean;
  /** The leader's view of each member's replication; absent on non-leaders. */
  progress?: Record<NodeId, { match: number; next: number; state: string }>;
}

/**
 * The node layer's handle on one Raft group member (etcd's RawNode). Single-threaded and pure:
 * every method runs to completion without I/O. Drive it with {@link tick}, {@link step} and the
 * proposal methods; drain work with {@link ready}, persist it, send its messages, apply its
 * committed entries, then call {@link advance} with the same Ready.
 */
export class RawNode {
  readonly #raft: Raft;
  #prevSoft: SoftState;
  #prevHard: HardState;

  /** Restores term, vote, commit, log and membership from `cfg.storage`. Throws on invalid config. */
  constructor(cfg: RaftConfig) {
    this.#raft = new Raft(resolveConfig(cfg));
    this.#prevSoft = this.#raft.softState();
    this.#prevHard = cfg.storage.initialState().hardState;
  }

  /**
   * Advances logical time by one tick (election and heartbeat timeouts are counted in ticks).
   * `beat`: the host's tick count, which aligns the heartbeats of every group it leads (see Raft.tick).
   * `live`: the host's view of which peer nodes are live; with it an idle group goes quiet (see quiescence.ts).
   * Returns false when the tick cannot have produced work (no need to look for a Ready).
   */
  tick(beat?: number, live?: PeerLiveness): boolean {
    return this.#raft.tick(beat, live);
  }

  /**
   * Feeds a message received from a peer. Throws RaftInvariantError when it belongs to another
   * group or node, or is a local-only type (Hup): both are node-layer routing bugs.
   */
  step(msg: Message): void {
    assert(msg.type !== MessageType.Hup, "step: Hup is local only; use campaign()");
    this.#raft.step(msg);
  }

  /** On the leader, appends `data` and returns its index and term; elsewhere returns a leader hint. */
  propose(data: Uint8Array): ProposeResult {
    return this.#raft.propose(EntryType.Normal, data);
  }

  /** Proposes several payloads at once: one append message per follower for the whole batch. */
  proposeBatch(datas: readonly Uint8Array[]): ProposeResult[] {
    return this.#raft.proposeBatch(EntryType.Normal, datas);
  }

  /** Proposes a membership change; refused while another one is pending (proposed, not applied). */
  proposeConfChange(cc: ConfChange): ProposeResult {
    return this.#raft.proposeConfChange(cc);
  }

  /** Applies a committed ConfChange entry; call it when applying that entry. Returns the new membership. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.#raft.applyConfChange(cc);
  }

  /**
   * Requests a linearizable read point tagged `context` (which must be unique among pending reads).
   * Returns false when no leader is known; otherwise the answer arrives in a later Ready.readStates
   * (or never, if leadership changes meanwhile: the caller retries on timeout).
   */
  readIndex(context: string): boolean {
    const r = this.#raft;
    if (r.lead === null) return false;
    r.step(this.#local(MessageType.ReadIndex, context));
    return true;
  }

  /** Asks the leader (directly, or forwarded by a follower) to hand leadership to `to`. */
  transferLeader(to: NodeId): void {
    this.#raft.step(this.#local(MessageType.TransferLeader, to));
  }

  /** Starts an election now (a pre-election first when PreVote is on). */
  campaign(): void {
    this.#raft.step(this.#local(MessageType.Hup, undefined));
  }

  /**
   * Whether this node leads and may time its leadership by a lease: it started no leadership
   * transfer in this term (see Raft.transferredThisTerm).
   */
  get leaseUsable(): boolean {
    const r = this.#raft;
    return r.state === "leader" && !r.transferredThisTerm;
  }

  /** The term and commit index now (no copy of the membership, unlike status()). */
  get termAndCommit(): { term: number; commit: number } {
    return { term: this.#raft.term, commit: this.#raft.log.committed };
  }

  /** Whether the group is quiet here (see quiescence.ts). */
  get quiesced(): boolean {
    return this.#raft.quiesced;
  }

  /** Whether {@link ready} would return any work. */
  hasReady(): boolean {
    const r = this.#raft;
    const soft = r.softState();
    if (soft.leader !== this.#prevSoft.leader || soft.role !== this.#prevSoft.role) return true;
    if (!sameHardState(r.hardState(), this.#prevHard)) return true;
    if (r.log.unstable.nextEntries().length > 0 || r.log.unstable.nextSnapshot() !== undefined) return true;
    return r.msgs.length > 0 || r.readStates.length > 0 || r.log.hasNextCommittedEntries();
  }

  /**
   * Returns the outstanding work and marks it handed out: the same entries, messages or committed
   * entries are never returned twice. Persist, send, apply, then {@link advance} in that order.
   */
  ready(): Ready {
    const r = this.#raft;
    const soft = r.softState();
    const hard = r.hardState();
    const snapshot = r.log.unstable.nextSnapshot();
    const rd: Ready = {
      ...(soft.leader !== this.#prevSoft.leader || soft.role !== this.#prevSoft.role ? { softState: soft } : {}),
      ...(!sameHardState(hard, this.#prevHard) ? { hardState: hard } : {}),
      entries: r.log.unstable.nextEntries(),
      ...(snapshot ? { snapshot } : {}),
      committedEntries: r.log.nextCommittedEntries(COMMITTED_ENTRIES_BYTES_MAX),
      messages: r.msgs,
      readStates: r.readStates,
    };
    this.#prevSoft = soft;
    this.#prevHard = hard;
    r.msgs = [];
    r.readStates = [];
    r.log.unstable.acceptInProgress();
    if (snapshot) r.log.applying = Math.max(r.log.applying, snapshot.meta.index);
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted) r.log.applying = Math.max(r.log.applying, lastCommitted.index);
    return rd;
  }

  /** Acknowledges that `rd` was persisted, sent and applied. */
  advance(rd: Ready): void {
    const r = this.#raft;
    if (rd.snapshot) {
      r.log.unstable.stableSnapTo(rd.snapshot.meta.index);
      r.log.appliedTo(rd.snapshot.meta.index);
    }
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) r.onPersisted(lastEntry.index, lastEntry.term);
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted) r.log.appliedTo(lastCommitted.index);
  }

  /** The current state; `progress` only on the leader. */
  status(): RaftStatus {
    const r = this.#raft;
    const s: RaftStatus = {
      id: r.id,
      group: r.cfg.group,
      term: r.term,
      role: r.role(),
      leader: r.lead,
      commit: r.log.committed,
      applied: r.log.applied,
      firstIndex: r.log.firstIndex(),
      lastIndex: r.log.lastIndex(),
      snapshotIndex: r.log.snapshot().meta.index,
      conf: { voters: [...r.conf.voters], learners: [...r.conf.learners] },
      quiesced: r.quiesced,
    };
    if (r.state === "leader") {
      const progress: Record<NodeId, { match: number; next: number; state: string }> = {};
      for (const [id, pr] of r.prs) progress[id] = { match: pr.match, next: pr.next, state: pr.state };
      s.progress = progress;
    }
    return s;
  }

  /** The transport could not reach `to`: stop pipelining to it and probe instead. */
  reportUnreachable(to: NodeId): void {
    this.#raft.reportUnreachable(to);
  }

  /** Outcome of a snapshot transfer to `to` as seen by the node layer; the leader then probes. */
  reportSnapshot(to: NodeId, ok: boolean): void {
    this.#raft.reportSnapshot(to, ok);
  }

  #local(type: MessageType, context: string | undefined): Message {
    const id = this.#raft.id;
    return makeMessage({ type, group: this.#raft.cfg.group, from: id, to: id, term: 0, ...(context !== undefined ? { context } : {}) });
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
