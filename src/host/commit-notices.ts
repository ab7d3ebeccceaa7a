/**
 * A leader's commit notices, folded into its next append when one follows soon.
 *
 * When a leader's commit index moves and a follower already holds every entry, the core sends that
 * follower an append with no entries just to carry the new commit index, and the follower answers
 * it. At one client that is half the peer traffic of a write: for each put the leader wrote two
 * appends and two such notices and read four answers. The next append carries the commit index
 * anyway, so a notice is held for a few milliseconds and dropped if an append to the same peer
 * goes out first; otherwise it is sent when the delay ends. Measured on 3 nodes, puts for 5 s,
 * alternating runs: C=1 213 → 270 puts/s (4 runs each), C=16 3,466 → 3,427 (5 runs: no change).
 *
 * Safe because a follower's commit index is advisory: it only decides when the follower applies.
 * Heartbeats carry the commit index too, and a leader goes quiet only after a heartbeat round
 * every follower answered. What a follower's apply does at once is push events to its own
 * clients: a lock grant to a waiter whose session is bound there must not wait, so a service
 * that applies an event for a client not connected to the leader asks for its notices to go now
 * (`RaftGroup.notifyFollowersNow`). Queue subscriptions follow their partition's leader and cache
 * invalidations travel as messages from the key's home, so neither waits on a follower's apply.
 * Linearizable reads go through the leader's ReadIndex; a stale read at a follower may lag by up
 * to the delay more than before.
 */
import { MessageType, type Message, type NodeId } from "../raft/index.ts";

/** How long a notice may wait for an append to carry it: a few put cycles at one client. */
export const COMMIT_NOTICE_DELAY_MS = 5;

export class CommitNotices {
  readonly #held = new Map<NodeId, Message>();
  #timer: NodeJS.Timeout | null = null;

  /** `delayMs` 0 sends every notice at once. `send` gets the notices whose delay ended. */
  constructor(
    readonly delayMs: number,
    private readonly send: (to: NodeId, msgs: Message[]) => void,
  ) {}

  /** Notices waiting now. */
  get held(): number {
    return this.#held.size;
  }

  /** Whether `msgs`, all for `to`, were taken to be sent later (a lone commit notice). */
  hold(to: NodeId, msgs: readonly Message[]): boolean {
    if (this.delayMs <= 0) return false;
    const only = msgs.length === 1 ? msgs[0]! : null;
    if (only !== null && only.type === MessageType.App && only.entries.length === 0 && only.snapshot === undefined) {
      this.#held.set(to, only);
      this.#timer ??= setTimeout(() => this.#flush(), this.delayMs);
      return true;
    }
    // An append carries the leader's commit index as of now: at least as new as a held one.
    if (this.#held.has(to) && msgs.some((m) => m.type === MessageType.App)) this.#held.delete(to);
    return false;
  }

  /** Sends what is held now. */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#flush();
  }

  /** Drops what is held (the group stopped). */
  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#held.clear();
  }

  #flush(): void {
    this.#timer = null;
    const held = [...this.#held];
    this.#held.clear();
    for (const [to, m] of held) this.send(to, [m]);
  }
}
