import { MinHeap } from "../../shared/min-heap.ts";

/**
 * What can fall due: a session's expiry, a hold's per-acquire TTL, a wait's deadline. Each entry
 * carries enough to tell whether it is still current (see {@link DeadlineQueue}).
 */
export type Deadline =
  | { at: number; kind: "session"; sessionId: number }
  | { at: number; kind: "hold"; resource: string; sessionId: number; token: number }
  | { at: number; kind: "wait"; resource: string; sessionId: number; waitId: number };

const RANK = { session: 0, hold: 1, wait: 2 } as const;

/**
 * A total order on deadlines. Because it is total (ties broken on every field), the order in
 * which entries leave the heap depends only on the set of entries, not on the order they were
 * pushed in — which is why the heap need not be part of the snapshot: a replica that rebuilds it
 * from state pops the same entries in the same order as one that built it entry by entry.
 */
export function compareDeadlines(a: Deadline, b: Deadline): number {
  if (a.at !== b.at) return a.at < b.at ? -1 : 1;
  if (a.kind !== b.kind) return RANK[a.kind] - RANK[b.kind];
  if (a.kind === "session" || b.kind === "session") return a.sessionId - b.sessionId;
  if (a.kind === "wait" && b.kind === "wait") return a.waitId - b.waitId; // waitIds are unique.
  if (a.kind === "hold" && b.kind === "hold") {
    if (a.resource !== b.resource) return a.resource < b.resource ? -1 : 1;
    if (a.sessionId !== b.sessionId) return a.sessionId - b.sessionId;
    return a.token - b.token;
  }
  return 0;
}

/**
 * A min-heap of deadlines with lazy deletion: a keepalive, a release or a grant does not search
 * the heap for the entry it makes obsolete (that would be a scan); the owner checks each entry
 * against the state when it reaches the top and drops it if stale. Stale entries are bounded by
 * the keepalive rate times the TTL, and each is popped once.
 */
export class DeadlineQueue extends MinHeap<Deadline> {
  constructor() {
    super(compareDeadlines);
  }
}
