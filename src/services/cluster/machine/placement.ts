/**
 * Where each queue partition's replicas live and which of them should lead: a pure function of
 * the nodes (with optional zones), the partition count, the replication factor and the previous
 * placement, so group 0 can compute it in its machine and every replica gets the same answer.
 *
 * Balanced: every node holds ⌊T/n⌋ or ⌈T/n⌉ of the T = partitions × rf replicas, and leads
 * ⌊P/n⌋ or ⌈P/n⌉ partitions. Minimal in movement: a replica stays where it is unless its node
 * left or holds more than its share, so adding an n-th node moves about T/n replicas (onto it)
 * and removing one moves only that node's replicas. Replicas of a partition go to distinct
 * nodes, and to distinct zones while there are zones left.
 */

export interface PlacementNode {
  readonly id: string;
  readonly zone?: string;
}

export interface PartitionPlacement {
  /** 1-based partition number. */
  readonly partition: number;
  /** Replica node ids, sorted. */
  readonly replicas: readonly string[];
  /** The replica that should lead it. */
  readonly leader: string;
}

/** The placement of partitions 1..P, in order. */
export type Placement = readonly PartitionPlacement[];

/** A request the placement cannot meet (more replicas than nodes, no nodes). */
export class PlacementError extends Error {
  override readonly name = "PlacementError";
}

/**
 * Places `partitions` partitions with `rf` replicas each on `nodes`, moving as little of
 * `previous` as balance allows.
 */
export function place(nodes: readonly PlacementNode[], partitions: number, rf: number, previous: Placement = []): Placement {
  if (nodes.length === 0) throw new PlacementError("no nodes to place partitions on");
  if (!Number.isInteger(rf) || rf < 1) throw new PlacementError(`replication factor must be a whole number ≥ 1, got ${rf}`);
  if (rf > nodes.length) throw new PlacementError(`replication factor ${rf} needs at least ${rf} nodes; there are ${nodes.length}`);
  const ids = [...new Set(nodes.map((n) => n.id))].sort();
  if (ids.length !== nodes.length) throw new PlacementError("node ids must be distinct");
  const zoneOf = new Map(nodes.map((n) => [n.id, n.zone ?? n.id]));
  const present = new Set(ids);

  // Keep what can stay: replicas on nodes still present.
  const replicas: Set<string>[] = [];
  for (let p = 1; p <= partitions; p++) {
    const prev = previous[p - 1]?.replicas ?? [];
    replicas.push(new Set(prev.filter((id) => present.has(id)).slice(0, rf)));
  }
  const load = new Map(ids.map((id) => [id, 0]));
  for (const r of replicas) for (const id of r) load.set(id, load.get(id)! + 1);

  // Quotas: the nodes that already hold the most keep the ⌈T/n⌉ slots, so fewer replicas move.
  const total = partitions * rf;
  const quota = quotas(ids, total, (id) => load.get(id)!);

  // Partitions short of replicas (their node left, or new) take nodes with room, new zones first;
  // a matching, so no replica that could stay is moved to make room.
  fillShortPartitions(ids, replicas, rf, load, quota, zoneOf);
  for (let i = 0; i < partitions; i++) {
    const r = replicas[i]!;
    while (r.size < rf) {
      const pick = pickNode(ids, r, load, quota, zoneOf) ?? swapIn(i, ids, replicas, load, quota);
      r.add(pick);
      load.set(pick, load.get(pick)! + 1);
    }
  }

  // Then one replica at a time from a node over its share to one under it: each move is needed,
  // so the total moved is the least balance allows (adding a node moves replicas onto it only).
  for (;;) {
    const over = ids.find((id) => load.get(id)! > quota.get(id)!);
    if (over === undefined) break;
    const under = ids.filter((id) => load.get(id)! < quota.get(id)!).sort((a, b) => quota.get(b)! - load.get(b)! - (quota.get(a)! - load.get(a)!) || (a < b ? -1 : 1));
    let moved = false;
    for (const to of under) {
      // The partition whose zones the move helps most: it holds `over`, not `to`.
      let best = -1;
      let bestGain = -Infinity;
      for (let i = 0; i < partitions; i++) {
        const r = replicas[i]!;
        if (!r.has(over) || r.has(to)) continue;
        const gain = zoneCrowding(r, over, over, zoneOf) - zoneCrowding(r, over, to, zoneOf);
        if (gain > bestGain) {
          best = i;
          bestGain = gain;
        }
      }
      if (best < 0) continue;
      replicas[best]!.delete(over);
      replicas[best]!.add(to);
      load.set(over, load.get(over)! - 1);
      load.set(to, load.get(to)! + 1);
      moved = true;
      break;
    }
    if (!moved) throw new PlacementError(`cannot move a replica off ${over}`);
  }

  return assignLeaders(ids, replicas, previous);
}

