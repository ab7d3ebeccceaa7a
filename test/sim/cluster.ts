/**
 * The simulated cluster: nodes, network, clock, clients, fault injector, checkers and the
 * reference model of the committed log, advanced one step at a time. Everything random comes
 * from forked streams of the one seed.
 */
import type { RaftStatus } from "../../src/raft/raw-node.ts";
import { ConfChangeType, MessageType, Role, type Message, type NodeId, type ReadState } from "../../src/raft/types.ts";
import { Checkers, Invariant } from "./checkers.ts";
import { SimClock } from "./clock.ts";
import { SimNetwork } from "./network.ts";
import { SimNode, type NodeEnv } from "./node.ts";
import { Prng } from "./prng.ts";
import { Reference, showValue, showVersion } from "./reference.ts";
import type { Scenario } from "./scenario.ts";
import { Tag, encodeEntry, type SimCommand } from "./services.ts";
import { KV_KEYS, Workload } from "./workload.ts";

/** Simulated milliseconds per step: the unit of the `now` leaders stamp into commands. */
export const MS_PER_STEP = 50;
/** A node's clock runs up to this far ahead of global time (so a new leader's clock may lag). */
const CLOCK_SKEW_MS_MAX = 200;
/** The leader proposes a due `expire` at most once per this many steps (per machine). */
const EXPIRE_EVERY = 10;
/** The KV key of the liveness phase's probes. */
const PROBE_KEY = "live";
/** Test-only ways to break the system on purpose, proving the checkers can fail. */
export interface Sabotage {
  /** This node answers every (Pre)Vote request with a grant: a second vote in the same term. */
  readonly forgeVotesFrom?: NodeId;
  /** This node applies a corrupted version of the entry at this index. */
  readonly corruptApply?: { readonly node: NodeId; readonly index: number };
  /** This node's disk silently stores a corrupted version of the entry at this index. */
  readonly corruptDisk?: { readonly node: NodeId; readonly index: number };
  /** Followers answer reads from their local commit index instead of running ReadIndex (stale reads). */
  readonly localReads?: boolean;
  /**
   * Followers answer KV reads at once from their own machines, without ReadIndex (stale values).
   * Only the value checker can catch this: no read index is ever produced.
   */
  readonly staleValueReads?: boolean;
  /** This node's service machines skip the entry at this index (its hash chain does not). */
  readonly skipServiceApply?: { readonly node: NodeId; readonly index: number };
}

/** Run counters, printed in the summary. */
export interface SimStats {
  steps: number;
  proposals: number;
  commandsApplied: number;
  crashes: number;
  partitions: number;
  transfers: number;
  confChangesProposed: number;
  confChangesApplied: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  readsIssued: number;
  readsChecked: number;
  /** Reads answered with a value from a node's KV register, checked against the reference model. */
  valueReads: number;
  /** Client commands accepted by a node, by service (expires proposed by leaders not counted). */
  kvCommands: number;
  lockCommands: number;
  queueCommands: number;
  expiresProposed: number;
}

/** Steps (not necessarily consecutive) in which a link may overflow before it counts as a storm. */
const STORM_STEPS = 25;

/**
 * A pending read of a KV key: its read index must be ≥ every index acknowledged before it was
 * issued, and the value it returns must be the key's value at some index from there on.
 */
interface PendingRead {
  readonly node: NodeId;
  readonly minIndex: number;
  readonly key: string;
  /** A read index arrived and the node will answer once it has applied that far. */
  queued: boolean;
}

/** The whole simulated world for one seed. */
export class Cluster {
  readonly nodes: SimNode[] = [];
  readonly byId = new Map<NodeId, SimNode>();
  readonly clock: SimClock;
  readonly network: SimNetwork;
  readonly checkers: Checkers;
  readonly stats: SimStats = {
    steps: 0, proposals: 0, commandsApplied: 0, crashes: 0, partitions: 0, transfers: 0,
    confChangesProposed: 0, confChangesApplied: 0, snapshotsTaken: 0, snapshotsInstalled: 0,
    readsIssued: 0, readsChecked: 0, valueReads: 0, kvCommands: 0, lockCommands: 0, queueCommands: 0, expiresProposed: 0,
  };
  /** Whether crashes, partitions, transfers and membership changes are injected. */
  faultsEnabled = true;
  /** Liveness probes (see {@link propose}) applied anywhere (the liveness phase waits on these). */
  readonly appliedCommands = new Set<string>();
  /** What the committed log holds, built from the log alone. */
  readonly reference = new Reference((key, value) => {
    if (key === PROBE_KEY) this.appliedCommands.add(value);
  });

