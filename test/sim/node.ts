/**
 * One simulated server: a RawNode, its page-cache storage (the core's MemoryStorage), the durable
 * disk model, and the tiny state machine — wired by the Ready loop in the contract's order:
 * write, fsync, send, apply, advance.
 *
 * The Ready loop is split in two halves so that a crash can land between them: {@link SimNode.writeReady}
 * puts the Ready's writes into the page cache only, and {@link SimNode.syncReady} makes them
 * durable and only *then* sends the messages. A crash in between loses the un-synced writes —
 * harmless, because nothing that depends on them was announced.
 */
import { MemoryStorage } from "../../src/raft/memory-storage.ts";
import { RawNode, decodeConfChange, type RaftStatus } from "../../src/raft/raw-node.ts";
import {
  EntryType,
  Role,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type Ready,
  type ReadState,
} from "../../src/raft/types.ts";
import { Invariant, type Checkers } from "./checkers.ts";
import { DiskLog, ReadyContractError } from "./disk.ts";
import type { Prng } from "./prng.ts";
import type { Scenario } from "./scenario.ts";
import { StateMachine, decodeImage, encodeImage } from "./state-machine.ts";

/** What a node needs from the cluster around it. */
export interface NodeEnv {
  readonly checkers: Checkers;
  readonly scenario: Scenario;
  /** Put a message on the simulated network (called only after the sender's fsync). */
  send(msg: Message): void;
  /** A client command (non-empty Normal entry) was applied on `node`. */
  onApplyCommand(node: NodeId, command: string, index: number): void;
  /** ReadIndex answers handed out by `node`'s Ready. */
  onReadStates(node: NodeId, states: readonly ReadState[]): void;
  /** Counters. */
  readonly stats: { snapshotsInstalled: number; snapshotsTaken: number; confChangesApplied: number };
  /** Test-only sabotage: when set, `node` applies a corrupted version of entry `index`. */
  readonly corruptApply?: { readonly node: NodeId; readonly index: number } | undefined;
  /** Test-only sabotage: when set, `node`'s disk stores a corrupted version of entry `index`. */
  readonly corruptDisk?: { readonly node: NodeId; readonly index: number } | undefined;
}

const decoder = new TextDecoder();

/** A simulated server. Survives crashes as an object; only `disk` survives as state. */
export class SimNode {
  readonly disk: DiskLog;
  raw: RawNode | undefined;
  live: MemoryStorage | undefined;
  sm = new StateMachine();
  /** Membership as of `sm.index` (what a snapshot taken now must carry). */
  conf: ConfState;
  /** The Ready written to the page cache but not yet fsynced. */
  pending: Ready | undefined;
  /** Step at which a crashed node comes back. */
  downUntil = 0;
  incarnations = 0;
  /** Highest commit index seen from this incarnation's RawNode (it must never go down). */
  #commitSeen = 0;
  /** Highest commit index ever made durable (restarts must not fall below it). */
  durableCommit = 0;
  /** Last role/term seen, so the cluster can find leaders without asking every node again. */
  lastStatus: RaftStatus | undefined;

  constructor(
    readonly id: NodeId,
    bootstrap: ConfState,
    readonly env: NodeEnv,
    readonly rng: Prng,
  ) {
    this.disk = new DiskLog(bootstrap);
    this.conf = bootstrap;
  }

  /** Whether the process is running. */
  get isUp(): boolean {
    return this.raw !== undefined;
  }

  /**
   * Boot (or reboot) from the durable state: page cache rebuilt from disk, state machine restored
   * from the snapshot, and the RawNode told that exactly the snapshot is applied — it will hand out
   * the committed entries after it again, which replays them into the fresh state machine.
   */
  start(): void {
    const d = this.disk;
    const snap = d.snapshot;
    const live = new MemoryStorage(d.bootstrapConf);
    if (snap.meta.index > 0) live.applySnapshot(snap);
    const tail = d.entries.filter((e) => e.index > snap.meta.index);
    live.append(tail);
    live.setHardState(d.hardState);
    this.live = live;
    this.sm = new StateMachine(snap.meta.index > 0 ? decodeImage(snap.data) : undefined);
    this.conf = snap.meta.conf;
    this.pending = undefined;
    this.incarnations++;
    const s = this.env.scenario;
    this.raw = new RawNode({
      id: this.id,
      group: 0,
      electionTicks: s.electionTicks,
      heartbeatTicks: s.heartbeatTicks,
      storage: live,
      rng: this.rng.fork(),
      applied: snap.meta.index,
      preVote: s.preVote,
      checkQuorum: s.checkQuorum,
      maxMsgBytes: s.maxMsgBytes,
      maxInflightMsgs: s.maxInflightMsgs,
      snapshotChunkBytes: s.snapshotChunkBytes,
    });
    this.#commitSeen = 0;
    const st = this.observe();
    // Invariant: a restarted node never forgets a commit index it had made durable.
    if (st.commit < this.durableCommit) {
      this.env.checkers.fail(
        Invariant.CommitMonotonic,
        [this.id],
        `${this.id} restarted with commit ${st.commit} below its persisted commit ${this.durableCommit}`,
      );
    }
  }

  /** Kill the process: the RawNode, page cache, un-synced Ready and state machine are lost. */
  crash(): void {
    this.raw = undefined;
    this.live = undefined;
    this.pending = undefined;
    this.lastStatus = undefined;
  }

