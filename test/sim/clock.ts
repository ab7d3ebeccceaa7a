/**
 * Simulated time. One simulator step is one unit of global time; each live node normally receives
 * one Raft tick per step, but may miss some (drift), so nodes' election timers do not stay in
 * lock-step — that is where split votes and stale leaders come from.
 */
import type { Prng } from "./prng.ts";

/** Global simulated time, in steps. Never reads a real clock. */
export class SimClock {
  #now = 0;
  readonly #rng: Prng;
  readonly #tickSkipRate: number;

  /**
   * @param rng this clock's own stream (forked from the seed).
   * @param tickSkipRate per-node chance in `[0, 1)` of missing the tick of one step.
   */
  constructor(rng: Prng, tickSkipRate: number) {
    this.#rng = rng;
    this.#tickSkipRate = tickSkipRate;
  }

  /** The current step number, starting at 0. */
  get now(): number {
    return this.#now;
  }

  /** Advance global time by one step. */
  advance(): void {
    this.#now++;
  }

  /** Whether a node gets its Raft tick in this step (false ⇒ its clock runs slow this step). */
  shouldTick(): boolean {
    return !this.#rng.chance(this.#tickSkipRate);
  }
}