  readonly #faultRng: Prng;
  readonly #clientRng: Prng;
  readonly #reads = new Map<string, PendingRead>();
  readonly #workload: Workload;
  #partitionUntil = 0;
  #nextRead = 1;
  #lastLockExpire = -Infinity;
  #lastQueueExpire = -Infinity;
  /** Per directed link: how many distinct steps overflowed its buffer, and the last one. */
  readonly #overflows = new Map<string, { steps: number; last: number }>();
  /** The node the membership operator is cycling (remove → learner → voter). */
  #confTarget: NodeId | undefined;

  /**
   * @param replay the command that replays this run (quoted in violation messages).
   * @param fullChecks run the service checks on every node after every apply (see NodeEnv).
   */
  constructor(
    readonly scenario: Scenario,
    readonly sabotage: Sabotage = {},
    replay?: string,
    fullChecks = false,
  ) {
    const root = new Prng(scenario.seed);
    this.clock = new SimClock(root.fork(), scenario.tickSkipRate);
    this.network = new SimNetwork(root.fork(), scenario);
    this.#faultRng = root.fork();
    this.#clientRng = root.fork();
    this.checkers = new Checkers(scenario.seed, () => this.clock.now, replay);
    const ids = Array.from({ length: scenario.nodes }, (_, i) => `n${i + 1}`);
    const bootstrap = { voters: ids, learners: [] };
    const env: NodeEnv = {
      checkers: this.checkers,
      scenario,
      send: (m) => this.#send(m),
      reference: this.reference,
      onFirstApply: (_node, _index, outcome) => this.#workload.learn(outcome),
      onReadStates: (node, states) => this.#checkReads(node, states),
      onServeRead: (node, ctx) => this.#serveRead(node, ctx),
      stats: this.stats,
      fullChecks,
      corruptApply: sabotage.corruptApply,
      corruptDisk: sabotage.corruptDisk,
      skipServiceApply: sabotage.skipServiceApply,
    };
    for (const id of ids) {
      const n = new SimNode(id, bootstrap, env, root.fork());
      this.nodes.push(n);
      this.byId.set(id, n);
    }
    // Streams forked after the nodes' (so adding them did not shift any older stream).
    this.#workload = new Workload(root.fork());
    const skews = root.fork();
    for (const n of this.nodes) n.clockSkewMs = skews.nextInt(CLOCK_SKEW_MS_MAX + 1);
    for (const n of this.nodes) n.start();
  }

