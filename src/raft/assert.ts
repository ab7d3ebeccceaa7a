/**
 * Invariant checks for the Raft core. A failed assertion is a programmer error: it throws and is
 * never caught (TIGER_STYLE), because continuing from a corrupt consensus state is worse than a crash.
 */

/** Thrown when a Raft invariant is violated. Never catch it. */
export class RaftInvariantError extends Error {
  override readonly name = "RaftInvariantError";
}

/** Throws {@link RaftInvariantError} with `message` unless `condition` holds. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new RaftInvariantError(message);
}
