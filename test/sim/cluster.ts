/**
 * The simulated cluster: nodes, network, clock, clients, fault injector and checkers, advanced one
 * step at a time. Everything random comes from forked streams of the one seed.
 */
import type { RaftStatus } from "../../src/raft/raw-node.ts";
import { ConfChangeType, MessageType, Role, type Message, type NodeId, type ReadState } from "../../src/raft/types.ts";
import { Checkers, Invariant } from "./checkers.ts";
import { SimClock } from "./clock.ts";
import { SimNetwork } from "./network.ts";
import { SimNode, type NodeEnv } from "./node.ts";
import { Prng } from "./prng.ts";
import type { Scenario } from "./scenario.ts";

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
}

/** Steps (not necessarily consecutive) in which a link may overflow before it counts as a storm. */
const STORM_STEPS = 25;

/** A pending ReadIndex read: its answer must be ≥ every index acknowledged before it was issued. */
interface PendingRead {
  readonly node: NodeId;
  readonly minIndex: number;
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
    readsIssued: 0, readsChecked: 0,
  };
  /** Whether crashes, partitions, transfers and membership changes are injected. */
  faultsEnabled = true;
  /** Client commands applied anywhere, by command string (the liveness phase waits on these). */
  readonly appliedCommands = new Set<string>();

  readonly #faultRng: Prng;
  readonly #clientRng: Prng;
  readonly #reads = new Map<string, PendingRead>();
  #partitionUntil = 0;
  #nextCommand = 1;
  #nextRead = 1;
  /** Per directed link: how many distinct steps overflowed its buffer, and the last one. */
  readonly #overflows = new Map<string, { steps: number; last: number }>();
  /** The node the membership operator is cycling (remove → learner → voter). */
  #confTarget: NodeId | undefined;

  /** @param replay the command that replays this run (quoted in violation messages). */
  constructor(
    readonly scenario: Scenario,
    readonly sabotage: Sabotage = {},
    replay?: string,
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
      onApplyCommand: (_node, cmd) => {
        this.stats.commandsApplied++;
        this.appliedCommands.add(cmd);
      },
      onReadStates: (node, states) => this.#checkReads(node, states),
      stats: this.stats,
      corruptApply: sabotage.corruptApply,
      corruptDisk: sabotage.corruptDisk,
    };
    for (const id of ids) {
      const n = new SimNode(id, bootstrap, env, root.fork());
      this.nodes.push(n);
      this.byId.set(id, n);
    }
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

  /** Clients: proposals (mostly to the leader, sometimes to a follower) and ReadIndex reads. */
  #client(): void {
    const r = this.#clientRng;
    const s = this.scenario;
    // Background writes stop in the liveness phase: convergence is judged against a quiet log,
    // not a race between a slow learner's catch-up and new load.
    if (r.chance(s.proposeRate) && this.faultsEnabled) this.propose(`c${this.#nextCommand++}`);
    if (r.chance(s.readRate)) {
      const target = this.#clientTarget();
      if (target) {
        const ctx = `r${this.#nextRead++}`;
        // Every index applied anywhere so far has been acknowledged to some client.
        this.#reads.set(ctx, { node: target.id, minIndex: this.checkers.maxAppliedIndex });
        this.stats.readsIssued++;
        const st = target.lastStatus;
        if (this.sabotage.localReads && st && st.role !== Role.Leader) {
          this.#checkReads(target.id, [{ context: ctx, index: st.commit }]);
        } else {
          target.raw!.readIndex(ctx);
          target.observe();
        }
      }
    }
  }

  /** Propose a client command (padded to a random size) on a likely leader. Returns whether it was accepted. */
  propose(command: string): boolean {
    const target = this.#clientTarget();
    if (!target) return false;
    // Padding varies entry sizes (so byte limits split appends); the command is before the "|".
    const pad = "-".repeat(this.#clientRng.nextInt(24));
    const res = target.raw!.propose(new TextEncoder().encode(`${command}|${pad}`));
    target.observe();
    if (res.ok) this.stats.proposals++;
    return res.ok;
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
