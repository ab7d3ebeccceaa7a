/**
 * One simulated server: a RawNode, its page-cache storage (the core's MemoryStorage), the durable
 * disk model, the hash chain and the real service machines (services.ts) — wired by the Ready
 * loop in the contract's order: write, fsync, send, apply, advance.
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
import { EntryKind, showValue, showVersion, type Reference } from "./reference.ts";
import { ServiceMachines, type ApplyOutcome } from "./services.ts";
import { StateMachine, bytesHash, decodeImage, encodeImage, type ServiceImage } from "./state-machine.ts";

/**
 * Checkpoints: at every applied index that is a multiple of this, every node compares a digest
 * of its machines' snapshot bytes with the other nodes' (as at every snapshot taken or restored)
 * and runs the full service checks (see {@link SimNode}).
 */
export const CHECKPOINT_EVERY = 32;

/** What a node needs from the cluster around it. */
export interface NodeEnv {
  readonly checkers: Checkers;
  readonly scenario: Scenario;
  /** Put a message on the simulated network (called only after the sender's fsync). */
  send(msg: Message): void;
  /** The reference model of the committed log; a node applying an entry first feeds it. */
  readonly reference: Reference;
  /** A client command (non-empty Normal entry) was applied for the first time anywhere, on `node`. */
  onFirstApply(node: NodeId, index: number, outcome: ApplyOutcome): void;
  /** ReadIndex answers handed out by `node`'s Ready. */
  onReadStates(node: NodeId, states: readonly ReadState[]): void;
  /** `node` has applied up to a read's index: the read `ctx` is answered from its machines now. */
  onServeRead(node: NodeId, ctx: string): void;
  /** Counters. */
  readonly stats: { snapshotsInstalled: number; snapshotsTaken: number; confChangesApplied: number; commandsApplied: number };
  /**
   * Run the lock/queue invariants and the queue model check on every node after every apply,
   * not only on the node that applies an entry first, at checkpoints and after restores.
   */
  readonly fullChecks?: boolean;
  /** Test-only sabotage: when set, `node` applies a corrupted version of entry `index`. */
  readonly corruptApply?: { readonly node: NodeId; readonly index: number } | undefined;
  /** Test-only sabotage: when set, `node`'s disk stores a corrupted version of entry `index`. */
  readonly corruptDisk?: { readonly node: NodeId; readonly index: number } | undefined;
  /** Test-only sabotage: when set, `node`'s service machines skip entry `index`. */
  readonly skipServiceApply?: { readonly node: NodeId; readonly index: number } | undefined;
}

const decoder = new TextDecoder();

/**
 * A simulated server. Survives crashes as an object; only `disk` survives as state.
 *
 * What it checks as it applies (each violation names the node and the index):
 * - every KV write: the key's value and revision equal the reference model's at that index;
 * - every lock or queue entry, on the node that applies it first (the one whose outcome the
 *   reference model and the clients see) — or on every node with `fullChecks`: the lock and queue
 *   invariants, and the queue's placement against the reference model;
 * - every {@link CHECKPOINT_EVERY}-th index, on every node: a digest of both machines' snapshot
 *   bytes against every other node's at that index, and all of the above;
 * - every snapshot taken (digest) and every restore (install or restart): the image's digest,
 *   that the restored machines serialize back to the same bytes, and all of the above.
 * Nodes that apply an index later than the first are thereby checked for equality with it.
 */
export class SimNode {
  readonly disk: DiskLog;
  raw: RawNode | undefined;
  live: MemoryStorage | undefined;
  sm = new StateMachine();
  /** The service machines, in step with `sm` (same applied index). */
  services = new ServiceMachines();
  /** This node's clock offset from global time, in ms (leaders stamp commands with their own clock). */
  clockSkewMs = 0;
  /** Reads whose read index is known, waiting for this node to apply up to it. Lost on a crash. */
  #reads: { ctx: string; index: number }[] = [];
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
    this.pending = undefined;
    this.#reads = [];
    if (snap.meta.index > 0) {
      const img = decodeImage(snap.data);
      this.sm = new StateMachine(img);
      this.services = this.#restoreServices(snap.meta.index, img.services!, "restart");
    } else {
      this.sm = new StateMachine();
      this.services = new ServiceMachines();
    }
    this.conf = snap.meta.conf;
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
      // As the daemon runs it (for its lease reads), whenever the lease's other half is on.
      holdVotesAtStart: s.checkQuorum,
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

