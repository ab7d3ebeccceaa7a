import type { Rng } from "./types.ts";

/**
 * A small seeded PRNG (mulberry32). Deterministic for a given seed, so a simulation run replays
 * exactly; not cryptographically secure, and it need not be: it only jitters election timeouts.
 */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  const nextU32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    nextInt(n: number): number {
      if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`nextInt: n must be a positive integer, got ${n}`);
      // Modulo bias is at most n / 2^32: irrelevant for tick counts.
      return nextU32() % n;
    },
  };
}
