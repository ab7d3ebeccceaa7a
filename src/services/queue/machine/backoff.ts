import type { BackoffConfig } from "./types.ts";

/** 32-bit FNV-1a of a string's UTF-16 code units: cheap, stable, no dependencies. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The delay before the message `id` is visible again after its `deliveryCount`-th delivery
 * ended unacked: `min(capMs, baseMs * factor^(deliveryCount-1))`, minus a jitter of up to
 * `jitter` of it. The jitter is a hash of (id, deliveryCount), not a random draw: every replica
 * computes the same delay, and messages that failed together still spread out. Integer ms.
 */
export function backoffDelay(b: BackoffConfig, id: number, deliveryCount: number): number {
  let d = b.baseMs;
  // factor >= 1, so d only grows; the loop stops at the cap (bounded: at most 1000 steps).
  for (let i = 1; i < deliveryCount && i < 1000 && d < b.capMs; i++) d *= b.factor;
  if (d > b.capMs) d = b.capMs;
  const u = fnv1a32(`${id}:${deliveryCount}`) / 0x1_0000_0000;
  return Math.floor(d - d * b.jitter * u);
}
