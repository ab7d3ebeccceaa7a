/**
 * Recovery at open: replays every segment in order, rebuilds each group's log and repairs a torn
 * tail — and refuses anything else.
 *
 * What counts as a torn tail (a crash during the last, unacknowledged write): in the LAST segment
 * only, a record that is incomplete, zero-filled, has an impossible length or a bad CRC, with no
 * valid record anywhere after it. It is cut off (the file truncated to the last good record and
 * fdatasynced) and reported in {@link WalRecoveryInfo}. Everything else is mid-log corruption and
 * raises {@link WalCorruptionError} naming the file and offset: a bad record followed by a valid
 * one, any damage in an earlier segment (a segment is fdatasynced in full before the next one is
 * created), an undecodable record whose CRC matches (a bug or a version skew, not a torn write),
 * a missing segment, or records that break the log's own rules. A corrupt entry is never replayed.
 */
import { open, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { GroupLog } from "./group-log.ts";
import { RECORD_BODY_BYTES_MAX, RecordDecodeError, decodeRecordBody, scanFrame, type FrameScan, type LogRecord } from "./record.ts";
import { WalCorruptionError } from "./errors.ts";
import { parseSegmentFileName, segmentFileName } from "./segment-files.ts";
import type { WalRecoveryInfo } from "./types.ts";

/** What {@link recoverWal} found. */
export interface RecoveredWal {
  /** Every group seen, with entries materialised. */
  readonly groups: Map<number, GroupLog>;
  /** Live segments in id order (contiguous ids) with their sizes after any truncation. */
  readonly segments: { readonly id: number; readonly bytes: number }[];
  /** Records in the last segment; 0 means it still needs its checkpoint. */
  readonly lastSegmentRecords: number;
  readonly recovery: WalRecoveryInfo;
}

/**
 * Replays the WAL in `dir` (which must exist) and truncates a torn tail on disk.
 * @throws WalCorruptionError on anything but a torn tail (see the module comment).
 */
export async function recoverWal(dir: string): Promise<RecoveredWal> {
  const ids = (await readdir(dir))
    .map(parseSegmentFileName)
    .filter((id): id is number => id !== null)
    .sort((a, b) => a - b);
  for (let i = 1; i < ids.length; i++) {
    // Segment GC deletes oldest first with a directory fsync per file, so a hole is real loss.
    if (ids[i] !== ids[0]! + i) throw new WalCorruptionError(join(dir, segmentFileName(ids[0]! + i)), -1, "segment missing");
  }

  const groups = new Map<number, GroupLog>();
  const segments: { id: number; bytes: number }[] = [];
  let recovery: WalRecoveryInfo = { truncatedBytes: 0, segment: null };
  let lastSegmentRecords = 0;

  for (const [k, id] of ids.entries()) {
    const file = join(dir, segmentFileName(id));
    const isLast = k === ids.length - 1;
    const buf = new Uint8Array(await readFile(file));
    let offset = 0;
    let records = 0;
    while (offset < buf.length) {
      const scan = scanFrame(buf, offset, RECORD_BODY_BYTES_MAX);
      if (scan.kind !== "frame") {
        if (!isLast) throw new WalCorruptionError(file, offset, `${describe(scan)} in a sealed segment`);
        const next = findValidFrame(buf, offset + 1);
        if (next >= 0) throw new WalCorruptionError(file, offset, `${describe(scan)}, followed by a valid record at offset ${next}`);
        await truncateFile(file, offset);
        recovery = { truncatedBytes: buf.length - offset, segment: segmentFileName(id) };
        break;
      }
      let record: LogRecord;
      try {
        record = decodeRecordBody(scan.body);
      } catch (error) {
        if (!(error instanceof RecordDecodeError)) throw error;
        throw new WalCorruptionError(file, offset, `undecodable record with a valid CRC: ${error.message}`, { cause: error });
      }
      const problem = applyRecord(groups, record, id, records === 0, k === 0);
      if (problem !== null) throw new WalCorruptionError(file, offset, problem);
      records++;
      offset = scan.end;
    }
    if (records === 0 && !isLast) throw new WalCorruptionError(file, 0, "sealed segment is empty");
    segments.push({ id, bytes: Math.min(offset, buf.length) });
    if (isLast) lastSegmentRecords = records;
  }

  for (const [group, log] of groups) {
    const first = log.firstIndex;
    if (first !== null && first !== log.snapshotIndex + 1) {
      throw new WalCorruptionError(dir, -1, `group ${group}: live entries start at ${first} but the snapshot ends at ${log.snapshotIndex}`);
    }
  }
  return { groups, segments, lastSegmentRecords, recovery };
}

/**
 * Applies one replayed record; returns why it breaks the log's rules, or null.
 * `isFirstRecord`: checkpoints must be exactly the first record of each segment.
 * `isFirstSegment`: the first live segment's checkpoint establishes the state of the garbage-collected
 * prefix; later checkpoints are copies and must agree with the replayed state.
 */
function applyRecord(groups: Map<number, GroupLog>, record: LogRecord, segment: number, isFirstRecord: boolean, isFirstSegment: boolean): string | null {
  if ((record.kind === "checkpoint") !== isFirstRecord) {
    return isFirstRecord ? "segment does not start with a checkpoint" : "checkpoint inside a segment";
  }
  if (record.kind === "checkpoint") {
    for (const g of record.groups) {
      const log = logOf(groups, g.group);
      if (isFirstSegment) {
        if (log.hardState !== null || log.snapshotMeta !== null) return `group ${g.group} twice in a checkpoint`;
        log.hardState = g.hardState;
        if (g.snapshotMeta !== null) log.applySnapshot(g.snapshotMeta, false); // Nothing to keep yet.
      } else if (!sameHardState(log.hardState, g.hardState) || log.snapshotIndex !== (g.snapshotMeta?.index ?? 0)) {
        return `checkpoint disagrees with the log for group ${g.group}`;
      }
    }
    return null;
  }
  const log = logOf(groups, record.group);
  switch (record.kind) {
    case "entries": {
      const start = record.entries[0]!.index;
      if (start <= log.snapshotIndex) return `group ${record.group}: entries from ${start} at or below snapshot ${log.snapshotIndex}`;
      if (log.hasEntries && start > log.lastIndex + 1) return `group ${record.group}: entries from ${start} leave a gap after ${log.lastIndex}`;
      log.appendEntries(record.entries, segment);
      return null;
    }
    case "hardState":
      log.hardState = record.hardState;
      return null;
    case "snapshot":
      if (record.meta.index <= log.snapshotIndex) return `group ${record.group}: snapshot ${record.meta.index} does not follow ${log.snapshotIndex}`;
      log.applySnapshot(record.meta, record.keepSuffix);
      return null;
  }
}

function logOf(groups: Map<number, GroupLog>, group: number): GroupLog {
  let log = groups.get(group);
  if (log === undefined) groups.set(group, (log = new GroupLog(true)));
  return log;
}

function sameHardState(a: GroupLog["hardState"], b: GroupLog["hardState"]): boolean {
  return a === b || (a !== null && b !== null && a.term === b.term && a.vote === b.vote && a.commit === b.commit);
}

/**
 * The offset of the first complete, CRC-valid, decodable frame at or after `from`, or -1.
 * This is what tells a torn tail (nothing valid after the damage) from mid-log corruption.
 * Quadratic in the worst case, but it only runs over the tail after the damage.
 */
function findValidFrame(buf: Uint8Array, from: number): number {
  for (let at = from; at + 8 < buf.length; at++) {
    const scan = scanFrame(buf, at, Math.min(RECORD_BODY_BYTES_MAX, buf.length - at));
    if (scan.kind !== "frame") continue;
    try {
      decodeRecordBody(scan.body);
      return at;
    } catch {
      // A CRC match by chance inside other bytes; keep looking.
    }
  }
  return -1;
}

function describe(scan: Exclude<FrameScan, { kind: "frame" }>): string {
  switch (scan.kind) {
    case "incomplete":
      return "incomplete record";
    case "zero":
      return "zero-filled space";
    case "oversize":
      return "impossible record length";
    case "badCrc":
      return "CRC mismatch";
  }
}

/** Cuts `file` to `length` bytes and makes the cut durable before anything is appended after it. */
async function truncateFile(file: string, length: number): Promise<void> {
  const handle = await open(file, "r+");
  try {
    await handle.truncate(length);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
