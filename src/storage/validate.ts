/**
 * Argument checks for records handed to the WAL. A failure is a caller bug, reported as
 * {@link WalInvalidArgumentError} before anything of the offending `append()` is written.
 * Each check returns a defensive copy, so later mutation by the caller cannot reach the log.
 */
import { WalInvalidArgumentError } from "./errors.ts";
import type { GroupLog } from "./group-log.ts";
import type { WalEntry, WalHardState, WalSnapshotMeta } from "./types.ts";

function isUint(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function fail(message: string): never {
  throw new WalInvalidArgumentError(message);
}

/** A group id is a non-negative safe integer. */
export function checkGroup(group: unknown): number {
  if (!isUint(group)) fail(`group ${String(group)} is not a non-negative integer`);
  return group;
}

/**
 * Entries must be non-empty, consecutive, with non-decreasing terms, start in
 * `(snapshotIndex, lastIndex + 1]` of `log`, and not go below the term they follow.
 */
export function checkEntries(group: number, entries: readonly WalEntry[], log: GroupLog): WalEntry[] {
  if (!Array.isArray(entries) || entries.length === 0) fail(`group ${group}: entries record without entries`);
  const first = entries[0]!.index;
  const out = entries.map((e, i): WalEntry => {
    if (!isUint(e.term) || !isUint(e.index) || !isUint(e.type) || !(e.data instanceof Uint8Array)) fail(`group ${group}: malformed entry at position ${i}`);
    if (e.index !== first + i) fail(`group ${group}: entry indexes not consecutive at ${e.index}`);
    if (i > 0 && e.term < entries[i - 1]!.term) fail(`group ${group}: entry terms decrease at ${e.index}`);
    return { term: e.term, index: e.index, type: e.type, data: e.data };
  });
  if (first <= log.snapshotIndex) fail(`group ${group}: entries from ${first} at or below snapshot ${log.snapshotIndex}`);
  if (first > log.lastIndex + 1) fail(`group ${group}: entries from ${first} leave a gap after ${log.lastIndex}`);
  const prevTerm = log.termAt(first - 1);
  if (prevTerm !== null && out[0]!.term < prevTerm) fail(`group ${group}: entry ${first} has term ${out[0]!.term} below the preceding ${prevTerm}`);
  return out;
}

/** A hard state has non-negative integer term and commit, and a string or null vote. */
export function checkHardState(group: number, hs: WalHardState): WalHardState {
  if (hs === null || typeof hs !== "object" || !isUint(hs.term) || !isUint(hs.commit) || (hs.vote !== null && typeof hs.vote !== "string")) {
    fail(`group ${group}: malformed hard state`);
  }
  return { term: hs.term, vote: hs.vote, commit: hs.commit };
}

/** Snapshot metadata is well-formed and its index is beyond the group's current snapshot. */
export function checkSnapshotMeta(group: number, meta: WalSnapshotMeta, log: GroupLog | undefined): WalSnapshotMeta {
  const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === "string");
  if (meta === null || typeof meta !== "object" || !isUint(meta.index) || !isUint(meta.term) || meta.conf === null || typeof meta.conf !== "object" || !isStrings(meta.conf.voters) || !isStrings(meta.conf.learners)) {
    fail(`group ${group}: malformed snapshot metadata`);
  }
  const current = log?.snapshotIndex ?? 0;
  if (meta.index <= current) fail(`group ${group}: snapshot at ${meta.index} is not beyond the current snapshot at ${current}`);
  return { index: meta.index, term: meta.term, conf: { voters: [...meta.conf.voters], learners: [...meta.conf.learners] } };
}
