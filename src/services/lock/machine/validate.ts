import { utf8Length } from "../../../../protocol/validate.ts";
import type { LockMode } from "./types.ts";

/** Longest resource name, in UTF-8 bytes. */
export const RESOURCE_BYTES_MAX = 512;
/** Longest client id, in UTF-8 bytes. */
export const CLIENT_ID_BYTES_MAX = 256;

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