/**
 * Gives every missing replica a node with room that the partition lacks, as a bipartite matching
 * with capacities (Kuhn's augmenting paths): a greedy choice could leave a slot with no candidate
 * although an assignment exists. Slots it cannot place are left to the caller.
 */
function fillShortPartitions(ids: readonly string[], replicas: Set<string>[], rf: number, load: Map<string, number>, quota: ReadonlyMap<string, number>, zoneOf: ReadonlyMap<string, string>): void {
  const slots: number[] = [];
  replicas.forEach((r, i) => {
    for (let k = r.size; k < rf; k++) slots.push(i);
  });
  if (slots.length === 0) return;
  const room = new Map(ids.map((id) => [id, Math.max(0, quota.get(id)! - load.get(id)!)]));
  const taken = new Map<string, Set<number>>(ids.map((id) => [id, new Set()]));
  const slotNode: (string | null)[] = slots.map(() => null);
  const partitionOn = (id: string, i: number): boolean => replicas[i]!.has(id) || [...taken.get(id)!].some((s) => slots[s] === i);
  const candidates = (i: number): string[] => {
    const zones = new Map<string, number>();
    for (const o of replicas[i]!) zones.set(zoneOf.get(o)!, (zones.get(zoneOf.get(o)!) ?? 0) + 1);
    return [...ids].sort((a, b) => (zones.get(zoneOf.get(a)!) ?? 0) - (zones.get(zoneOf.get(b)!) ?? 0) || room.get(b)! - taken.get(b)!.size - (room.get(a)! - taken.get(a)!.size) || (a < b ? -1 : 1));
  };
  const augment = (s: number, seen: Set<string>): boolean => {
    const i = slots[s]!;
    for (const id of candidates(i)) {
      if (seen.has(id) || room.get(id)! === 0 || partitionOn(id, i)) continue;
      seen.add(id);
      const mine = taken.get(id)!;
      if (mine.size < room.get(id)!) {
        mine.add(s);
        slotNode[s] = id;
        return true;
      }
      for (const other of mine) {
        if (augment(other, seen)) {
          mine.delete(other);
          mine.add(s);
          slotNode[s] = id;
          return true;
        }
      }
    }
    return false;
  };
  slots.forEach((_, s) => void augment(s, new Set()));
  slots.forEach((i, s) => {
    const id = slotNode[s];
    if (id === null || id === undefined) return;
    replicas[i]!.add(id);
    load.set(id, load.get(id)! + 1);
  });
}

/** ⌈total/n⌉ for the `total mod n` nodes that hold the most now (ties by id), ⌊total/n⌋ for the rest. */
function quotas(ids: readonly string[], total: number, held: (id: string) => number): Map<string, number> {
  const base = Math.floor(total / ids.length);
  const extra = total % ids.length;
  const ranked = [...ids].sort((a, b) => held(b) - held(a) || (a < b ? -1 : 1));
  return new Map(ranked.map((id, k) => [id, base + (k < extra ? 1 : 0)]));
}

/**
 * How many replicas of the partition would share `to`'s zone once `from` is replaced by `to`
 * (with `to` = `from`: how many others share `from`'s zone now).
 */
function zoneCrowding(r: ReadonlySet<string>, from: string, to: string, zoneOf: ReadonlyMap<string, string>): number {
  let n = 0;
  for (const o of r) if (o !== from && zoneOf.get(o) === zoneOf.get(to)) n++;
  return n;
}

/** The node under quota, not already a replica, in the least-used zone of the partition, with the most room. */
function pickNode(ids: readonly string[], r: ReadonlySet<string>, load: ReadonlyMap<string, number>, quota: ReadonlyMap<string, number>, zoneOf: ReadonlyMap<string, string>): string | null {
  const usedZones = new Map<string, number>();
  for (const o of r) usedZones.set(zoneOf.get(o)!, (usedZones.get(zoneOf.get(o)!) ?? 0) + 1);
  let best: string | null = null;
  let bestKey: [number, number] = [Infinity, Infinity];
  for (const id of ids) {
    const room = quota.get(id)! - load.get(id)!;
    if (room <= 0 || r.has(id)) continue;
    const key: [number, number] = [usedZones.get(zoneOf.get(id)!) ?? 0, -room];
    if (key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) {
      best = id;
      bestKey = key;
    }
  }
  return best;
}

