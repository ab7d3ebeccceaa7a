/**
 * Quiescence: a group with nothing to do stops heartbeating, as multi-Raft systems do (a node
 * hosts many groups; most are idle most of the time). A quiet leader sends nothing; its followers
 * run no election timer. Failure detection moves to the host, which hears from each peer node
 * (one beat per pair of nodes, whatever the number of groups) and tells the core which peers are
 * live on every tick:
 * - a quiet follower whose leader's node stops being live wakes up already past its leader lease
 *   and campaigns within its randomized timeout, as if the heartbeats had stopped;
 * - a quiet leader with a peer that stops being live wakes up and heartbeats again, so CheckQuorum
 *   deposes it if it lost its majority, exactly as for a group that never went quiet.
 * Any work (a proposal, a read, a transfer, a membership change, a message from a node that is
 * not quiet) wakes the group. Safety does not depend on any of this: terms, votes and the log
 * decide, as always; quiescence only changes when heartbeats are sent.
 */
import type { Progress } from "./progress.ts";
import type { NodeId } from "./types.ts";

/** Whether the node of peer `id` was heard from within an election timeout (the host's view). */
export type PeerLiveness = (id: NodeId) => boolean;

/** Heartbeat context of the round in which a leader goes quiet (ReadIndex keys are JSON arrays, never this). */
export const QUIESCE_CONTEXT = "raft:quiesce";

/**
 * Heartbeat rounds in a row in which the leader could go quiet before it does: the round before
 * the last told every follower the final commit index and every follower answered it.
 */
export const QUIET_AFTER_ROUNDS = 2;

/** What the leader's decision reads. */
export interface QuietView {
  readonly id: NodeId;
  readonly lastIndex: number;
  readonly committed: number;
  /** Whether the committed entry is of the leader's own term (its commit index is then final). */
  readonly committedInTerm: boolean;
  readonly prs: ReadonlyMap<NodeId, Progress>;
  /** No read waiting, no transfer under way, no membership change unapplied. */
  readonly idle: boolean;
}

/**
 * Whether a leader may go quiet: nothing pending, everything committed in its term, every member
 * (learners too) holding the whole log, and every member's node live.
 */
export function quiescable(v: QuietView, live: PeerLiveness): boolean {
  if (!v.idle || !v.committedInTerm || v.committed !== v.lastIndex || !membersLive(v.prs, v.id, live)) return false;
  for (const [id, pr] of v.prs) {
    if (pr.match !== v.lastIndex) return false;
    // (Not "replicate" only: a member back from a restart with nothing new to append stays in
    // probe with its match at the end of the log, and that must not keep the group awake.)
    if (id !== v.id && pr.state === "snapshot") return false;
  }
  return true;
}

/** Whether the node of every member but `self` is live. */
export function membersLive(prs: ReadonlyMap<NodeId, Progress>, self: NodeId, live: PeerLiveness): boolean {
  for (const id of prs.keys()) if (id !== self && !live(id)) return false;
  return true;
}
