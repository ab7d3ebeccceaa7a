/** Exponential backoff parameters. */
export interface BackoffOptions {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly factor: number;
}

export const BACKOFF_DEFAULT: BackoffOptions = { baseMs: 50, maxMs: 2000, factor: 2 };

/**
 * The delay before reconnect attempt `attempt` (0-based): exponential, capped, with "equal
 * jitter" (half fixed, half random) so a restarted node is not hit by every peer at once while
 * the delay still grows. `random` returns a number in `[0, 1)`; it is injected for tests.
 */
export function backoffDelayMs(attempt: number, opts: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * opts.factor ** Math.min(attempt, 30));
  return ceiling / 2 + random() * (ceiling / 2);
}
