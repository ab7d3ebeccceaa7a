import type { Resource, Waiter } from "./resource-table.ts";

/** One edge of a wait-for cycle: session `from` waits (on `resource`) for session `to`. */
export interface WaitEdge {
  readonly from: number;
  readonly resource: string;
  readonly to: number;
}

/** What the search needs from the lock state. */
export interface GraphSource {
  /** The pending requests of a session, in waitId order. */
  waitsOf(sessionId: number): Iterable<Waiter>;
  /** How many requests a session has pending (all resources). */
  waitCount(sessionId: number): number;
  resource(name: string): Resource | undefined;
}

/** How much of one resource the search has already explored. */
interface Explored {
  /** Queue positions [0, covered) have been reached. */
  covered: number;
  holders: boolean;
}

/**
 * Looks for a cycle through `start` in the wait-for graph between sessions, where a waiting
 * session waits for the holders of its resource and for the waiters queued ahead of it that
 * conflict with it (exclusive conflicts with everything, shared with shared does not). A reader
 * queued behind a writer, beside shared holders, reaches those holders through the writer, so
 * this has the same cycles as "waits for every holder", but names the sessions really blocking.
 *
 * Breadth first, in a deterministic order (a session's waits by waitId, holders in grant order,
 * queues front to back), so every replica finds the same cycle. Returns its edges, starting at
 * `start`, or null. Every edge returned is a real edge of the relation above.
 *
 * Cost: linear in the queues and holder sets it touches, not quadratic. Within one queue,
 * whatever a waiter at position i reaches through that queue is a prefix of it (plus the
 * holders), so each resource remembers how far it has been explored and each position is looked
 * at once. A waiter reached that way whose only pending request is on that queue cannot lead
 * anywhere new (its own edges lie in the explored prefix), so it is not even expanded: a
 * 10,000-deep queue costs one pass per check, not 10,000 expansions.
 */
export function findCycle(start: number, src: GraphSource): WaitEdge[] | null {
  const parent = new Map<number, { from: number; resource: string }>();
  const seen = new Set([start]);
  const frontier = [start];
  const explored = new Map<string, Explored>();
  let closing: WaitEdge | null = null;

  /** Follows the edge u -> v; true once the cycle closes. */
  const reach = (u: number, r: Resource, v: number, mayStop: boolean): boolean => {
    if (v === start) {
      closing = { from: u, resource: r.name, to: start };
      return true;
    }
    if (v === u || seen.has(v)) return false;
    // Reached through r's queue with nothing pending elsewhere: a dead end (see above).
    if (mayStop && src.waitCount(v) <= 1) return false;
    seen.add(v);
    parent.set(v, { from: u, resource: r.name });
    frontier.push(v);
    return false;
  };

  for (let head = 0; head < frontier.length; head++) {
    const u = frontier[head]!;
    for (const w of src.waitsOf(u)) {
      const r = src.resource(w.resource);
      if (r === undefined) continue;
      let ex = explored.get(r.name);
      if (ex === undefined) explored.set(r.name, (ex = { covered: 0, holders: false }));
      const i = r.waiters.indexOf(w);
      if (w.mode === "exclusive") {
        // Waits for every waiter ahead.
        for (let j = ex.covered; j < i; j++) if (reach(u, r, r.waiters[j]!.sessionId, true)) return path(parent, start, closing!);
        ex.covered = Math.max(ex.covered, i);
      } else {
        // Waits for the exclusive waiters ahead; the nearest one waits for all before it.
        let j = i - 1;
        while (j >= ex.covered && r.waiters[j]!.mode === "shared") j--;
        if (j >= ex.covered && reach(u, r, r.waiters[j]!.sessionId, false)) return path(parent, start, closing!);
      }
      // A reader does not wait for readers: behind shared holders it waits for the writer ahead
      // of it (which waits for the holders), so the holders stay reachable, and the cycle found
      // is one in which every session really blocks the next.
      if (!ex.holders && (w.mode === "exclusive" || r.mode === "exclusive")) {
        ex.holders = true;
        for (const h of r.holders.keys()) if (reach(u, r, h, false)) return path(parent, start, closing!);
      }
    }
  }
  return null;
}

function path(parent: Map<number, { from: number; resource: string }>, start: number, last: WaitEdge): WaitEdge[] {
  const edges = [last];
  for (let x = last.from; x !== start; ) {
    const p = parent.get(x)!;
    edges.unshift({ from: p.from, resource: p.resource, to: x });
    x = p.from;
  }
  return edges;
}
