import {
  DsyncError,
  ErrorCode,
  NotLeaderError,
  TimeoutError,
  UnavailableError,
} from "../../protocol/index.ts";
import {
  ConfChangeType,
  EntryType,
  MemoryStorage,
  MessageType,
  RawNode,
  Role,
  createRng,
  decodeConfChange,
  encodeConfChange,
  type ConfChange,
  type ConfState,
  type Entry,
  type GroupId,
  type HardState,
  type Message,
  type NodeId,
  type PeerLiveness,
  type RaftStatus,
  type Ready,
  type Snapshot,
  type SnapshotMeta,
} from "../raft/index.ts";
import type { StateMachine } from "./state-machine.ts";
import type { Wal } from "../storage/wal.ts";
import type { Logger } from "./logger.ts";
import { ownBytes } from "../services/command-codec.ts";
import { expiryStateChanged } from "./expiry-loop.ts";
import { COMMIT_NOTICE_DELAY_MS, CommitNotices } from "./commit-notices.ts";
import { ReadLease, type LeaseRound } from "./read-lease.ts";
import { commitTraceOn, traceCommit } from "./commit-trace.ts";

/** How a group hands its outgoing messages to the network. */
export interface RaftSender {
  /** Sends `msgs` (all for peer `to`); returns false when the link is down. */
  send(to: NodeId, msgs: Message[]): boolean;
}

export interface RaftGroupOptions {
  readonly group: GroupId;
  readonly nodeId: NodeId;
  /**
   * The voters a brand-new group starts with, written as the first log entries; empty for a node
   * that joins an existing group (it learns the membership from the leader).
   */
  readonly bootstrapVoters: readonly NodeId[];
  /** The group was retired earlier in this process: open it from the WAL's live state. */
  readonly reopen?: boolean;
  /** Learners a brand-new group starts with besides its voters. */
  readonly bootstrapLearners?: readonly NodeId[];
  readonly wal: Wal;
  readonly machine: StateMachine;
  readonly sender: RaftSender;
  readonly log: Logger;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** Applied entries between snapshots. */
  readonly snapshotThreshold: number;
  /** Entries kept behind a snapshot so a briefly lagging follower needs no InstallSnapshot. */
  readonly catchUpEntries: number;
  /** Seed of the election-timeout jitter. */
  readonly seed: number;
  /** How long a leader's commit notice may wait for an append to carry it (see commit-notices.ts); 0: never. */
  readonly commitNoticeDelayMs?: number;
  /**
   * How long a quorum's answer to a read round proves this node still leads (see read-lease.ts);
   * reads within it need no round of their own. 0 or absent: every read takes a round.
   */
  readonly leaseReadMs?: number;
  /** Called after a membership change is applied. */
  readonly onConfChange?: (cc: ConfChange, conf: ConfState) => void;
  /** Called on every role or leader change. */
  readonly onRoleChange?: (role: Role, leader: NodeId | null, term: number) => void;
  /**
   * Called once if the Ready loop fails (a storage error): a server stops the process here
   * (fail-stop) instead of leaving a mute member behind. Without it the group just stops.
   */
  readonly onFatal?: (err: Error) => void;
  /** Work reached the group and it is not quiet (it may just have woken): the host's ticks must run. */
  readonly onAwake?: () => void;
}