/**
 * Every node with room already holds partition `i`: take a node X with room, find another
 * partition holding some Y that `i` lacks while lacking X, move that replica from Y to X, and give
 * Y's freed slot to `i`. Always exists: X has room, so some partition lacks X.
 */
function swapIn(i: number, ids: readonly string[], replicas: Set<string>[], load: Map<string, number>, quota: ReadonlyMap<string, number>): string {
  const r = replicas[i]!;
  const x = ids.find((id) => quota.get(id)! - load.get(id)! > 0);
  if (x === undefined) throw new PlacementError("no node has room left (quotas do not add up)");
  for (const q of replicas) {
    if (q === r || q.has(x)) continue;
    const y = [...q].find((id) => !r.has(id));
    if (y === undefined) continue;
    q.delete(y);
    q.add(x);
    load.set(x, load.get(x)! + 1);
    load.set(y, load.get(y)! - 1);
    return y;
  }
  throw new PlacementError(`cannot find a swap to place a replica of partition ${i + 1}`);
}

/**
 * Preferred leaders for fixed replica sets (`ids` must include every replica): within ±1 of even
 * where the replicas allow, keeping a previous leader that is still a replica and within its share.
 */
export function assignLeaders(ids: readonly string[], replicas: readonly ReadonlySet<string>[], previous: Placement): Placement {
  const count = new Map(ids.map((id) => [id, 0]));
  // The ⌈P/n⌉ slots go to the nodes that led the most before (fewer leadership changes).
  const before = new Map<string, number>();
  for (const p of previous) before.set(p.leader, (before.get(p.leader) ?? 0) + 1);
  const leaderQuota = quotas(ids, replicas.length, (id) => before.get(id) ?? 0);
  const chosen: (string | null)[] = replicas.map((r, i) => {
    const prev = previous[i]?.leader;
    if (prev !== undefined && r.has(prev) && count.get(prev)! < leaderQuota.get(prev)!) {
      count.set(prev, count.get(prev)! + 1);
      return prev;
    }
    return null;
  });
  for (let i = 0; i < replicas.length; i++) {
    if (chosen[i] !== null) continue;
    const r = [...replicas[i]!].sort();
    const under = r.filter((id) => count.get(id)! < leaderQuota.get(id)!);
    const pick = (under.length > 0 ? under : r).reduce((a, b) => (count.get(b)! < count.get(a)! ? b : a));
    chosen[i] = pick;
    count.set(pick, count.get(pick)! + 1);
  }
  // A node over its share passes leaderships along a chain (it to a co-replica, that one on to
  // another…) until one lands on a node under its share: a breadth-first search over partitions.
  for (;;) {
    const over = ids.find((id) => count.get(id)! > leaderQuota.get(id)!);
    if (over === undefined) break;
    const via = new Map<string, { from: string; partition: number }>([[over, { from: over, partition: -1 }]]);
    const queue = [over];
    let end: string | undefined;
    while (queue.length > 0 && end === undefined) {
      const at = queue.shift()!;
      for (let i = 0; i < replicas.length && end === undefined; i++) {
        if (chosen[i] !== at) continue;
        for (const to of [...replicas[i]!].sort()) {
          if (via.has(to)) continue;
          via.set(to, { from: at, partition: i });
          if (count.get(to)! < leaderQuota.get(to)!) {
            end = to;
            break;
          }
          queue.push(to);
        }
      }
    }
    if (end === undefined) break; // No chain: the replicas do not allow a better spread.
    for (let at = end; at !== over; ) {
      const step = via.get(at)!;
      chosen[step.partition] = at;
      at = step.from;
    }
    count.set(over, count.get(over)! - 1);
    count.set(end, count.get(end)! + 1);
  }
  return replicas.map((r, i) => ({ partition: i + 1, replicas: [...r].sort(), leader: chosen[i]! }));
}

/** Replicas that `next` places on a node `prev` did not: what a change moves. */
export function movedReplicas(prev: Placement, next: Placement): number {
  let moved = 0;
  for (const p of next) {
    const before = new Set(prev[p.partition - 1]?.replicas ?? []);
    for (const id of p.replicas) if (!before.has(id)) moved++;
  }
  return moved;
}
