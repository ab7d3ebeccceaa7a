/**
 * One seed, end to end: a safety phase with every fault the scenario enables, then a liveness
 * phase (VOPR) that heals everything and requires, within 50 election timeouts, a leader, a newly
 * committed proposal, and every member of the leader's configuration having applied the leader's
 * whole committed log (convergence).
 */
import { Invariant, SimViolation } from "./checkers.ts";
import { Cluster, type Sabotage, type ServiceCounters, type SimStats } from "./cluster.ts";
import type { NetworkStats } from "./network.ts";
import { drawScenario, type Scenario, type ScenarioOverrides } from "./scenario.ts";

/** What to run for one seed. */
export interface RunOptions {
  readonly seed: number;
  /** Steps of the fault (safety) phase. */
  readonly steps: number;
  readonly overrides?: ScenarioOverrides;
  /** Draw a nonzero rate for every fault kind (see {@link drawScenario}). */
  readonly allFaults?: boolean;
  readonly sabotage?: Sabotage;
  /** Election timeouts the liveness phase may take; default 50. */
  readonly livenessTimeouts?: number;
  /** Service checks on every node after every apply (default: first applier, checkpoints, restores). */
  readonly fullChecks?: boolean;
}

/** The outcome of a clean run (a failing run throws {@link SimViolation}). */
export interface RunResult {
  readonly scenario: Scenario;
  readonly stats: SimStats;
  readonly elections: number;
  /** Highest committed-and-applied index reached. */
  readonly commitIndex: number;
  /** Steps the liveness phase needed. */
  readonly livenessSteps: number;
  readonly messages: NetworkStats;
  /** Lock and queue counters of the most advanced node's machines at the end. */
  readonly services: ServiceCounters;
  /** State digests compared between nodes (same applied index) or against a snapshot. */
  readonly digestsCompared: number;
}

/**
 * Run one seed. Throws {@link SimViolation} on any broken invariant (including liveness), and wraps
 * an exception thrown by the core itself (an assertion) into a {@link SimViolation} naming the seed.
 */
export function runSeed(opts: RunOptions): RunResult {
  const scenario = drawScenario(opts.seed, opts.overrides, { allFaults: opts.allFaults ?? false });
  const replay = replayCommand(opts);
  const cluster = new Cluster(scenario, opts.sabotage, replay, opts.fullChecks ?? false);
  const guard = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      if (err instanceof SimViolation) throw err;
      const e = err as Error;
      throw new SimViolation(scenario.seed, cluster.clock.now, Invariant.CoreException, [],
        `the core threw ${e.name}: ${e.message}\n  cluster: ${cluster.describe()}\n${e.stack ?? ""}\n`, replay);
    }
  };

  guard(() => {
    for (let i = 0; i < opts.steps; i++) cluster.step();
  });

  // Liveness: heal, restart, and require a leader plus a fresh commit that every member applies.
  guard(() => cluster.healAll());
  const budget = (opts.livenessTimeouts ?? 50) * 2 * scenario.electionTicks;
  const retryEvery = 4 * scenario.electionTicks;
  const proposed: string[] = [];
  let lastProposal = -Infinity;
  let livenessSteps = -1;
  // A member far behind over a slow link (one entry per message, one message in flight) may need
  // more than the base budget; liveness is still owed, so the budget extends while the members'
  // applied indexes keep rising, up to a hard cap.
  const hardCap = 20 * budget;
  const progressOf = (): number => cluster.nodes.reduce((sum, n) => sum + (n.isUp ? n.sm.index : 0), 0);
  let progress = progressOf();
  let deadline = budget;
  guard(() => {
    for (let i = 0; i < Math.min(deadline, hardCap); i++) {
      cluster.step();
      const now = progressOf();
      if (now > progress) {
        progress = now;
        deadline = Math.max(deadline, i + budget);
      }
      if (proposed.some((c) => cluster.appliedCommands.has(c)) && isConverged(cluster)) {
        livenessSteps = i + 1;
        return;
      }
      if (cluster.leader() && i - lastProposal >= retryEvery) {
        const cmd = `live${proposed.length}`;
        if (cluster.propose(cmd)) {
          proposed.push(cmd);
          lastProposal = i;
        }
      }
    }
  });
  if (livenessSteps < 0) {
    const leader = cluster.leader();
    const snap = leader?.live?.snapshot().meta;
    const snapNote = snap ? `\n  leader ${leader!.id} snapshot: index=${snap.index} voters=[${snap.conf.voters}] learners=[${snap.conf.learners}]` : "";
    throw new SimViolation(scenario.seed, cluster.clock.now, Invariant.Liveness, cluster.nodes.map((n) => n.id),
      `no leader with a newly committed proposal applied by every member within ${Math.min(deadline, hardCap)} steps after healing (the last ${budget} without progress) (${proposed.length} proposals accepted)\n  cluster: ${cluster.describe()}${snapNote}\n`, replay);
  }

  const net = cluster.network.stats;
  return {
    scenario,
    stats: cluster.stats,
    elections: cluster.checkers.elections,
    commitIndex: cluster.checkers.maxAppliedIndex,
    livenessSteps,
    messages: { ...net },
    services: cluster.serviceCounters(),
    digestsCompared: cluster.checkers.digestsCompared,
  };
}

/**
 * Convergence: a leader exists and every member of its configuration (voters and learners) has
 * applied everything the leader has committed. Removed nodes are not required to follow.
 */
function isConverged(cluster: Cluster): boolean {
  const leader = cluster.leader();
  const st = leader?.lastStatus;
  if (!leader || !st) return false;
  for (const id of [...leader.conf.voters, ...leader.conf.learners]) {
    const n = cluster.byId.get(id);
    if (!n?.isUp || n.sm.index < st.commit) return false;
  }
  return true;
}

/** The CLI command that replays `opts` (test-only overrides beyond `nodes` are noted, not encoded). */
export function replayCommand(opts: RunOptions): string {
  const { nodes, ...rest } = opts.overrides ?? {};
  let cmd = `npm run sim -- --seed ${opts.seed}`;
  if (opts.steps !== 2000) cmd += ` --steps ${opts.steps}`;
  if (nodes !== undefined) cmd += ` --nodes ${nodes}`;
  if (opts.allFaults) cmd += " --all-faults";
  if (opts.fullChecks) cmd += " --full-checks";
  if (rest.tolerateStorms) cmd += " --tolerate-storms";
  const extra = Object.keys(rest).filter((k) => k !== "tolerateStorms");
  if (extra.length > 0 || opts.sabotage) cmd += ` (plus test-only settings: ${[...extra, ...(opts.sabotage ? ["sabotage"] : [])].join(", ")})`;
  return cmd;
}