interface Waiter {
  readonly term: number;
  resolve(result: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

interface ReadWaiter {
  index: number;
  /** Set on a leader's own rounds: a quorum's answer extends the read lease. */
  lease?: LeaseRound;
  resolve(): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * One member of one Raft group on this node: the pure core, its durable log in the shared WAL,
 * and the state machine it drives.
 *
 * The Ready loop runs one Ready at a time, in this order: persist (snapshot, entries, hard
 * state) → send → apply → advance. Persist before send: a vote or an append must be durable
 * before it is announced. Everything proposed while one Ready is being fsynced lands in the
 * next, so one fsync serves a whole batch of proposals (group commit).
 */
export class RaftGroup {
  readonly group: GroupId;
  readonly raw: RawNode;
  readonly storage: MemoryStorage;
  readonly #o: RaftGroupOptions;
  readonly #waiters = new Map<number, Waiter>();
  readonly #reads = new Map<string, ReadWaiter>();
  readonly #lease: ReadLease;
  /** A round to extend the lease is under way. */
  #leaseRenewing = false;
  readonly #readyIndexed: ReadWaiter[] = [];
  readonly #notices: CommitNotices;
  /** Set by notifyFollowersNow during an apply; cleared by the next send. */
  #urgentNotices = false;
  #applied: number;
  #snapshotIndex: number;
  #scheduled = false;
  #processing = false;
  #readSeq = 0;
  #stopped = false;
  /** The Ready iteration in flight, awaited by stop(). */
  #iteration: Promise<void> = Promise.resolve();
  /** A snapshot of this node's own being written (see #maybeSnapshot), or null. */
  #snapshotting: Promise<void> | null = null;
  #role: Role = Role.Follower;
  #leader: NodeId | null = null;
  #failure: Error | null = null;
  /** The last hard state handed to storage: what a new one is compared with. */
  #hardState: HardState;

  private constructor(o: RaftGroupOptions, storage: MemoryStorage, applied: number) {
    this.#o = o;
    this.#lease = new ReadLease(o.leaseReadMs ?? 0);
    this.#notices = new CommitNotices(o.commitNoticeDelayMs ?? COMMIT_NOTICE_DELAY_MS, (to, msgs) => this.#sendTo(to, msgs));
    this.group = o.group;
    this.storage = storage;
    this.#applied = applied;
    this.#snapshotIndex = applied;
    this.#hardState = storage.initialState().hardState;
    this.raw = new RawNode({
      id: o.nodeId,
      group: o.group,
      electionTicks: o.electionTicks,
      heartbeatTicks: o.heartbeatTicks,
      storage,
      rng: createRng(o.seed),
      applied,
      preVote: true,
      checkQuorum: true,
      holdVotesAtStart: true,
    });
  }

  /**
   * Restores a group from the WAL: the latest snapshot into the state machine, then the log and
   * hard state into the core's storage. Committed entries after the snapshot are re-applied by
   * the first Ready loops.
   */
  static async open(o: RaftGroupOptions): Promise<RaftGroup> {
    let saved = o.reopen ? o.wal.stateForReopen(o.group) : o.wal.state(o.group);
    const snap = o.wal.loadSnapshot(o.group);
    if (!saved.hardState && saved.entries.length === 0 && !saved.snapshotMeta && o.bootstrapVoters.length > 0) {
      saved = await bootstrap(o);
    }
    // Membership lives in the log (bootstrap entries and later changes) or in the snapshot, so
    // a node that joins later learns the full voter set the same way as everyone else.
    const storage = new MemoryStorage({ voters: [], learners: [] });
    let applied = 0;
    if (snap && saved.snapshotMeta && snap.meta.index === saved.snapshotMeta.index) {
      storage.applySnapshot({ meta: snap.meta, data: snap.data });
      o.machine.restore(snap.data);
      applied = snap.meta.index;
    } else if (saved.snapshotMeta) {
      throw new Error(`group ${o.group}: the log refers to snapshot ${saved.snapshotMeta.index} but its file is missing`);
    }
    if (saved.entries.length > 0) storage.append(saved.entries as Entry[]);
    if (saved.hardState) storage.setHardState(saved.hardState);
    return new RaftGroup(o, storage, applied);
  }

  get applied(): number {
    return this.#applied;
  }

  get isLeader(): boolean {
    return this.#role === Role.Leader;
  }

  /** Whether the group is quiet here (see src/raft/quiescence.ts). */
  get quiesced(): boolean {
    return this.raw.quiesced;
  }

  get leader(): NodeId | null {
    return this.#leader;
  }

  /** The error that stopped this group's Ready loop (a failed fsync), or null. */
  get failure(): Error | null {
    return this.#failure;
  }

  status(): RaftStatus {
    return this.raw.status();
  }

  tick(beat?: number, live?: PeerLiveness): void {
    // Most ticks change nothing (a quiet group, a follower counting, a leader between heartbeats): no loop turn for them.
    if (this.raw.tick(beat, live) && this.raw.hasReady()) this.#schedule();
  }

  /** Feeds a message from a peer. Malformed messages are refused by the codec before this. */
  step(msg: Message): void {
    if (commitTraceOn) this.#traceMessage("recv", msg);
    this.raw.step(msg);
    this.#schedule();
  }

  /**
   * Proposes `data` and resolves with the state machine's result once it is committed and
   * applied here.
   * @throws NotLeaderError when this node is not the leader; UnavailableError when leadership
   * changed before the entry committed (it was not applied); TimeoutError after `timeoutMs`
   * (outcome unknown).
   */
  propose(data: Uint8Array, timeoutMs: number): Promise<unknown> {
    this.#checkRunning();
    // Proposals of one event-loop turn go to the core together (one append per follower).
    return new Promise((resolve, reject) => {
      this.#batch.push({ data: ownBytes(data), timeoutMs, resolve, reject });
      if (this.#batch.length === 1) setImmediate(() => this.#proposeBatch());
    });
  }

  #batch: { data: Uint8Array; timeoutMs: number; resolve(v: unknown): void; reject(e: Error): void }[] = [];

  #proposeBatch(): void {
    const batch = this.#batch;
    this.#batch = [];
    if (this.#stopped || this.#failure) {
      const err = this.#failure ? new UnavailableError(`this node's log is unavailable: ${this.#failure.message}`) : notProposed();
      for (const p of batch) p.reject(err);
      return;
    }
    const results = this.raw.proposeBatch(batch.map((p) => p.data));
    if (commitTraceOn) for (const r of results) if (r.ok) traceCommit("propose", this.group, r.index);
    results.forEach((r, i) => {
      const p = batch[i]!;
      if (!r.ok) p.reject(new NotLeaderError(r.leader, null));
      else this.#wait(r.index, r.term, p.timeoutMs).then(p.resolve, p.reject);
    });
    // Already a turn after the proposals arrived: run the Ready loop now rather than one more turn later.
    if (!this.#processing) void this.#loop();
  }

  /** Proposes a membership change; resolves once it is applied. */
  proposeConfChange(cc: ConfChange, timeoutMs: number): Promise<unknown> {
    this.#checkRunning();
    const r = this.raw.proposeConfChange(cc);
    if (!r.ok) {
      return Promise.reject(r.leader === this.#o.nodeId ? new DsyncError(ErrorCode.UNAVAILABLE, "another membership change is still in progress") : new NotLeaderError(r.leader, null));
    }
    this.#schedule();
    return this.#wait(r.index, r.term, timeoutMs);
  }

  /**
   * Resolves once this node's state machine reflects every write committed before the call
   * (ReadIndex): a linearizable read point without a log write.
   */
  readBarrier(timeoutMs: number): Promise<void> {
    this.#checkRunning();
    if (this.raw.leaseUsable) {
      const now = performance.now();
      const { term, commit } = this.raw.termAndCommit;
      const left = this.#lease.remaining(term, now);
      if (left > 0) {
        // Renewed ahead of time, so a steady stream of reads never waits for a round.
        if (left < this.#lease.durationMs / 2 && !this.#leaseRenewing) {
          this.#leaseRenewing = true;
          void this.#readRound(timeoutMs)
            .catch(() => {})
            .finally(() => (this.#leaseRenewing = false));
        }
        if (commit <= this.#applied) return Promise.resolve();
        return this.#waitApplied(commit, timeoutMs);
      }
    }
    return this.#readRound(timeoutMs);
  }

  /** ReadIndex: a heartbeat round a quorum answers, then the commit index it fixed is applied. */
  #readRound(timeoutMs: number): Promise<void> {
    const context = `${this.#o.nodeId}/${++this.#readSeq}`;
    const lease = this.raw.leaseUsable && this.#lease.durationMs > 0 ? this.#lease.begin(this.raw.termAndCommit.term, performance.now()) : undefined;
    if (!this.raw.readIndex(context)) return Promise.reject(new NotLeaderError(null, null));
    this.#schedule();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#reads.delete(context);
        this.#dropReady(timer);
        reject(new TimeoutError(`linearizable read got no quorum confirmation within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#reads.set(context, { index: -1, resolve, reject, timer, ...(lease && { lease }) });
    });
  }

  /** Resolves once entry `index` is applied here. */
  #waitApplied(index: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#dropReady(timer);
        reject(new TimeoutError(`linearizable read: log index ${index} was not applied within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#readyIndexed.push({ index, resolve, reject, timer });
    });
  }

  /** Forgets the read waiting for its index to apply whose timer this is (it timed out). */
  #dropReady(timer: NodeJS.Timeout): void {
    const i = this.#readyIndexed.findIndex((w) => w.timer === timer);
    if (i >= 0) this.#readyIndexed.splice(i, 1);
  }

  /** Writes and reads this replica started and has not answered yet. */
  get pending(): number {
    return this.#waiters.size + this.#reads.size + this.#readyIndexed.length;
  }

  /**
   * This replica's state machine image at its applied index, with that entry's term and the
   * group's membership. After {@link readBarrier} it reflects every write acknowledged before the
   * barrier began: a linearizable image, as a backup needs.
   */
  image(): { index: number; term: number; conf: ConfState; data: Uint8Array } {
    this.#checkRunning();
    const index = this.#applied;
    return { index, term: this.storage.term(index), conf: this.raw.status().conf, data: this.#o.machine.snapshot() };
  }

  /**
   * The other voter with the longest replicated log (it takes over with the least catching up),
   * among those `eligible` accepts; undefined when there is none or this node does not lead.
   */
  mostCaughtUpVoter(eligible: (id: NodeId) => boolean = () => true): NodeId | undefined {
    const s = this.raw.status();
    const match = (id: NodeId): number => s.progress?.[id]?.match ?? 0;
    return s.conf.voters.filter((v) => v !== s.id && eligible(v)).sort((a, b) => match(b) - match(a))[0];
  }

  transferLeader(to: NodeId): void {
    this.raw.transferLeader(to);
    this.#schedule();
  }

  /**
   * Stops the loop; pending proposals and reads fail with SHUTTING_DOWN. Resolves once the Ready
   * iteration in flight (an fsync, a snapshot) has finished, so the WAL can be closed after it:
   * closing it under a running iteration would make a clean stop look like a storage failure.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#notices.stop();
    this.#failAll(new DsyncError(ErrorCode.SHUTTING_DOWN, "the node is shutting down"));
    await this.#iteration;
    await this.#snapshotting;
  }

  /**
   * Stops a replica this node no longer holds (moved elsewhere) and folds its log into one
   * snapshot, so its entries stop pinning the shared WAL's segments.
   */
  async retire(): Promise<void> {
    await this.stop();
    // Reopening starts from this snapshot (see Wal.stateForReopen), so it must cover what was applied.
    if (this.#failure || this.#applied <= this.#snapshotIndex) return;
    const data = this.#o.machine.snapshot();
    const snap = this.storage.createSnapshot(this.#applied, this.raw.status().conf, data);
    await this.#o.wal.saveSnapshot(this.group, snap.meta, data);
    this.#snapshotIndex = this.#applied;
    await this.#o.wal.compact();
  }

  #checkRunning(): void {
    if (this.#failure) throw new UnavailableError(`this node's log is unavailable: ${this.#failure.message}`);
    if (this.#stopped) throw notProposed();
  }

  #wait(index: number, term: number, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(index);
        reject(new TimeoutError(`write at log index ${index} was not applied within ${timeoutMs} ms; it may still be`));
      }, timeoutMs);
      this.#waiters.set(index, { term, resolve, reject, timer });
    });
  }

  #schedule(): void {
    if (!this.raw.quiesced) this.#o.onAwake?.();
    if (this.#scheduled || this.#processing || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#loop();
    });
  }

  #loop(): Promise<void> {
    if (this.#processing || this.#stopped) return Promise.resolve();
    this.#processing = true;
    this.#iteration = this.#runReady();
    return this.#iteration;
  }

  async #runReady(): Promise<void> {
    try {
      while (!this.#stopped && this.raw.hasReady()) {
        const rd = this.raw.ready();
        if (this.#onlyCommits(rd)) {
          // Nothing to make durable first: the answers to the clients go out before the
          // followers hear of the new commit index (whose notices then usually ride the next append).
          this.#noteSoftState(rd);
          this.#apply(rd);
          this.#send(rd.messages);
          await this.#persist(rd);
          this.raw.advance(rd);
          continue;
        }
        // A leader's appends and heartbeats may go out before its own fsync (Raft §10.2.1, as
        // etcd does): the leader counts its own entries toward commit only once persisted, so
        // its disk write and the followers' overlap. Everything else (votes, acks) reflects
        // state that must be durable first.
        const early = rd.messages.filter(isLeaderBroadcast);
        this.#send(early);
        await this.#persist(rd);
        this.#send(early.length === 0 ? rd.messages : rd.messages.filter((m) => !isLeaderBroadcast(m)));
        this.#noteSoftState(rd);
        this.#apply(rd);
        if (this.#urgentNotices) this.#send([]); // Its messages went out before the apply.
        this.raw.advance(rd);
        if (this.#stopped) break; // A stop came during the fsync: no snapshot on a closing WAL.
        this.#maybeSnapshot();
      }
    } catch (err) {
      this.#storageFailed(err as Error);
    } finally {
      this.#processing = false;
    }
    if (!this.#stopped && this.raw.hasReady()) this.#schedule();
  }

  /**
   * A Ready that only moves the commit index: no entries, snapshot, term or vote to persist, and
   * no membership change to apply (those keep the usual order: persist, send, apply).
   */
  #onlyCommits(rd: Ready): boolean {
    if (rd.snapshot || rd.committedEntries.length === 0 || this.#mustSync(rd)) return false;
    for (const e of rd.committedEntries) if (e.type === EntryType.ConfChange) return false;
    return true;
  }

  /**
   * Only entries, term and vote must be durable before anything is announced (etcd's MustSync).
   * A hard state that only moves the commit index need not be: lost in a crash, the commit index
   * is learnt again from the leader.
   */
  #mustSync(rd: Ready): boolean {
    const hs = rd.hardState;
    return rd.entries.length > 0 || (hs !== undefined && (hs.term !== this.#hardState.term || hs.vote !== this.#hardState.vote));
  }

  async #persist(rd: Ready): Promise<void> {
    if (rd.snapshot) {
      // The WAL saves one snapshot of a group at a time, and the leader's supersedes ours.
      await this.#snapshotting;
      await this.#installSnapshot(rd.snapshot);
    }
    const records = [];
    if (rd.entries.length > 0) records.push({ kind: "entries" as const, group: this.group, entries: rd.entries });
    if (rd.hardState) records.push({ kind: "hardState" as const, group: this.group, hardState: rd.hardState });
    if (records.length > 0) {
      // A record that need not be durable is placed in order and written with the next durable
      // batch: not waited for, and not fsynced on its own.
      const mustSync = this.#mustSync(rd);
      const written = this.#o.wal.append(records, { durable: mustSync });
      if (mustSync) await written;
      else written.catch((err: unknown) => this.#storageFailed(err as Error));
      if (commitTraceOn && rd.entries.length > 0) traceCommit("persisted", this.group, rd.entries[rd.entries.length - 1]!.index);
    }
    if (rd.entries.length > 0) this.storage.append(rd.entries);
    if (rd.hardState) {
      this.storage.setHardState(rd.hardState);
      this.#hardState = rd.hardState;
    }
  }

  #storageFailed(err: Error): void {
    if (this.#failure) return;
    // A failed fsync leaves the durable state unknown: stop serving rather than guess.
    this.#failure = err;
    this.#o.onFatal?.(err);
    this.#o.log.fatal({ err, group: this.group }, "raft group stopped: storage failure");
    // Writes already proposed may have reached the other replicas and may still commit.
    this.#failAll(new TimeoutError(`this node's log failed (${err.message}); a write in flight may or may not have been applied`));
    this.#stopped = true;
  }

  async #installSnapshot(snap: Snapshot): Promise<void> {
    // Snapshot file first, then the marker record: a crash in between replays the old log.
    await this.#o.wal.saveSnapshot(this.group, snap.meta, snap.data);
    this.storage.applySnapshot(snap);
    this.#o.machine.restore(snap.data);
    this.#applied = snap.meta.index;
    this.#snapshotIndex = snap.meta.index;
    this.#o.log.info({ group: this.group, index: snap.meta.index, bytes: snap.data.length }, "installed snapshot from leader");
  }

  #send(messages: readonly Message[]): void {
    const urgent = this.#urgentNotices;
    this.#urgentNotices = false;
    if (urgent) this.#notices.flush();
    if (messages.length === 0) return;
    const byPeer = new Map<NodeId, Message[]>();
    for (const m of messages) {
      const list = byPeer.get(m.to);
      if (list) list.push(m);
      else byPeer.set(m.to, [m]);
    }
    for (const [to, msgs] of byPeer) if (urgent || !this.#notices.hold(to, msgs)) this.#sendTo(to, msgs);
  }

  /**
   * Called while an entry applies: a follower must learn of this commit at once (it will push
   * something to a client of its own), so no commit notice of this Ready waits for the next append.
   */
  notifyFollowersNow(): void {
    this.#urgentNotices = true;
  }

  /** Commit notices waiting for an append to carry them (see commit-notices.ts). */
  get commitNoticesHeld(): number {
    return this.#notices.held;
  }

  /** Commit trace: an append carrying entries (by its last index), or an append's answer. */
  #traceMessage(dir: "send" | "recv", m: Message): void {
    if (m.type === MessageType.App && m.entries.length > 0) traceCommit(`${dir}-app`, this.group, m.entries[m.entries.length - 1]!.index);
    else if (m.type === MessageType.AppResp && !m.reject) traceCommit(`${dir}-resp`, this.group, m.index);
  }

  #sendTo(to: NodeId, msgs: Message[]): void {
    if (commitTraceOn) for (const m of msgs) this.#traceMessage("send", m);
    if (!this.#o.sender.send(to, msgs)) {
      this.raw.reportUnreachable(to);
      if (msgs.some((m) => m.snapshot !== undefined)) this.raw.reportSnapshot(to, false);
    }
  }

  #noteSoftState(rd: Ready): void {
    if (!rd.softState) return;
    const { role, leader } = rd.softState;
    if (role === this.#role && leader === this.#leader) return;
    this.#role = role;
    this.#leader = leader;
    this.#o.log.info({ group: this.group, role, leader, term: this.raw.status().term }, "raft role changed");
    this.#o.onRoleChange?.(role, leader, this.raw.status().term);
    this.#lease.void();
    if (role !== Role.Leader) {
      // Reads waiting for this node's leadership confirmation will never get it.
      for (const [ctx, r] of this.#reads) {
        if (r.index < 0) {
          clearTimeout(r.timer);
          r.reject(new NotLeaderError(leader, null));
          this.#reads.delete(ctx);
        }
      }
    }
  }

  #apply(rd: Ready): void {
    // New state may hold a deadline sooner than the one the expiry timer waits for.
    if (rd.committedEntries.length > 0 || rd.snapshot) expiryStateChanged();
    for (const e of rd.committedEntries) {
      if (e.index <= this.#applied) continue; // Covered by an installed snapshot.
      let result: unknown;
      if (e.type === EntryType.ConfChange) {
        const cc = decodeConfChange(e.data);
        const conf = this.raw.applyConfChange(cc);
        this.#lease.confChanged();
        this.#o.log.info({ group: this.group, change: cc, conf }, "membership changed");
        this.#o.onConfChange?.(cc, conf);
        result = conf;
      } else {
        result = this.#o.machine.apply({ index: e.index, term: e.term, data: e.data });
      }
      this.#applied = e.index;
      if (commitTraceOn) traceCommit("applied", this.group, e.index);
      const w = this.#waiters.get(e.index);
      if (w) {
        this.#waiters.delete(e.index);
        clearTimeout(w.timer);
        // Another leader's entry took this index: ours was never committed, so a retry is safe.
        if (w.term === e.term) w.resolve(result);
        else w.reject(new UnavailableError("leadership changed before the write committed; it was not applied"));
      }
    }
    for (const rs of rd.readStates) {
      const r = this.#reads.get(rs.context);
      if (!r) continue;
      this.#reads.delete(rs.context);
      if (r.lease && this.raw.leaseUsable) this.#lease.confirm(r.lease, this.raw.termAndCommit.term);
      r.index = rs.index;
      this.#readyIndexed.push(r);
    }
    if (this.#readyIndexed.length > 0) {
      for (let i = this.#readyIndexed.length - 1; i >= 0; i--) {
        const r = this.#readyIndexed[i]!;
        if (r.index <= this.#applied) {
          this.#readyIndexed.splice(i, 1);
          clearTimeout(r.timer);
          r.resolve();
        }
      }
    }
  }

  /**
   * Every snapshotThreshold applied entries, captures the state machine and writes it in the
   * background: the image and its marker take several fsyncs (6–12 ms each time in a loaded lock
   * run), and a Ready loop that waited for them held every write in flight on the group that
   * long (that run's slowest cycles: all 16 clients' at once, 15–24 ms). As etcd does, the
   * capture is synchronous (the state at `applied`) and only the saving is not. Nothing waits
   * for it but a stop and an InstallSnapshot; entries stay in memory until it is durable.
   */
  #maybeSnapshot(): void {
    if (this.#snapshotting !== null || this.#applied - this.#snapshotIndex < this.#o.snapshotThreshold) return;
    const index = this.#applied;
    const data = this.#o.machine.snapshot();
    const snap = this.storage.createSnapshot(index, this.raw.status().conf, data);
    this.#snapshotting = this.#saveSnapshot(snap.meta, data)
      .catch((err: unknown) => this.#storageFailed(err as Error))
      .finally(() => (this.#snapshotting = null));
  }

  async #saveSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    await this.#o.wal.saveSnapshot(this.group, meta, data);
    this.#snapshotIndex = meta.index;
    const compactTo = meta.index - this.#o.catchUpEntries;
    if (compactTo > this.storage.firstIndex()) this.storage.compact(compactTo);
    await this.#o.wal.compact();
  }

  #failAll(err: Error): void {
    for (const w of this.#waiters.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.#waiters.clear();
    for (const r of [...this.#reads.values(), ...this.#readyIndexed]) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    this.#reads.clear();
    this.#readyIndexed.length = 0;
  }
}

function isLeaderBroadcast(m: Message): boolean {
  return m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
}

/**
 * Writes the initial membership of a brand-new group as committed log entries 1..n (etcd's
 * bootstrap): every founding node writes the same entries, so their logs agree from the start.
 */
async function bootstrap(o: RaftGroupOptions): Promise<{ hardState: HardState; entries: Entry[]; snapshotMeta: null }> {
  const voters = [...new Set(o.bootstrapVoters)].sort();
  const learners = [...new Set(o.bootstrapLearners ?? [])].filter((n) => !voters.includes(n)).sort();
  const changes = [...voters.map((node) => ({ type: ConfChangeType.AddVoter, node })), ...learners.map((node) => ({ type: ConfChangeType.AddLearner, node }))];
  const entries: Entry[] = changes.map((cc, i) => ({
    term: 1,
    index: i + 1,
    type: EntryType.ConfChange,
    data: encodeConfChange(cc),
  }));
  const hardState: HardState = { term: 1, vote: null, commit: entries.length };
  await o.wal.append([
    { kind: "entries", group: o.group, entries },
    { kind: "hardState", group: o.group, hardState },
  ]);
  o.log.info({ group: o.group, voters, learners }, "bootstrapped a new raft group");
  return { hardState, entries, snapshotMeta: null };
}

/**
 * A request a stopping node did not propose: it certainly had no effect, so it is refused as
 * NOT_LEADER (resend it elsewhere or later) rather than SHUTTING_DOWN, whose effect is unknown —
 * what proposals still pending when the group stops get.
 */
function notProposed(): NotLeaderError {
  return new NotLeaderError(null, null);
}