  /**
   * Read the core's status and feed the history checkers: Election Safety (a leader at a term)
   * and commit monotonicity within this incarnation. Called after every call into the core.
   */
  observe(): RaftStatus {
    const st = this.raw!.status();
    this.lastStatus = st;
    if (st.role === Role.Leader) this.env.checkers.observeLeader(this.id, st.term);
    if (st.commit < this.#commitSeen) {
      this.env.checkers.fail(Invariant.CommitMonotonic, [this.id], `${this.id} commit went from ${this.#commitSeen} to ${st.commit}`);
    }
    this.#commitSeen = st.commit;
    return st;
  }

  /** First half of the Ready loop: take a Ready and write it to the page cache (not durable yet). */
  writeReady(): void {
    const raw = this.raw;
    if (!raw || this.pending || !raw.hasReady()) return;
    const rd = raw.ready();
    const live = this.live!;
    if (rd.snapshot && rd.snapshot.meta.index > 0) live.applySnapshot(rd.snapshot);
    live.append(rd.entries);
    if (rd.hardState) live.setHardState(rd.hardState);
    this.pending = rd;
  }

  /**
   * Second half: fsync (the disk model), then send, apply, advance — in that order, because a
   * vote or an append must be durable before it is announced.
   */
  syncReady(): void {
    const rd = this.pending;
    if (!rd) return;
    this.pending = undefined;
    const { checkers } = this.env;
    try {
      const sab = this.env.corruptDisk;
      const toDisk = sab && sab.node === this.id
        ? { ...rd, entries: rd.entries.map((e) => (e.index === sab.index ? { ...e, data: corrupt(e.data) } : e)) }
        : rd;
      this.disk.sync(
        toDisk,
        (e, hash) => checkers.observeDurableEntry(this.id, e.index, e.term, hash),
        (index, term, hash) => checkers.observeDurableEntry(this.id, index, term, hash),
      );
    } catch (err) {
      if (err instanceof ReadyContractError) checkers.fail(Invariant.ReadyContract, [this.id], err.message);
      throw err;
    }
    this.#checkDurableCommit();

    for (const m of rd.messages) this.env.send(m);

    if (rd.snapshot && rd.snapshot.meta.index > 0) this.#installSnapshot(rd.snapshot.meta.index, rd.snapshot.data, rd.snapshot.meta.conf);
    for (const e of rd.committedEntries) this.#apply(e);
    if (rd.readStates.length > 0) this.env.onReadStates(this.id, rd.readStates);

    this.raw!.advance(rd);
    this.observe();
  }

  /** The persisted commit index: never decreasing, and its prefix must agree across nodes. */
  #checkDurableCommit(): void {
    const hs = this.disk.hardState;
    const { checkers } = this.env;
    if (hs.commit < this.durableCommit) {
      checkers.fail(Invariant.CommitMonotonic, [this.id], `${this.id} persisted commit went from ${this.durableCommit} to ${hs.commit}`);
    }
    if (hs.commit === this.durableCommit) return;
    this.durableCommit = hs.commit;
    if (hs.commit > this.disk.lastIndex) {
      checkers.fail(Invariant.ReadyContract, [this.id], `${this.id} persisted commit ${hs.commit} beyond its durable last index ${this.disk.lastIndex}`);
    }
    const hash = this.disk.hashAt(hs.commit);
    if (hash !== undefined) checkers.observeCommit(this.id, hs.commit, hs.term, hash);
  }

  #installSnapshot(index: number, data: Uint8Array, conf: ConfState): void {
    const { checkers } = this.env;
    if (index <= this.sm.index) {
      checkers.fail(Invariant.StateMachineSafety, [this.id], `${this.id} handed snapshot ${index} at or below its applied index ${this.sm.index}`);
    }
    const img = decodeImage(data);
    this.sm = new StateMachine(img);
    this.conf = conf;
    checkers.observeApply(this.id, index, img.hash);
    this.env.stats.snapshotsInstalled++;
  }

  #apply(e: Entry): void {
    const { checkers } = this.env;
    // Invariant: entries are applied exactly once, in index order, with no gaps.
    if (e.index !== this.sm.index + 1) {
      checkers.fail(Invariant.StateMachineSafety, [this.id], `${this.id} handed committed entry ${e.index} after applying ${this.sm.index}`);
    }
    const isCommand = e.type === EntryType.Normal && e.data.length > 0;
    const sab = this.env.corruptApply;
    const applied = sab && sab.node === this.id && sab.index === e.index ? { ...e, data: corrupt(e.data) } : e;
    this.sm.apply(applied, isCommand);
    checkers.observeApply(this.id, e.index, this.sm.hash);
    if (e.type === EntryType.ConfChange) {
      this.conf = this.raw!.applyConfChange(decodeConfChange(e.data));
      this.live!.setConfState(this.conf);
      this.env.stats.confChangesApplied++;
    } else if (isCommand) {
      this.env.onApplyCommand(this.id, decoder.decode(e.data).split("|")[0]!, e.index);
    }
  }

  /**
   * Take a snapshot of the state machine at its applied index and compact the log, keeping `keep`
   * entries behind it so that both "catch up from the log" and "needs a snapshot" happen.
   */
  maybeSnapshot(keep: number): void {
    const live = this.live;
    if (!live || this.pending) return;
    const index = this.sm.index;
    if (index <= live.snapshot().meta.index || index > this.disk.lastIndex) return;
    const snap = live.createSnapshot(index, this.conf, encodeImage(this.sm.image()));
    const compactIndex = Math.max(0, index - keep);
    // Page cache and disk may have different compaction points (a restart rebuilds the cache
    // from the snapshot only); both calls are no-ops below their own point.
    live.compact(compactIndex);
    this.disk.compact(snap, compactIndex);
    this.env.stats.snapshotsTaken++;
  }
}

/** A deliberately wrong version of `data` (test sabotage only). */
function corrupt(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 1);
  out.set(data);
  out[data.length] = 0x21;
  return out;
}
