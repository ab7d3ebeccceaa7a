/** A committed log entry as a state machine sees it. */
export interface AppliedEntry {
  readonly index: number;
  readonly term: number;
  readonly data: Uint8Array;
}

/**
 * A replicated state machine. `apply` must be deterministic: the same entries in the same order
 * give the same state and results on every replica. Time, when a command needs it, is the
 * leader's stamp carried inside the command, never the replica's clock.
 */
export interface StateMachine {
  /** Applies one committed command and returns the result for the proposer (if it waits). */
  apply(entry: AppliedEntry): unknown;
  /** An image of the whole state, taken after the last applied entry. */
  snapshot(): Uint8Array;
  /** Replaces the whole state with an image from {@link snapshot}. */
  restore(data: Uint8Array): void;
}
