import { timingSafeEqual } from "node:crypto";

/** Constant-time token check, so a token cannot be guessed byte by byte from reply timing. */
export function tokensEqual(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
