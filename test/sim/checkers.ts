/**
 * Safety checkers, fed by the cluster after every Raft call and every step.
 *
 * They compare *histories*, not snapshots of the present: a leader recorded for a term stays
 * recorded after it crashes, and an (index, term) pair seen in any durable log stays bound to its
 * prefix hash forever. Raft's guarantees are about all of time, so a violation that was "repaired"
 * a step later (a conflicting entry truncated away) is still caught.
 */
import type { NodeId } from "../../src/raft/types.ts";

/** The invariants, by the names that appear in violation messages. */
export const Invariant = {
  ElectionSafety: "ElectionSafety",
  LogMatching: "LogMatching",
  LeaderCompleteness: "LeaderCompleteness",
  StateMachineSafety: "StateMachineSafety",
  CommitMonotonic: "CommitMonotonic",
  Linearizability: "Linearizability",
  /** A KV read returned a value that no linearization of the committed log allows. */
  ReadValue: "ReadValue",
  /** A node's KV value or queue placement differs from the reference model of the committed log. */
  ReferenceModel: "ReferenceModel",
  /** Two nodes' service machines at the same applied index serialize to different snapshots. */
  StateDigest: "StateDigest",
  /** A lock or queue invariant (src/services/{lock,queue}/invariants.ts) or a machine's own assertion broke. */
  ServiceInvariant: "ServiceInvariant",
  ReadyContract: "ReadyContract",
  BoundedTraffic: "BoundedTraffic",
  /** The core threw (an internal assertion): reported with the seed like any other violation. */
  CoreException: "CoreException",
  Liveness: "Liveness",
} as const;
export type Invariant = (typeof Invariant)[keyof typeof Invariant];

/**
 * A broken invariant. The message names the seed, the step, the invariant and the nodes, and
 * tells how to replay; never caught by the harness (a violation ends the run).
 */
export class SimViolation extends Error {
  override readonly name = "SimViolation";
  constructor(
    readonly seed: number,
    readonly step: number,
    readonly invariant: Invariant,
    readonly nodes: readonly NodeId[],
    readonly detail: string,
    replay = `npm run sim -- --seed ${seed}`,
  ) {
    super(`SEED=${seed} step=${step} invariant=${invariant} nodes=[${nodes.join(",")}]: ${detail} (replay: ${replay})`);
  }
}

/** A committed-prefix fact: entries `[1, index]` are committed and were known so by term `term`. */
interface CommitPoint {
  readonly index: number;
  readonly term: number;
}

/** The cross-node safety state of one run. `where()` supplies the current step for messages. */
export class Checkers {
  /** term → the one leader of that term. */
  readonly #leaders = new Map<number, NodeId>();
  /** `${index}:${term}` → chain hash of the durable prefix ending at that entry. */
  readonly #logPairs = new Map<string, { hash: number; node: NodeId }>();
  /** index → chain hash of the committed prefix `[1, index]` and the node that first showed it. */
  readonly #committed = new Map<number, { hash: number; node: NodeId }>();
  /**
   * Pareto front of commit points: increasing index *and* increasing term. To check a leader of
   * term T we need the largest index committed by a term ≤ T; dominated points add nothing.
   */
  #front: CommitPoint[] = [];
  /** index → digest of the service machines' snapshot bytes there, and the node that first showed it. */
  readonly #digests = new Map<number, { digest: number; node: NodeId }>();
  /** Snapshot images (`index:digest`) some node has already restored from and checked. */
  readonly #restored = new Set<string>();
  /** Highest index applied on any node: every entry up to it has been acknowledged to a client. */
  maxAppliedIndex = 0;
  /** Number of state digests compared against an earlier one. */
  digestsCompared = 0;

  /**
   * @param where supplies the current step for violation messages.
   * @param replay the command that replays this run, quoted in violation messages.
   */
  constructor(
    readonly seed: number,
    readonly where: () => number,
    readonly replay?: string,
  ) {}

  /** Throw a {@link SimViolation}. */
  fail(invariant: Invariant, nodes: readonly NodeId[], detail: string): never {
    throw new SimViolation(this.seed, this.where(), invariant, nodes, detail, this.replay);
  }

