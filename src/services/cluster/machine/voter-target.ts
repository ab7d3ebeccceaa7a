/**
 * How many of the cluster's nodes vote in group 0: 3, or 5 from five nodes on. More voters add
 * no safety worth their cost (every group-0 write waits for a majority of them); the other nodes
 * follow group 0 as learners and serve clients all the same.
 */
export function group0VoterTarget(nodes: number): number {
  if (nodes >= 5) return 5;
  return Math.min(3, nodes);
}

/** A new cluster's group-0 voters and learners, from its founding nodes (the same on every founder). */
export function foundingGroup0(ids: readonly string[]): { voters: string[]; learners: string[] } {
  const sorted = [...new Set(ids)].sort();
  const k = group0VoterTarget(sorted.length);
  return { voters: sorted.slice(0, k), learners: sorted.slice(k) };
}
