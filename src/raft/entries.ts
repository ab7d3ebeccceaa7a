import type { Entry } from "./types.ts";

/** Bytes an entry counts for in size limits: its payload plus a fixed header estimate. */
export function entryBytes(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD_BYTES;
}

/** Per-entry framing overhead assumed by size limits, so empty entries still count. */
export const ENTRY_OVERHEAD_BYTES = 16;

/** The longest prefix of `ents` within `maxBytes`, but always at least one entry (progress over precision). */
export function limitEntries(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entryBytes(ents[0]!);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entryBytes(ents[n]!);
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}
