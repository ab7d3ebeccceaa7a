import { assert } from "./assert.ts";
import type { ConfState, NodeId } from "./types.ts";

/**
 * The leader's view of one follower's log, after etcd's tracker.Progress.
 *
 * - `probe`: the follower's match is unknown; send one App at a time and wait for its answer.
 * - `replicate`: the follower is in sync; stream Apps optimistically (pipelining) within the
 *   in-flight window.
 * - `snapshot`: the follower needs entries we compacted; stream a snapshot and send no App.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

/** A bounded FIFO of the last index of each App message in flight to one follower. */
export class Inflights {
  readonly #capacity: number;
  #queue: number[] = [];

  constructor(capacity: number) {
    assert(capacity > 0, "inflights: capacity must be positive");
    this.#capacity = capacity;
  }

  add(lastIndex: number): void {
    // Invariant: callers check full() first; the window is the flow-control bound.
    assert(!this.full(), "inflights: add to a full window");
    this.#queue.push(lastIndex);
  }

  /** Frees every message whose last index is `<= index` (acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.#queue.length && this.#queue[n]! <= index) n++;
    if (n > 0) this.#queue = this.#queue.slice(n);
  }

  freeFirstOne(): void {
    this.#queue.shift();
  }

  full(): boolean {
    return this.#queue.length >= this.#capacity;
  }

  count(): number {
    return this.#queue.length;
  }

  reset(): void {
    this.#queue = [];
  }
}

/** Replication progress of one peer, kept by the leader. Invariant: `match < next`. */
export class Progress {
  match = 0;
  next: number;
  state: ProgressState = "probe";
  /** Snapshot index being sent while in `snapshot` state. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Probe state: an App is outstanding; send no more until a response or heartbeat response. */
  msgAppFlowPaused = false;
  isLearner: boolean;
  readonly inflights: Inflights;

  constructor(next: number, inflightsMax: number, isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(inflightsMax);
    this.isLearner = isLearner;
  }

  #resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === "snapshot") {
      // The follower has the snapshot (or will soon): probe just after it.
      const pending = this.pendingSnapshot;
      this.#resetState("probe");
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.#resetState("probe");
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.#resetState("replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.#resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /** Records that the follower acknowledged up to `n`; returns whether match grew. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * The follower rejected the App at `rejected`; its log matches at most up to `matchHint`.
   * Returns false when the rejection is stale (answers an App we already moved past).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /** Whether sending an App to this peer must wait (flow control). */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.msgAppFlowPaused;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }

  /** Accounts for an App carrying `count` entries ending at `lastIndex`. */
  sentEntries(count: number, lastIndex: number): void {
    if (this.state === "replicate") {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === "probe") {
      this.msgAppFlowPaused = true;
    }
    assert(this.match < this.next, `progress: match ${this.match} >= next ${this.next}`);
  }
}

/** Fresh progress of every member of `conf`, each with `next` as its next index. */
export function progressOf(conf: ConfState, next: number, inflightsMax: number): Map<NodeId, Progress> {
  const prs = new Map<NodeId, Progress>();
  for (const id of conf.voters) prs.set(id, new Progress(next, inflightsMax, false));
  for (const id of conf.learners) prs.set(id, new Progress(next, inflightsMax, true));
  return prs;
}

/**
 * Brings `prs` in line with a changed membership `conf`: a new member gets progress at `next`, a
 * removed one loses its own. Returns who was added and who removed.
 */
export function reconcileProgress(prs: Map<NodeId, Progress>, conf: ConfState, next: number, inflightsMax: number): { added: NodeId[]; removed: NodeId[] } {
  const added: NodeId[] = [];
  const removed: NodeId[] = [];
  for (const id of [...conf.voters, ...conf.learners]) {
    const isLearner = conf.learners.includes(id);
    const pr = prs.get(id);
    if (pr) {
      pr.isLearner = isLearner;
    } else {
      const p = new Progress(next, inflightsMax, isLearner);
      // A new member gets a grace period before CheckQuorum counts it as silent.
      p.recentActive = true;
      prs.set(id, p);
      added.push(id);
    }
  }
  for (const id of [...prs.keys()]) {
    if (!conf.voters.includes(id) && !conf.learners.includes(id)) {
      prs.delete(id);
      removed.push(id);
    }
  }
  return { added, removed };
}