  /** Kill the process: the RawNode, page cache, un-synced Ready, machines and pending reads are lost. */
  crash(): void {
    this.raw = undefined;
    this.live = undefined;
    this.pending = undefined;
    this.lastStatus = undefined;
    this.#reads = [];
  }

  /** A read got read index `index` here: answer it once this node has applied that far. */
  queueRead(ctx: string, index: number): void {
    this.#reads.push({ ctx, index });
  }

  #serveReads(): void {
    if (this.#reads.length === 0) return;
    const applied = this.sm.index;
    const waiting: { ctx: string; index: number }[] = [];
    for (const r of this.#reads) {
      if (r.index <= applied) this.env.onServeRead(this.id, r.ctx);
      else waiting.push(r);
    }
    this.#reads = waiting;
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
    this.#serveReads();

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
    this.services = this.#restoreServices(index, img.services!, "install");
    this.env.stats.snapshotsInstalled++;
  }

  /**
   * Restore the machines from a snapshot's service image with their real `restore()`, then
   * check them: the image must be the state every node had at `index` (digest registry), the
   * restored machines must serialize back to the same bytes, satisfy the lock and queue
   * invariants, and hold what the reference model says the log holds at `index`.
   */
  #restoreServices(index: number, img: ServiceImage, why: string): ServiceMachines {
    const { checkers } = this.env;
    const digest = bytesHash(img.cluster, img.queue);
    checkers.observeStateDigest(this.id, index, digest, `snapshot image (${why})`);
    let m: ServiceMachines;
    try {
      m = ServiceMachines.restore(img);
    } catch (err) {
      throw checkers.fail(Invariant.ServiceInvariant, [this.id], `${this.id} could not restore its machines from the snapshot at ${index} (${why}): ${(err as Error).message}`);
    }
    // Restoring is deterministic (the digest checks above and below hold it to that), so an image
    // checked once need not be checked again when a node restarts from it once more.
    if (!checkers.firstRestoreOf(index, digest)) return m;
    const again = m.snapshot();
    if (bytesHash(again.cluster, again.queue) !== digest) {
      checkers.fail(Invariant.StateDigest, [this.id],
        `${this.id}'s machines restored from the snapshot at ${index} (${why}) serialize to different bytes than the snapshot`);
    }
    this.#checkInvariants(m, index, true, true);
    this.#checkKvState(m, index);
    this.#checkQueueModel(m, index);
    return m;
  }

  #checkInvariants(m: ServiceMachines, index: number, locks: boolean, queue: boolean): void {
    try {
      if (locks) m.checkLocks();
      if (queue) m.checkQueue();
    } catch (err) {
      this.env.checkers.fail(Invariant.ServiceInvariant, [this.id], `${this.id} after applying index ${index}: ${(err as Error).message}`);
    }
  }

  /** The whole KV register against the reference model at `index`. */
  #checkKvState(m: ServiceMachines, index: number): void {
    const want = this.env.reference.kvStateAt(index);
    for (const key of want.keys()) this.#checkKey(m, key, index);
    if (m.cluster.kv.size !== want.size) {
      this.env.checkers.fail(Invariant.ReferenceModel, [this.id],
        `${this.id}'s KV register holds ${m.cluster.kv.size} keys at index ${index}; the committed log leaves ${want.size}`);
    }
  }

  /** One key's value and revision against the reference model at `index`. */
  #checkKey(m: ServiceMachines, key: string, index: number): void {
    const want = this.env.reference.kvAt(key, index);
    const got = m.cluster.kv.get(key);
    const value = got === null ? null : decoder.decode(got.value);
    const revision = got === null ? 0 : got.revision;
    if (value !== want.value || (want.value !== null && revision !== want.index)) {
      this.env.checkers.fail(Invariant.ReferenceModel, [this.id],
        `${this.id} holds ${key}=${showValue(value)} (revision ${revision}) at index ${index}; the committed log says ${showVersion(want)}`);
    }
  }

  /** The queue's placement against the reference model at `index`. */
  #checkQueueModel(m: ServiceMachines, index: number): void {
    const got = m.queueDigest();
    const want = this.env.reference.queueDigestAt(index);
    if (got !== want) {
      this.env.checkers.fail(Invariant.ReferenceModel, [this.id],
        `${this.id}'s queue at index ${index} differs from the reference model of the committed log: ${describeQueueDiff(got, want)}`);
    }
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
    const ref = this.env.reference;
    const first = e.index > ref.index;
    if (first) {
      try {
        ref.ingest(applied);
      } catch (err) {
        checkers.fail(Invariant.StateMachineSafety, [this.id], `${this.id} applied an entry at ${e.index} that is no client command: ${(err as Error).message}`);
      }
    }
    if (e.type === EntryType.ConfChange) {
      this.conf = this.raw!.applyConfChange(decodeConfChange(e.data));
      this.live!.setConfState(this.conf);
      this.env.stats.confChangesApplied++;
    } else if (e.type === EntryType.Normal) {
      const m = this.services;
      let outcome: ApplyOutcome;
      const skip = this.env.skipServiceApply;
      try {
        outcome = skip && skip.node === this.id && skip.index === e.index ? { tag: null, result: null, events: [] } : m.apply(applied);
      } catch (err) {
        throw checkers.fail(Invariant.ServiceInvariant, [this.id], `${this.id} applying index ${e.index}: ${(err as Error).message}`);
      }
      if (isCommand) {
        this.env.stats.commandsApplied++;
        const kind = ref.kindAt(e.index);
        if (kind === EntryKind.Kv) this.#checkKey(m, ref.kvKeyAt(e.index)!, e.index);
        else if (first || this.env.fullChecks) {
          if (kind === EntryKind.Lock) this.#checkInvariants(m, e.index, true, false);
          else if (kind === EntryKind.Queue) {
            this.#checkInvariants(m, e.index, false, true);
            this.#checkQueueModel(m, e.index);
          }
        }
        if (first) this.env.onFirstApply(this.id, e.index, outcome);
      }
    }
    if (e.index % CHECKPOINT_EVERY === 0) {
      const img = this.services.snapshot();
      checkers.observeStateDigest(this.id, e.index, bytesHash(img.cluster, img.queue), "applied");
      this.#checkInvariants(this.services, e.index, true, true);
      this.#checkQueueModel(this.services, e.index);
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
    const services = this.services.snapshot();
    this.env.checkers.observeStateDigest(this.id, index, bytesHash(services.cluster, services.queue), "snapshot taken");
    const snap = live.createSnapshot(index, this.conf, encodeImage(this.sm.image(), services));
    const compactIndex = Math.max(0, index - keep);
    // Page cache and disk may have different compaction points (a restart rebuilds the cache
    // from the snapshot only); both calls are no-ops below their own point.
    live.compact(compactIndex);
    this.disk.compact(snap, compactIndex);
    this.env.stats.snapshotsTaken++;
  }
}

/** The first message that differs between two queue digests (ServiceMachines.queueDigest format). */
function describeQueueDiff(got: string, want: string): string {
  const [gc, gm = ""] = got.split("|");
  const [wc, wm = ""] = want.split("|");
  if (gc !== wc) return `clock ${gc}, model ${wc}`;
  const g = new Map(gm.split(",").filter(Boolean).map((x) => [x.split(":")[0]!, x]));
  const w = new Map(wm.split(",").filter(Boolean).map((x) => [x.split(":")[0]!, x]));
  for (const [id, x] of w) {
    if (!g.has(id)) return `message ${id} (${x}: id:queue:state:deliveries:visibleAt) is missing, though the log neither acked nor purged it`;
    if (g.get(id) !== x) return `message ${id} is ${g.get(id)}, the model says ${x} (id:queue:state:deliveries:visibleAt)`;
  }
  for (const [id, x] of g) if (!w.has(id)) return `message ${id} (${x}) is present, though the log acked, purged or never enqueued it`;
  return `${got} vs ${want}`;
}

/** A deliberately wrong version of `data` (test sabotage only). */
function corrupt(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 1);
  out.set(data);
  out[data.length] = 0x21;
  return out;
}