  /** Number of terms that had a leader (= successful elections). */
  get elections(): number {
    return this.#leaders.size;
  }

  /** Election Safety: at most one leader per term, over the whole run. */
  observeLeader(node: NodeId, term: number): void {
    const prev = this.#leaders.get(term);
    if (prev === undefined) this.#leaders.set(term, node);
    else if (prev !== node) {
      this.fail(Invariant.ElectionSafety, [prev, node], `two leaders in term ${term}: ${prev} and ${node}`);
    }
  }

  /**
   * Log Matching: an entry at (index, term) made durable anywhere must sit on the same prefix
   * (same hash) as every other entry ever durable at (index, term).
   */
  observeDurableEntry(node: NodeId, index: number, term: number, hash: number): void {
    const key = `${index}:${term}`;
    const prev = this.#logPairs.get(key);
    if (prev === undefined) this.#logPairs.set(key, { hash, node });
    else if (prev.hash !== hash) {
      this.fail(
        Invariant.LogMatching,
        [prev.node, node],
        `entry (index ${index}, term ${term}) has different content or prefix on ${prev.node} and ${node}`,
      );
    }
  }

  /**
   * Record that `node`, at `term`, durably considers `[1, index]` committed with prefix `hash`.
   * Two nodes disagreeing on a committed prefix is a State Machine Safety violation in waiting.
   */
  observeCommit(node: NodeId, index: number, term: number, hash: number): void {
    this.#agreeCommitted(node, index, hash, Invariant.StateMachineSafety, "committed");
    // Insert into the Pareto front.
    if (this.#front.some((p) => p.index >= index && p.term <= term)) return;
    this.#front = this.#front.filter((p) => !(p.index <= index && p.term >= term));
    this.#front.push({ index, term });
    this.#front.sort((a, b) => a.index - b.index);
  }

  /** State Machine Safety: `node` applied the prefix `[1, index]` with hash `hash`. */
  observeApply(node: NodeId, index: number, hash: number): void {
    this.#agreeCommitted(node, index, hash, Invariant.StateMachineSafety, "applied");
    if (index > this.maxAppliedIndex) this.maxAppliedIndex = index;
  }

  #agreeCommitted(node: NodeId, index: number, hash: number, inv: Invariant, what: string): void {
    const prev = this.#committed.get(index);
    if (prev === undefined) this.#committed.set(index, { hash, node });
    else if (prev.hash !== hash) {
      this.fail(inv, [prev.node, node], `${node} ${what} a different entry/prefix at index ${index} than ${prev.node}`);
    }
  }

  /**
   * Replica agreement: `node`'s service machines at applied index `index` have snapshot digest
   * `digest`; every node's machines at the same index must serialize identically.
   */
  observeStateDigest(node: NodeId, index: number, digest: number, what: string): void {
    const prev = this.#digests.get(index);
    if (prev === undefined) this.#digests.set(index, { digest, node });
    else {
      this.digestsCompared++;
      if (prev.digest !== digest) {
        this.fail(Invariant.StateDigest, [prev.node, node],
          `${node}'s service machines (${what}) differ from ${prev.node}'s at applied index ${index}: snapshot digests ${digest} and ${prev.digest}`);
      }
    }
  }

  /** Whether no machine was restored yet from the image at `index` with `digest` (and note it). */
  firstRestoreOf(index: number, digest: number): boolean {
    const key = `${index}:${digest}`;
    if (this.#restored.has(key)) return false;
    this.#restored.add(key);
    return true;
  }

  /** The committed prefix hash at `index`, if any node has shown it. */
  committedHash(index: number): number | undefined {
    return this.#committed.get(index)?.hash;
  }

  /**
   * The largest index known committed by a term ≤ `term` (0 if none): a leader of `term` must
   * hold every entry up to it.
   */
  committedBefore(term: number): number {
    let best = 0;
    for (const p of this.#front) if (p.term <= term) best = p.index;
    return best;
  }
}
