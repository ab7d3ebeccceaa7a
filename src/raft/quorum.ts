import type { NodeId } from "./types.ts";

/** Outcome of an election tally. */
export type VoteResult = "won" | "lost" | "pending";

/**
 * The highest index acknowledged by a majority of `voters`: sort matches descending and take the
 * `floor(n/2)`-th. Nodes without a match count as 0.
 */
export function committedIndex(voters: readonly NodeId[], match: (id: NodeId) => number): number {
  if (voters.length === 0) return 0;
  const m = voters.map(match).sort((a, b) => b - a);
  return m[Math.floor(voters.length / 2)]!;
}

/** Tallies `votes` (true granted, false rejected) among `voters`; absent voters are pending. */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const quorum = Math.floor(voters.length / 2) + 1;
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const g = votes.get(v);
    if (g === true) granted++;
    else if (g === false) rejected++;
  }
  if (granted >= quorum) return "won";
  if (voters.length - rejected < quorum) return "lost";
  return "pending";
}

/** Whether the nodes in `acks` form a majority of `voters`. */
export function hasQuorum(voters: readonly NodeId[], acks: ReadonlySet<NodeId>): boolean {
  let n = 0;
  for (const v of voters) if (acks.has(v)) n++;
  return n >= Math.floor(voters.length / 2) + 1;
}
