/**
 * The simulator's own seeded PRNG (sfc32, seeded through splitmix32).
 *
 * Why our own and not the core's `createRng`: the harness must stay replayable even if the core
 * changes how it consumes randomness, and each subsystem (network, clock, faults, every node's
 * core) gets its own forked stream so that one subsystem drawing more numbers does not shift the
 * choices of another. That keeps a failing seed's replay stable while the harness is edited.
 */
import type { Rng } from "../../src/raft/types.ts";

/** splitmix32 step: turns a weak seed into well-mixed 32-bit words. */
export function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * A deterministic pseudo-random source. Same seed ⇒ same sequence, on every platform.
 * Implements the core's {@link Rng} so it can be injected into a RawNode.
 */
export class Prng implements Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** @param seed any integer; only its low 32 bits matter. */
  constructor(seed: number) {
    const st = { s: seed | 0 };
    this.#a = splitmix32(st);
    this.#b = splitmix32(st);
    this.#c = splitmix32(st);
    this.#d = splitmix32(st) | 1;
    // Warm up so that nearby seeds diverge immediately.
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number {
    const a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = ((c << 21) | (c >>> 11)) + t | 0;
    return t >>> 0;
  }

  /** A float in `[0, 1)`. */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in `[0, n)`. Throws on `n < 1`. */
  nextInt(n: number): number {
    if (!(n >= 1)) throw new RangeError(`Prng.nextInt: n must be >= 1, got ${n}`);
    return Math.floor(this.float() * n);
  }

  /** An integer in `[lo, hi]` (inclusive both ends). */
  between(lo: number, hi: number): number {
    return lo + this.nextInt(hi - lo + 1);
  }

  /** True with probability `p` (p ≤ 0 never draws, so disabled faults cost no randomness). */
  chance(p: number): boolean {
    if (p <= 0) return false;
    return this.float() < p;
  }

  /** A uniformly chosen element. Throws on an empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Prng.pick: empty array");
    return items[this.nextInt(items.length)]!;
  }

  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }

  /** An independent child stream, derived from (but not correlated with) this one. */
  fork(): Prng {
    return new Prng(this.u32());
  }
}
