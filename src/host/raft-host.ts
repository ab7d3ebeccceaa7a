import { Op, type Envelope } from "../../protocol/index.ts";
import type { ConfChange, ConfState, GroupId, Message, NodeId, Role } from "../raft/index.ts";
import type { StateMachine } from "./state-machine.ts";
import { Wal } from "../storage/index.ts";
import type { PeerLinks } from "../transport/peer-links.ts";
import type { Logger } from "./logger.ts";
import type { NodeMetrics } from "./metrics.ts";
import { parseRaftBatch } from "./raft-codec.ts";
import { RaftGroup } from "./raft-group.ts";
import { everyOnGrid, nextGridInstant } from "./grid.ts";

/** Length of one Raft tick; election and heartbeat timeouts are whole numbers of ticks. */
export const TICK_MS = 10;
/**
 * A leader's read lease as a share of the election timeout. A follower ignores unforced votes for
 * at least (electionTicks - 1) ticks after it last heard from its leader; the rest of the timeout
 * covers tick rounding, a tick that fires a little early, and clock-rate drift (see read-lease.ts).
 */
export const LEASE_SHARE = 0.6;

/**
 * Idle beats a peer may miss before it counts as down: one late beat (a slow turn, a busy disk)
 * must not wake every quiet group and start elections.
 */
export const LIVENESS_BEATS = 3;

const ticks = (ms: number): number => Math.max(1, Math.round(ms / TICK_MS));

/** A leader's read lease for an election timeout of `electionTimeoutMs` (as the group counts it, in whole ticks). */
export function leaseReadMs(electionTimeoutMs: number): number {
  return Math.floor(LEASE_SHARE * ticks(electionTimeoutMs) * TICK_MS);
}

export interface RaftHostOptions {
  readonly nodeId: NodeId;
  readonly dataDir: string;
  readonly fsync: boolean;
  readonly voters: readonly NodeId[];
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  /**
   * The liveness beat to each peer while every group here is quiet (default: the heartbeat
   * interval). A peer counts as live for LIVENESS_BEATS of these (at least an election timeout)
   * after it was last heard from, or only the election timeout once its link has closed.
   */
  readonly idleBeatIntervalMs?: number;
  readonly snapshotThreshold: number;
  /** See RaftGroupOptions.commitNoticeDelayMs (default: COMMIT_NOTICE_DELAY_MS). */
  readonly commitNoticeDelayMs?: number;
  /** Whether leaders answer linearizable reads within a read lease (default true; see read-lease.ts). */
  readonly leaseReads?: boolean;
  readonly peers: PeerLinks;
  readonly log: Logger;
  readonly onConfChange?: (group: GroupId, cc: ConfChange, conf: ConfState) => void;
  readonly onRoleChange?: (group: GroupId, role: Role, leader: NodeId | null, term: number) => void;
  /** A storage failure (the WAL, or a group's Ready loop) that this node cannot survive; see RaftGroupOptions.onFatal. */
  readonly onFatal?: (err: Error) => void;
}

/**
 * Hosts this node's Raft groups over one WAL and one peer transport: drives their ticks from a
 * timer and routes RAFT batches from peers to the group each message names.
 */
export class RaftHost {
  readonly wal: Wal;
  readonly #o: RaftHostOptions;
  readonly #groups = new Map<GroupId, RaftGroup>();
  /** Groups retired in this process: the WAL's state as replayed at open is stale for them. */
  readonly #retired = new Set<GroupId>();
  /** The fast ticks' interval, or (slow) the timeout of a peer's liveness deadline before the next beat. */
  #ticker: NodeJS.Timeout | null = null;
  /** Stops the slow ticks, which run on the shared grid (see #arm). */
  #stopGrid: (() => void) | null = null;
  /** Whether the ticker runs slow: every group here is quiet (see #arm). */
  #slow = false;
  /** A tick is under way (it re-arms the ticker itself when it ends). */
  #inTick = false;
  #closed = false;
  #lastTickAt = 0;
  /** Ticks since start: heartbeats fall on multiples of the heartbeat interval. */
  #beat = 0;
  /** When each peer node was last heard from (any RAFT batch, an empty one included). */
  readonly #heardAt = new Map<NodeId, number>();
  /** When the link to each peer node last closed. */
  readonly #linkDownAt = new Map<NodeId, number>();
  /** When a RAFT batch was last sent to each peer node. */
  readonly #sentAt = new Map<NodeId, number>();
  /**
   * The nodes this one shares a group with: recomputed at the next tick after a group opens,
   * closes or changes membership, and every second in any case.
   */
  #peers: NodeId[] = [];
  #peersAt = -Infinity;
  /**
   * Node liveness for quiet groups (see src/raft/quiescence.ts): a peer is live while it was
   * heard from within the liveness window (see #liveUntil). Nodes send each other at least one
   * RAFT batch per heartbeat interval, or per idle beat when all their groups are quiet (an empty
   * one if nothing else goes), so this is one beat per pair of nodes, whatever the number of groups.
   */
  readonly #live = (id: NodeId): boolean => this.#now < this.#liveUntil(id);
  /** The clock of the tick under way (the liveness of every group's peers is judged against it). */
  #now = 0;