  /** Messages leave a node only through here (after its fsync). Sabotage hooks in here too. */
  #send(m: Message): void {
    let msg = m;
    const forger = this.sabotage.forgeVotesFrom;
    if (forger !== undefined && msg.from === forger && msg.reject &&
        (msg.type === MessageType.VoteResp || msg.type === MessageType.PreVoteResp)) {
      msg = { ...msg, reject: false };
    }
    const now = this.clock.now;
    const dropped = this.network.send(msg, now);
    if (dropped !== "overflow") return;
    // A full link buffer drops the message (as etcd's transport does). A burst that fills it for a
    // few steps is legal (measured: at most ~11 steps in 10,000 correct runs); a link that keeps
    // filling up is a storm the core feeds (measured: thousands of steps, never recovering).
    const link = `${msg.from}>${msg.to}`;
    const o = this.#overflows.get(link) ?? { steps: 0, last: -1 };
    if (o.last !== now) {
      o.steps++;
      o.last = now;
      this.#overflows.set(link, o);
    }
    if (o.steps >= STORM_STEPS && !this.scenario.tolerateStorms) {
      this.checkers.fail(Invariant.BoundedTraffic, [msg.from, msg.to],
        `link ${msg.from}→${msg.to} overflowed its ${this.scenario.linkBufferMax}-message buffer in ${STORM_STEPS} steps ` +
        `(a message storm; last message type ${msg.type}, index ${msg.index}${msg.reject ? ", reject" : ""})`);
    }
  }

  /**
   * One step: time advances, faults may strike, every live node ticks, due messages are delivered,
   * clients act, then each node runs its Ready loop — with a possible crash between write and
   * fsync — and the checkers run.
   */
  step(): void {
    this.clock.advance();
    this.stats.steps++;
    const now = this.clock.now;
    if (this.faultsEnabled) this.#maybePartition();
    for (const n of this.nodes) if (!n.isUp && n.downUntil <= now) n.start();

    for (const n of this.nodes) {
      if (n.raw && this.clock.shouldTick()) {
        n.raw.tick();
        n.observe();
      }
    }
    for (const m of this.network.takeDue(now, (msg) => this.#onPartitionDrop(msg))) {
      const n = this.byId.get(m.to);
      if (!n?.raw) continue; // Delivered to a dead process: gone.
      n.raw.step(m);
      n.observe();
    }

    this.#client();
    if (this.faultsEnabled) {
      this.#maybeTransfer();
      this.#maybeConfChange();
    }
    this.#maybeSnapshot();

    for (const n of this.nodes) n.writeReady();
    // A crash here loses the page-cache writes of the node's un-synced Ready.
    if (this.faultsEnabled) this.#maybeCrash();
    for (const n of this.nodes) n.syncReady();

    this.#checkLeaderCompleteness();
  }

  /** The sender's transport notices a broken link: tell its core, as a real transport would. */
  #onPartitionDrop(msg: Message): void {
    const sender = this.byId.get(msg.from);
    if (!sender?.raw) return;
    sender.raw.reportUnreachable(msg.to);
    if (msg.type === MessageType.Snap) sender.raw.reportSnapshot(msg.to, false);
    sender.observe();
  }

  /** The live node that believes it leads at the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const n of this.nodes) {
      const st = n.lastStatus;
      if (n.raw && st && st.role === Role.Leader && st.term > bestTerm) {
        best = n;
        bestTerm = st.term;
      }
    }
    return best;
  }

  #upNodes(): SimNode[] {
    return this.nodes.filter((n) => n.isUp);
  }

  /** Leader Completeness: every current leader holds every entry committed by its term. */
  #checkLeaderCompleteness(): void {
    for (const n of this.nodes) {
      const st = n.lastStatus;
      if (!n.raw || !st || st.role !== Role.Leader) continue;
      const c = this.checkers.committedBefore(st.term);
      if (c <= n.disk.baseIndex) continue; // Covered by its snapshot (checked when installed/applied).
      const hash = n.disk.hashAt(c);
      if (hash === undefined) {
        this.checkers.fail(Invariant.LeaderCompleteness, [n.id],
          `leader ${n.id} of term ${st.term} lacks committed index ${c} (durable last index ${n.disk.lastIndex})`);
      }
      if (hash !== this.checkers.committedHash(c)) {
        this.checkers.fail(Invariant.LeaderCompleteness, [n.id],
          `leader ${n.id} of term ${st.term} holds a different entry/prefix at committed index ${c}`);
      }
    }
  }

  /** `node`'s clock in ms: global time plus its skew (what it stamps into commands it proposes). */
  nodeNow(node: SimNode): number {
    return this.clock.now * MS_PER_STEP + node.clockSkewMs;
  }

  /**
   * Clients: KV, lock and queue commands (mostly to the leader, sometimes to a follower) and
   * linearizable KV reads through ReadIndex at whichever node they talk to.
   */
  #client(): void {
    const r = this.#clientRng;
    const s = this.scenario;
    // Background writes stop in the liveness phase: convergence is judged against a quiet log,
    // not a race between a slow learner's catch-up and new load.
    // A proposal slot goes to the leader's due `expire` if it has one, else to a client command:
    // the log grows at the scenario's rate whatever the mix.
    if (r.chance(s.proposeRate) && this.faultsEnabled && !this.#maybeExpire()) this.#proposeClient();
    if (r.chance(s.readRate)) {
      const target = this.#clientTarget();
      if (target) {
        const ctx = `r${this.#nextRead++}`;
        // Every index applied anywhere so far has been acknowledged to some client.
        this.#reads.set(ctx, { node: target.id, minIndex: this.checkers.maxAppliedIndex, key: r.pick(KV_KEYS), queued: false });
        this.stats.readsIssued++;
        const st = target.lastStatus;
        const follower = st !== undefined && st.role !== Role.Leader;
        if (this.sabotage.staleValueReads && follower) {
          this.#serveRead(target.id, ctx);
        } else if (this.sabotage.localReads && follower) {
          this.#checkReads(target.id, [{ context: ctx, index: st.commit }]);
        } else {
          target.raw!.readIndex(ctx);
          target.observe();
        }
      }
    }
  }

  /** Propose the workload's next command on a likely leader, stamped with that node's clock. */
  #proposeClient(): void {
    const target = this.#clientTarget();
    if (!target) return;
    const now = this.nodeNow(target);
    const locks = target.services.cluster.locks;
    const cmd = this.#workload.next(now, (id) => (locks.session(id)?.expiresAt ?? 0) > now, this.reference.queueSize);
    if (this.#proposeOn(target, cmd)) {
      if (cmd.tag === Tag.Queue) this.stats.queueCommands++;
      else if (cmd.cmd.op === "put" || cmd.cmd.op === "delete") this.stats.kvCommands++;
      else this.stats.lockCommands++;
    }
  }

  #proposeOn(target: SimNode, cmd: SimCommand): boolean {
    const res = target.raw!.propose(encodeEntry(cmd));
    target.observe();
    if (res.ok) this.stats.proposals++;
    return res.ok;
  }

  /**
   * Propose a liveness probe — a KV put of `value` under the probe key — on a likely leader.
   * Returns whether it was accepted; {@link appliedCommands} gets `value` once it is applied.
   */
  propose(value: string): boolean {
    const target = this.#clientTarget();
    if (!target) return false;
    return this.#proposeOn(target, { tag: Tag.Cluster, cmd: { op: "put", key: PROBE_KEY, value: new TextEncoder().encode(value) } });
  }

  /**
   * The leader proposes `expire` once its clock passes the earliest deadline its lock or queue
   * machine holds (as the services' leaders do), at most once per {@link EXPIRE_EVERY} steps per
   * machine. Returns whether it proposed one.
   */
  #maybeExpire(): boolean {
    const leader = this.leader();
    if (!leader) return false;
    const now = this.nodeNow(leader);
    const step = this.clock.now;
    const lockDue = leader.services.cluster.locks.nextDeadline();
    if (lockDue !== null && lockDue <= now && step - this.#lastLockExpire >= EXPIRE_EVERY) {
      this.#lastLockExpire = step;
      if (this.#proposeOn(leader, { tag: Tag.Cluster, cmd: { op: "expire", now } })) this.stats.expiresProposed++;
      return true;
    }
    const queueDue = leader.services.queue.nextDeadline();
    if (queueDue !== null && queueDue <= now && step - this.#lastQueueExpire >= EXPIRE_EVERY) {
      this.#lastQueueExpire = step;
      if (this.#proposeOn(leader, { tag: Tag.Queue, cmd: { op: "expire", now } })) this.stats.expiresProposed++;
      return true;
    }
    return false;
  }

  #clientTarget(): SimNode | undefined {
    const r = this.#clientRng;
    const leader = this.leader();
    if (leader && r.chance(0.85)) return leader;
    const up = this.#upNodes();
    return up.length > 0 ? r.pick(up) : undefined;
  }

  #checkReads(node: NodeId, states: readonly ReadState[]): void {
    for (const rs of states) {
      const pending = this.#reads.get(rs.context);
      if (!pending) continue;
      this.stats.readsChecked++;
      if (rs.index < pending.minIndex) {
        this.checkers.fail(Invariant.Linearizability, [...new Set([pending.node, node])],
          `read ${rs.context} got read index ${rs.index}, below index ${pending.minIndex} acknowledged before it was issued`);
      }
      // The node answers once it has applied up to the read index (a duplicated answer is ignored).
      const n = this.byId.get(node);
      if (!pending.queued && n?.isUp) {
        pending.queued = true;
        n.queueRead(rs.context, rs.index);
      }
    }
  }

  /**
   * `node` answers read `ctx` from its KV register now. The value must be one the key had at some
   * index between the last one acknowledged before the read was issued and the highest applied
   * anywhere now (linearizability), and it must be what the log says at the index the node applied.
   */
  #serveRead(node: NodeId, ctx: string): void {
    const pending = this.#reads.get(ctx);
    if (!pending) return;
    this.#reads.delete(ctx);
    const n = this.byId.get(node)!;
    const got = n.services.cluster.kv.get(pending.key);
    const value = got === null ? null : new TextDecoder().decode(got.value);
    const applied = n.sm.index;
    this.stats.valueReads++;
    const hi = this.checkers.maxAppliedIndex;
    const allowed = this.reference.kvAllowed(pending.key, pending.minIndex, hi);
    if (!allowed.some((v) => v.value === value)) {
      const wrote = this.reference.kvAt(pending.key, applied);
      this.checkers.fail(Invariant.ReadValue, [...new Set([pending.node, node])],
        `read ${ctx} of ${pending.key} at ${node} (applied index ${applied}) returned ${wrote.value === value ? showVersion(wrote) : showValue(value)}` +
        `, but it was issued after index ${pending.minIndex} was acknowledged, so it must return one of ` +
        `${allowed.map(showVersion).join(", ")} (the key's value at ${pending.minIndex} and its writes up to index ${hi})`);
    }
    const want = this.reference.kvAt(pending.key, applied);
    if (want.value !== value) {
      this.checkers.fail(Invariant.ReferenceModel, [node],
        `read ${ctx} of ${pending.key} at ${node} returned ${showValue(value)}; at its applied index ${applied} the committed log says ${showVersion(want)}`);
    }
  }

  #maybePartition(): void {
    const r = this.#faultRng;
    const s = this.scenario;
    const now = this.clock.now;
    if (this.network.isPartitioned) {
      if (now >= this.#partitionUntil) this.network.heal();
      return;
    }
    if (!r.chance(s.partitionRate)) return;
    const ids = r.shuffle(this.nodes.map((n) => n.id));
    const cut = r.between(1, ids.length - 1);
    const a = ids.slice(0, cut);
    const b = ids.slice(cut);
    if (r.chance(s.asymmetricShare)) this.network.partitionOneWay(a, b);
    else this.network.partitionSymmetric(a, b);
    this.#partitionUntil = now + r.between(1, s.partitionStepsMax);
    this.stats.partitions++;
  }

  /** Crash one live node, keeping a majority of nodes alive most of the time but not always. */
  #maybeCrash(): void {
    const r = this.#faultRng;
    if (!r.chance(this.scenario.crashRate)) return;
    const up = this.#upNodes();
    if (up.length === 0) return;
    const victim = r.pick(up);
    victim.crash();
    victim.downUntil = this.clock.now + r.between(1, this.scenario.downStepsMax);
    this.stats.crashes++;
  }

  #maybeTransfer(): void {
    const r = this.#faultRng;
    if (!r.chance(this.scenario.transferRate)) return;
    const leader = this.leader();
    const st = leader?.lastStatus;
    if (!leader || !st) return;
    const others = st.conf.voters.filter((v) => v !== leader.id);
    if (others.length === 0) return;
    leader.raw!.transferLeader(r.pick(others));
    leader.observe();
    this.stats.transfers++;
  }

  /**
   * The membership operator: cycles one node through remove → add as learner → promote to voter,
   * deciding from the leader's applied membership, so a lost proposal is simply proposed again.
   */
  #maybeConfChange(): void {
    const r = this.#faultRng;
    if (!r.chance(this.scenario.confChangeRate)) return;
    const leader = this.leader();
    const st: RaftStatus | undefined = leader?.lastStatus;
    if (!leader || !st) return;
    const conf = leader.conf;
    const t = this.#confTarget;
    let cc: { type: ConfChangeType; node: NodeId } | undefined;
    if (t !== undefined && conf.learners.includes(t)) {
      // Like etcd's server, promote a learner only once it has caught up with the leader's commit:
      // promoting a lagging learner can leave the group without a working quorum.
      const match = st.progress?.[t]?.match ?? 0;
      if (match < st.commit) return;
      cc = { type: ConfChangeType.AddVoter, node: t };
    }
    else if (t !== undefined && !conf.voters.includes(t)) cc = { type: ConfChangeType.AddLearner, node: t };
    else {
      // Start a new cycle: never the leader itself, and keep at least two voters.
      const candidates = conf.voters.filter((v) => v !== leader.id);
      if (conf.voters.length < 3 || candidates.length === 0) return;
      this.#confTarget = r.pick(candidates);
      cc = { type: ConfChangeType.RemoveNode, node: this.#confTarget };
    }
    const res = leader.raw!.proposeConfChange(cc);
    leader.observe();
    if (res.ok) this.stats.confChangesProposed++;
  }

  #maybeSnapshot(): void {
    const r = this.#faultRng;
    if (!r.chance(this.scenario.snapshotRate)) return;
    const up = this.#upNodes();
    if (up.length === 0) return;
    r.pick(up).maybeSnapshot(r.between(0, this.scenario.compactKeepMax));
  }

  /** Liveness phase setup: heal the network, stop injecting faults, restart every crashed node. */
  healAll(): void {
    this.faultsEnabled = false;
    this.network.heal();
    // A healed network behaves like TCP on a LAN: no loss, no duplication, in order per link, and
    // a round trip well under a heartbeat interval — Raft's timing assumption (broadcast time ≪
    // election timeout) must hold for liveness to be owed at all.
    this.network.setOptions({ ...this.scenario, lossRate: 0, dupRate: 0, fifoLinks: true, delayMin: 0, delayMax: 1 });
    for (const n of this.nodes) if (!n.isUp) n.start();
  }

  /** The lock and queue machines' counters on the most advanced live node, for the summary. */
  serviceCounters(): ServiceCounters {
    let best: SimNode | undefined;
    for (const n of this.nodes) if (n.isUp && (!best || n.sm.index > best.sm.index)) best = n;
    const out: ServiceCounters = { grants: 0, deadlocks: 0, sessionExpiries: 0, delivered: 0, acked: 0, redelivered: 0, deadLettered: 0 };
    if (!best) return out;
    const ls = best.services.cluster.locks.stats();
    out.grants = ls.grants;
    out.deadlocks = ls.deadlocks;
    out.sessionExpiries = ls.sessionExpiries;
    for (const q of best.services.queue.queues()) {
      const qs = best.services.queue.stats(q);
      out.delivered += qs.delivered;
      out.acked += qs.acked;
      out.redelivered += qs.redelivered;
      out.deadLettered += qs.deadLettered;
    }
    return out;
  }

  /** One line per node for failure reports. */
  describe(): string {
    return this.nodes
      .map((n) => {
        const st = n.lastStatus;
        if (!n.raw || !st) return `${n.id}: down`;
        return `${n.id}: ${st.role} term=${st.term} leader=${st.leader ?? "-"} commit=${st.commit} applied=${n.sm.index} last=${n.disk.lastIndex} voters=[${n.conf.voters}] learners=[${n.conf.learners}]` +
          (st.progress ? ` progress=${JSON.stringify(st.progress)}` : "");
      })
      .join("; ");
  }
}

/** Lock and queue counters of one run (from the machines themselves). */
export interface ServiceCounters {
  grants: number;
  deadlocks: number;
  sessionExpiries: number;
  delivered: number;
  acked: number;
  redelivered: number;
  deadLettered: number;
}
