/**
 * Scenario ("swarm") options drawn from the seed, VOPR style: every seed explores a different
 * corner (a lossy network with rare crashes, a clean network with constant partitions, …) rather
 * than all seeds sharing one average mix that never stresses anything in particular.
 */
import { Prng } from "./prng.ts";

/** Every knob of one simulated run. All rates are per-step probabilities in `[0, 1]`. */
export interface Scenario {
  readonly seed: number;
  /** Cluster size; 3 or 5 voters at bootstrap. */
  readonly nodes: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Small limits so that multi-message appends, pipelining and chunked snapshots happen. */
  readonly maxMsgBytes: number;
  readonly maxInflightMsgs: number;
  readonly snapshotChunkBytes: number;
  /** Probability that a sent message is lost / sent twice. */
  readonly lossRate: number;
  readonly dupRate: number;
  /** Delivery delay in whole steps, drawn uniformly from `[delayMin, delayMax]`. */
  readonly delayMin: number;
  readonly delayMax: number;
  /** Per-node chance of missing a tick in a step: models clock drift between nodes. */
  readonly tickSkipRate: number;
  /** Per-step chance of starting a partition (when none is active) and its duration range. */
  readonly partitionRate: number;
  readonly partitionStepsMax: number;
  /** Share of partitions that are one-way (asymmetric) rather than symmetric. */
  readonly asymmetricShare: number;
  /** Per-step chance of crashing one live node, and how long it stays down. */
  readonly crashRate: number;
  readonly downStepsMax: number;
  /** Per-step chance of a client proposal and of a ReadIndex read. */
  readonly proposeRate: number;
  readonly readRate: number;
  /** Per-step chance of snapshotting + compacting one node's log. */
  readonly snapshotRate: number;
  /** Entries kept behind the snapshot on compaction, `[0, compactKeepMax]`. */
  readonly compactKeepMax: number;
  readonly transferRate: number;
  /** Per-step chance the operator advances a membership change (remove → learner → voter). */
  readonly confChangeRate: number;
  /** TCP-like in-order links (no reordering within one link); off = datagram-like reordering. */
  readonly fifoLinks: boolean;
  /** Per-link transport buffer, in messages in flight. */
  readonly linkBufferMax: number;
  /**
   * Whether a link that stays full (a message storm) is tolerated as plain loss. Off by default:
   * a correct core never keeps a link's buffer full for long, so that is reported.
   */
  readonly tolerateStorms: boolean;
}

/** Overrides for tests and the CLI; anything set here wins over the seed's draw. */
export type ScenarioOverrides = Partial<Omit<Scenario, "seed">>;

/** How to draw. */
export interface DrawOptions {
  /** Never draw a zero rate for a fault (loss, dup, partitions, crashes, reads, transfers, membership, drift). */
  readonly allFaults?: boolean;
}

/**
 * Draw the scenario for `seed`. Deterministic: the same seed and overrides give the same scenario.
 * Every fault kind is enabled in most seeds, but its intensity varies widely between seeds.
 */
export function drawScenario(seed: number, overrides: ScenarioOverrides = {}, opts: DrawOptions = {}): Scenario {
  const r = new Prng(seed ^ 0x5ce4a210);
  // With allFaults, a fault's "off" setting is never drawn; its intensity still varies.
  const rate = (choices: readonly number[]): number => {
    const pool = opts.allFaults ? choices.filter((c) => c > 0) : choices;
    return r.pick(pool);
  };
  // Draw every field unconditionally (then apply overrides) so that an override of one knob does
  // not shift the draw of the others.
  const delayMin = r.between(0, 1);
  const drawn: Scenario = {
    seed,
    nodes: r.chance(0.5) ? 3 : 5,
    electionTicks: r.between(8, 14),
    heartbeatTicks: r.between(1, 3),
    preVote: r.chance(0.6),
    checkQuorum: r.chance(0.6),
    // Client entries are ~40–120 bytes: the small limits put one or a few entries in a message.
    maxMsgBytes: r.pick([64, 256, 1024, 1 << 20]),
    maxInflightMsgs: r.pick([1, 2, 4, 256]),
    // Service snapshots are 0.5–4 KB: these give ~10–60, ~5–30, a few and one chunk(s).
    snapshotChunkBytes: r.pick([64, 128, 1024, 1 << 16]),
    lossRate: rate([0, 0.01, 0.05, 0.15, 0.3]),
    dupRate: rate([0, 0.01, 0.05, 0.2]),
    delayMin,
    delayMax: delayMin + r.between(0, 4),
    tickSkipRate: rate([0, 0.05, 0.2]),
    partitionRate: rate([0, 0.005, 0.02, 0.05]),
    partitionStepsMax: r.between(20, 200),
    asymmetricShare: rate([0, 0.3, 0.7]),
    crashRate: rate([0, 0.002, 0.01, 0.03]),
    downStepsMax: r.between(5, 150),
    proposeRate: r.pick([0.05, 0.2, 0.5]),
    readRate: rate([0, 0.05, 0.2]),
    snapshotRate: r.pick([0.002, 0.01, 0.05]),
    compactKeepMax: r.between(0, 8),
    transferRate: rate([0, 0.002, 0.01]),
    confChangeRate: rate([0, 0, 0.005, 0.02]),
    fifoLinks: r.chance(0.3),
    // etcd's rafthttp buffers 4096 messages per peer. Bursts may briefly fill it (excess is
    // dropped); only a link that stays full is reported (see Cluster's storm detection).
    linkBufferMax: 4096,
    tolerateStorms: false,
  };
  return { ...drawn, ...overrides, seed };
}

/** One line with every option, printed after `SEED=` so a failure can be read and replayed. */
export function formatScenario(s: Scenario): string {
  return Object.entries(s)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}