  readonly #idleBeatMs: number;
  /** How long a peer whose link is up counts as live after it was last heard from. */
  readonly #livenessMs: number;

  private constructor(o: RaftHostOptions, wal: Wal) {
    this.#o = o;
    this.wal = wal;
    this.#idleBeatMs = Math.max(o.heartbeatIntervalMs, o.idleBeatIntervalMs ?? o.heartbeatIntervalMs);
    this.#livenessMs = Math.max(o.electionTimeoutMs, LIVENESS_BEATS * this.#idleBeatMs);
  }

  static async open(o: RaftHostOptions): Promise<RaftHost> {
    const wal = await Wal.open(`${o.dataDir}/wal`, { fsync: o.fsync, onFailure: (err) => o.onFatal?.(err) });
    if (wal.recovery.truncatedBytes > 0) {
      o.log.warn({ segment: wal.recovery.segment, truncatedBytes: wal.recovery.truncatedBytes }, "cut a torn record from the end of the log (a crash mid-write)");
    }
    return new RaftHost(o, wal);
  }

  /**
   * Opens group `group` with `machine` as its state machine; a brand-new group starts with
   * `voters` (default: the node's configured voters) and `learners`.
   */
  async addGroup(group: GroupId, machine: StateMachine, voters: readonly NodeId[] = this.#o.voters, learners: readonly NodeId[] = []): Promise<RaftGroup> {
    const g = await RaftGroup.open({
      group,
      nodeId: this.#o.nodeId,
      bootstrapVoters: voters,
      bootstrapLearners: learners,
      reopen: this.#retired.has(group),
      wal: this.wal,
      machine,
      sender: { send: (to, msgs) => this.#sendRaft(to, msgs) },
      log: this.#o.log,
      electionTicks: ticks(this.#o.electionTimeoutMs),
      heartbeatTicks: ticks(this.#o.heartbeatIntervalMs),
      snapshotThreshold: this.#o.snapshotThreshold,
      catchUpEntries: Math.min(1000, Math.max(10, Math.floor(this.#o.snapshotThreshold / 2))),
      seed: seedOf(this.#o.nodeId, group),
      commitNoticeDelayMs: this.#o.commitNoticeDelayMs,
      leaseReadMs: this.#o.leaseReads === false ? 0 : leaseReadMs(this.#o.electionTimeoutMs),
      onConfChange: (cc, conf) => {
        this.#peersAt = -Infinity;
        this.#o.onConfChange?.(group, cc, conf);
      },
      onRoleChange: (role, leader, term) => this.#o.onRoleChange?.(group, role, leader, term),
      onFatal: this.#o.onFatal,
      onAwake: this.#groupAwake,
    });
    this.#groups.set(group, g);
    this.#peersAt = -Infinity;
    return g;
  }

  /** Closes group `id` on this node (its replica moved elsewhere); see RaftGroup.retire. */
  async retireGroup(id: GroupId): Promise<void> {
    const g = this.#groups.get(id);
    if (!g) return;
    this.#groups.delete(id);
    this.#peersAt = -Infinity;
    this.#retired.add(id);
    await g.retire();
  }

  groups(): IterableIterator<RaftGroup> {
    return this.#groups.values();
  }

  group(id: GroupId): RaftGroup | undefined {
    return this.#groups.get(id);
  }

  start(): void {
    this.#lastTickAt = performance.now();
    this.#arm(false);
  }

  /** A RAFT envelope from peer `from`. Bad batches are logged and dropped, never fatal. */
  onPeerMessage(from: NodeId, env: Envelope): void {
    if (env.type !== Op.RAFT) return;
    this.#heardAt.set(from, performance.now());
    let msgs: Message[];
    try {
      msgs = parseRaftBatch(env.body);
    } catch (err) {
      this.#o.log.warn({ peer: from, err: (err as Error).message }, "dropped a malformed RAFT batch");
      return;
    }
    for (const m of msgs) {
      if (m.from !== from || m.to !== this.#o.nodeId) {
        this.#o.log.warn({ peer: from, claimedFrom: m.from, to: m.to }, "dropped a RAFT message with a wrong sender or recipient");
        continue;
      }
      this.#groups.get(m.group)?.step(m);
    }
  }

  /**
   * The link to peer `id` closed: its process died (the kernel closes a killed process's
   * sockets), or the connection broke. Either way the idle beats that kept it live may have
   * stopped, so it is live only for an election timeout after it was last heard from: a killed
   * node is noticed as fast as with heartbeats, whatever the idle beat. Not sooner, since a leader
   * whose link merely broke may still hold a read lease that counts on its followers' votes
   * being withheld that long (see read-lease.ts).
   */
  peerLinkDown(id: NodeId): void {
    this.#linkDownAt.set(id, performance.now());
    // Slow ticks wait for the next beat, and the peer may be past its new deadline already: judge
    // it now (the tick re-arms for a deadline still ahead). Fast ticks judge it within TICK_MS.
    if (this.#slow && !this.#closed && !this.#inTick) this.#tick();
  }

  /**
   * A graceful stop's wait for the writes this node proposed (its own clients' and forwarded
   * ones): after the leadership handover they commit under the new leader and this replica,
   * still replicating, applies them and answers. Failing them instead would leave their clients
   * with an unknown outcome. At most `timeoutMs`.
   */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const busy = (): boolean => [...this.#groups.values()].some((g) => g.pending > 0);
    while (busy() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /**
   * Moves every leadership this node holds to the most caught-up voter `reachable` accepts and
   * waits (at most `timeoutMs`) for the moves: a graceful stop or a drain, so the cluster need not
   * wait an election timeout.
   */
  async handOverLeadership(reachable: (id: NodeId) => boolean, timeoutMs: number): Promise<{ handedOver: GroupId[]; stillLeading: GroupId[] }> {
    const led = [...this.#groups.values()].filter((g) => g.isLeader);
    const moving = led.filter((g) => {
      const to = g.mostCaughtUpVoter(reachable);
      if (to !== undefined) g.transferLeader(to);
      return to !== undefined;
    });
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline && moving.some((g) => g.isLeader)) await new Promise((r) => setTimeout(r, 10));
    return { handedOver: moving.filter((g) => !g.isLeader).map((g) => g.group), stillLeading: led.filter((g) => g.isLeader).map((g) => g.group) };
  }

  /** Each group's term, role and indexes, and the WAL's counters, into the node's gauges. */
  refreshGauges(m: NodeMetrics): void {
    for (const g of this.#groups.values()) {
      const s = g.status();
      const label = String(g.group);
      m.raftTerm.labels(label).set(s.term);
      m.raftIsLeader.labels(label).set(s.role === "leader" ? 1 : 0);
      m.raftQuiesced.labels(label).set(s.quiesced ? 1 : 0);
      m.raftCommitIndex.labels(label).set(s.commit);
      m.raftAppliedIndex.labels(label).set(g.applied);
      m.raftSnapshotIndex.labels(label).set(s.snapshotIndex);
    }
    const w = this.wal.stats();
    m.walFsyncs.set(w.fsyncs);
    m.walBatches.set(w.batches);
    m.walInlineBatches.set(w.inlineBatches);
    m.walBytes.set(w.bytes);
    m.walSegments.set(w.segments);
    m.walLastFsyncSeconds.set(w.lastFsyncMs / 1000);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#ticker) clearTimeout(this.#ticker);
    this.#stopGrid?.();
    await Promise.all([...this.#groups.values()].map((g) => g.stop()));
    await this.wal.close();
  }

  /**
   * A group woke between slow ticks (a message, a proposal, a read): its election timer and
   * heartbeats need the fast ticks now, not at the next idle beat, which may be far off.
   */
  readonly #groupAwake = (): void => {
    if (!this.#slow || this.#inTick || this.#closed) return;
    const now = performance.now();
    // The ticks of the slow stretch were not counted; the beat keeps wall-clock time.
    this.#beat += Math.floor((now - this.#lastTickAt) / TICK_MS);
    this.#lastTickAt = now;
    this.#arm(false);
  };

  #tick(): void {
    this.#inTick = true;
    try {
      this.#tickGroups();
    } finally {
      this.#inTick = false;
    }
  }

  #tickGroups(): void {
    // A blocked event loop delivers one late timer, not the missed ones; catch up (bounded) so
    // timeouts stay in wall-clock time, but never fire a burst that would start an election
    // just because this process was paused.
    const now = performance.now();
    const elapsed = Math.max(1, Math.floor((now - this.#lastTickAt) / TICK_MS));
    // A slow tick is one tick: only quiet groups (which count nothing) were expected to see it.
    const due = this.#slow ? 1 : Math.min(3, elapsed);
    this.#lastTickAt = now;
    this.#now = now;
    if (now - this.#peersAt >= 1000) {
      this.#peers = this.#groupPeers();
      this.#peersAt = now;
    }
    for (let i = 0; i < due; i++) {
      // One beat for every group: the groups this node leads heartbeat in the same tick, so each
      // peer gets them in one write (and answers in one).
      const beat = this.#beat++;
      for (const g of this.#groups.values()) g.tick(beat, this.#live);
      this.#beatPeers(beat);
    }
    // The beat keeps wall-clock time across a slow stretch (heartbeats stay aligned on it).
    this.#beat += elapsed - due;
    let quiet = this.#groups.size > 0;
    for (const g of this.#groups.values()) quiet &&= g.quiesced;
    this.#arm(quiet);
  }

  /**
   * Ticks every TICK_MS while some group here is awake. Once all are quiet, nothing counts ticks:
   * the next tick is due when a liveness beat is (one idle beat interval, on the shared grid so
   * it runs in the same turn as the node's other periodic work, and in phase with the peers'
   * beats) or when a live peer would stop being live, whichever comes first, so a dead peer is
   * noticed exactly as early. A group woken meanwhile (a message, a proposal, a read) gets the
   * fast ticks back at once (see #groupAwake).
   */
  #arm(slow: boolean): void {
    if (this.#closed) return;
    if (slow) {
      if (this.#ticker) clearTimeout(this.#ticker);
      this.#ticker = null;
      this.#stopGrid ??= everyOnGrid(this.#idleBeatMs, () => this.#tick());
      // The grid's own rule for the next beat (a deadline before it gets a timeout of its own).
      const beatAt = nextGridInstant(this.#idleBeatMs, this.#now);
      let next = Infinity;
      for (const id of this.#peers) {
        const deadline = this.#liveUntil(id);
        if (deadline > this.#now && deadline < beatAt) next = Math.min(next, deadline);
      }
      if (next !== Infinity) this.#ticker = setTimeout(() => this.#tick(), Math.max(1, Math.ceil(next - this.#now)));
    } else {
      this.#stopGrid?.();
      this.#stopGrid = null;
      if (this.#slow || this.#ticker === null) {
        // (A slow tick may leave a liveness timeout set.)
        if (this.#ticker) clearTimeout(this.#ticker);
        this.#ticker = setInterval(() => this.#tick(), TICK_MS);
      }
    }
    this.#slow = slow;
  }

  /**
   * Until when peer `id` counts as live: the liveness window after it was last heard from, or an
   * election timeout if its link closed since.
   */
  #liveUntil(id: NodeId): number {
    const heard = this.#heardAt.get(id) ?? -Infinity;
    const linkDown = (this.#linkDownAt.get(id) ?? -Infinity) >= heard;
    return heard + (linkDown ? this.#o.electionTimeoutMs : this.#livenessMs);
  }

  #sendRaft(to: NodeId, msgs: readonly Message[]): boolean {
    this.#sentAt.set(to, performance.now());
    return this.#o.peers.send(to, Op.RAFT, { msgs });
  }

  /**
   * An empty RAFT batch, the pair's liveness beat, to every peer node sent nothing for about an
   * interval (all the groups between the two are quiet): on slow ticks (about one per idle beat),
   * and mid-way through each interval on fast ones (so it never doubles a heartbeat about to go).
   */
  #beatPeers(beat: number): void {
    const beatTicks = ticks(this.#o.heartbeatIntervalMs);
    if (!this.#slow && beat % beatTicks !== Math.floor(beatTicks / 2)) return;
    const before = this.#now - (this.#slow ? this.#idleBeatMs / 2 : this.#o.heartbeatIntervalMs);
    for (const id of this.#peers) if ((this.#sentAt.get(id) ?? -Infinity) < before) this.#sendRaft(id, []);
  }

  #groupPeers(): NodeId[] {
    const peers = new Set<NodeId>();
    for (const g of this.#groups.values()) {
      const { voters, learners } = g.status().conf;
      for (const id of voters) peers.add(id);
      for (const id of learners) peers.add(id);
    }
    peers.delete(this.#o.nodeId);
    return [...peers];
  }
}

/** A per-node, per-group seed, so nodes draw different election timeouts. */
function seedOf(nodeId: string, group: number): number {
  let h = 2166136261 ^ group;
  for (let i = 0; i < nodeId.length; i++) h = Math.imul(h ^ nodeId.charCodeAt(i), 16777619);
  return (h ^ Date.now()) >>> 0;
}
