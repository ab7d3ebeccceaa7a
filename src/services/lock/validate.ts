import type { LockMode } from "./types.ts";

/** Longest resource name, in UTF-8 bytes. */
export const RESOURCE_BYTES_MAX = 512;
/** Longest client id, in UTF-8 bytes. */
export const CLIENT_ID_BYTES_MAX = 256;

/**
 * UTF-8 length of a JS string without allocating (TextEncoder would copy a 512-byte name on
 * every command). A lone surrogate counts 3 bytes, as TextEncoder would encode it (U+FFFD).
 */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Returns a reason when `v` is not a valid resource name, else null. */
export function badResource(v: unknown): string | null {
  if (typeof v !== "string") return "resource must be a string";
  const n = utf8Length(v);
  if (n < 1 || n > RESOURCE_BYTES_MAX) return `resource must be 1..${RESOURCE_BYTES_MAX} bytes of UTF-8 (got ${n})`;
  return null;
}

/** Returns a reason when `v` is not a valid client id, else null. */
export function badClientId(v: unknown): string | null {
  if (typeof v !== "string") return "clientId must be a string";
  const n = utf8Length(v);
  if (n > CLIENT_ID_BYTES_MAX) return `clientId must be at most ${CLIENT_ID_BYTES_MAX} bytes of UTF-8 (got ${n})`;
  return null;
}

/** Whether `v` is a lock mode. */
export function isMode(v: unknown): v is LockMode {
  return v === "exclusive" || v === "shared";
}

/** Whether `v` is a finite number >= 0 (times and durations in ms). */
export function isTime(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}

/** Whether `v` is an integer id, sequence number or token (safe integer >= 0). */
export function isId(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
