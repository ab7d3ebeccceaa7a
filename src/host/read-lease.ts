/**
 * A leader's read lease (Raft thesis §6.4.1): once a quorum has answered a heartbeat round sent
 * at time t, no other leader can be elected before t plus the followers' leader lease, because
 * each of them ignores unforced (pre)votes for an election timeout after it last heard from its
 * leader (and, after a restart, for an election timeout after it started: Raft's
 * holdVotesAtStart). Until then this node still leads, so a read of its applied state at its
 * commit index is linearizable without a round of its own.
 *
 * Why it is safe, and what voids it:
 * - The lease counts from when the round was *requested* (before its heartbeats left), on this
 *   process's monotonic clock, which keeps running while the process is paused: a leader that
 *   wakes from a pause finds its lease over.
 * - It is shorter than the followers' lease by a wide margin (see RaftHost: 60% of the election
 *   timeout), which covers tick rounding, timers that fire early and clock-rate drift.
 * - A leadership transfer overrides the followers' lease (TimeoutNow forces the vote), so a
 *   leader that started one proves leadership by rounds for the rest of its term.
 * - A membership change may make a different set of nodes a quorum: every change voids the lease.
 * - A new term voids it (only rounds of the current term count).
 */
export class ReadLease {
  #until = 0;
  #term = 0;
  /** Bumped by every membership change: a round requested before one proves nothing after it. */
  #confSeq = 0;

  constructor(readonly durationMs: number) {}

  /** What a round requested now must carry to extend the lease when a quorum confirms it. */
  begin(term: number, now: number): LeaseRound {
    return { at: now, term, confSeq: this.#confSeq };
  }

  /** A quorum answered `round`; `term` is the leader's term now. */
  confirm(round: LeaseRound, term: number): void {
    if (this.durationMs <= 0 || round.term !== term || round.confSeq !== this.#confSeq) return;
    const until = round.at + this.durationMs;
    if (term !== this.#term || until > this.#until) {
      this.#term = term;
      this.#until = until;
    }
  }

  /** Milliseconds left on the lease for a leader in `term` at `now` (0: none). */
  remaining(term: number, now: number): number {
    return term === this.#term && now < this.#until ? this.#until - now : 0;
  }

  /** Membership changed: no round requested before counts any more. */
  confChanged(): void {
    this.#confSeq++;
    this.#until = 0;
  }

  /** Leadership ended (or was never held). */
  void(): void {
    this.#until = 0;
  }
}

export interface LeaseRound {
  readonly at: number;
  readonly term: number;
  readonly confSeq: number;
}
