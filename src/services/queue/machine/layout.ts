import { HashRing } from "../../ring/hash-ring.ts";
import type { QueueLayout } from "../../../../protocol/queue-messages.ts";

/**
 * How queues are spread: `partitions` Raft groups (group ids 1..partitions), each replicated on
 * `members`, and a consistent-hash ring over the partitions that maps a queue name to one.
 * Recorded once in group 0 by its first leader, so every node maps every name the same way
 * whatever its own configuration says.
 */
export type { QueueLayout };

/** The Raft group of partition `p` (1-based): group 0 is the control group. */
export function groupOfPartition(p: number): number {
  return p;
}

/** Maps queue names to partitions through the layout's ring. */
export class PartitionMap {
  readonly #ring: HashRing;
  readonly #cache = new Map<string, number>();

  constructor(readonly layout: QueueLayout) {
    const names: string[] = [];
    for (let p = 1; p <= layout.partitions; p++) names.push(`partition-${p}`);
    this.#ring = new HashRing(names, layout.virtualNodes);
  }

  /** The partition (1..partitions) that holds `queue`. */
  partitionOf(queue: string): number {
    let p = this.#cache.get(queue);
    if (p === undefined) {
      p = Number(this.#ring.lookup(queue).slice("partition-".length));
      // Bounded: a client naming millions of queues must not grow this without limit.
      if (this.#cache.size >= 100_000) this.#cache.clear();
      this.#cache.set(queue, p);
    }
    return p;
  }

  /**
   * The node that should lead partition `p` when every member is up: members take turns, so
   * leaders are spread evenly.
   */
  preferredLeader(p: number): string {
    const m = [...this.layout.members].sort();
    return m[(p - 1) % m.length]!;
  }
}

/** Whether `v` is a well-formed layout (it arrives through the log, so it is checked). */
export function isQueueLayout(v: unknown): v is QueueLayout {
  if (v === null || typeof v !== "object") return false;
  const l = v as Record<string, unknown>;
  return (
    Number.isInteger(l.partitions) &&
    (l.partitions as number) >= 1 &&
    (l.partitions as number) <= 256 &&
    Number.isInteger(l.virtualNodes) &&
    (l.virtualNodes as number) >= 1 &&
    (l.virtualNodes as number) <= 10_000 &&
    Array.isArray(l.members) &&
    l.members.length >= 1 &&
    l.members.every((m) => typeof m === "string" && m.length > 0) &&
    (l.cacheOnShards === undefined || typeof l.cacheOnShards === "boolean")
  );
}
