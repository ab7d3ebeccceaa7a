/**
 * A power-loss model for tests. SIGKILL never loses data the process wrote: it is in the page
 * cache and reaches the disk anyway. A power cut loses whatever was not fsynced. To model that,
 * the WAL's segment writer (only with the `record-synced` failpoint) records after every fdatasync how many
 * bytes of each segment are known durable, and {@link simulatePowerLoss}, run by a test harness
 * between a SIGKILL and the restart, cuts every segment back to that.
 *
 * The record is written after the fdatasync returns and before the batch is acknowledged, so every
 * acknowledged byte is covered. A kill between the two makes the record understate durability
 * (bytes that were synced but never acknowledged get cut): a harsher power cut, never a kinder one.
 *
 * What is not modelled, and why that is sound:
 *  - Snapshot images are written as temp file + fdatasync + rename + directory fsync, and their
 *    marker is appended to the WAL only after that. An image is therefore durable before anything
 *    can refer to it; an image whose marker is cut away here is unreferenced and removed at open;
 *    `.tmp` images are removed at open whatever their content.
 *  - Segment creations and deletions are directory-fsynced by the writer before the record changes.
 *    A segment newer than every recorded one was created after the last record and is removed.
 *  - The record file itself is not fsynced: it is harness metadata, and SIGKILL does not lose it.
 *  - Real power loss may leave garbage rather than a clean cut; recovery's torn-tail tests cover that.
 */
import { renameSync, writeFileSync } from "node:fs";
import { readFile, readdir, stat, truncate, unlink } from "node:fs/promises";
import { join } from "node:path";
import { parseSegmentFileName } from "./segment-files.ts";

/** The record's file name inside the WAL directory (not a segment or snapshot name, so the WAL ignores it). */
export const SYNCED_FILE = ".synced.json";

interface SyncedRecord {
  readonly version: 1;
  /** Segment file name → bytes known durable. */
  readonly segments: Record<string, number>;
}

/** Writer side: the durable offsets, rewritten atomically (temp + rename) after every change. */
export class SyncedRecorder {
  readonly #file: string;
  readonly #tmp: string;
  readonly #segments: Map<string, number>;

  /** `segments`: the record so far (it travels between threads with the segment writer). */
  constructor(dir: string, segments: Readonly<Record<string, number>> = {}) {
    this.#file = join(dir, SYNCED_FILE);
    this.#tmp = `${this.#file}.tmp`;
    this.#segments = new Map(Object.entries(segments));
  }

  segments(): Record<string, number> {
    return Object.fromEntries(this.#segments);
  }

  set(segment: string, durableBytes: number): void {
    this.#segments.set(segment, durableBytes);
  }

  delete(segment: string): void {
    this.#segments.delete(segment);
  }

  write(): void {
    const record: SyncedRecord = { version: 1, segments: Object.fromEntries(this.#segments) };
    writeFileSync(this.#tmp, JSON.stringify(record));
    renameSync(this.#tmp, this.#file);
  }
}

/** One segment {@link simulatePowerLoss} looked at. */
export interface PowerLossFile {
  readonly file: string;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  /** Created after the last record: deleted. */
  readonly removed: boolean;
}

export interface PowerLossReport {
  /** Bytes cut from all segments, removed segments included. */
  readonly truncatedBytes: number;
  readonly files: readonly PowerLossFile[];
}

/**
 * Makes the WAL in `walDir` (a dsyncd node's `<dataDir>/wal`) look as if power was lost: every
 * recorded segment is cut to its recorded durable length, segments newer than every recorded one
 * are deleted, older unrecorded ones (sealed: fully fdatasynced before their successor existed)
 * are kept. The record is then removed; the next run with `record-synced` writes a fresh one.
 * Only call it while no process has the WAL open.
 * @throws Error if there is no record (the WAL did not run with `record-synced`).
 */
export async function simulatePowerLoss(walDir: string): Promise<PowerLossReport> {
  const recordFile = join(walDir, SYNCED_FILE);
  let record: SyncedRecord;
  try {
    record = JSON.parse(await readFile(recordFile, "utf8")) as SyncedRecord;
  } catch (error) {
    throw new Error(`simulatePowerLoss: cannot read ${recordFile}; did the WAL run with DSYNC_FAILPOINTS=record-synced?`, { cause: error });
  }
  const recorded = new Map(Object.entries(record.segments));
  let newestRecorded = 0;
  for (const name of recorded.keys()) newestRecorded = Math.max(newestRecorded, parseSegmentFileName(name) ?? 0);

  const files: PowerLossFile[] = [];
  let truncatedBytes = 0;
  const names = (await readdir(walDir)).filter((n) => parseSegmentFileName(n) !== null).sort();
  for (const name of names) {
    const path = join(walDir, name);
    const bytesBefore = (await stat(path)).size;
    const durable = recorded.get(name);
    if (durable === undefined && parseSegmentFileName(name)! > newestRecorded) {
      await unlink(path);
      truncatedBytes += bytesBefore;
      files.push({ file: name, bytesBefore, bytesAfter: 0, removed: true });
    } else if (durable !== undefined && bytesBefore > durable) {
      await truncate(path, durable);
      truncatedBytes += bytesBefore - durable;
      files.push({ file: name, bytesBefore, bytesAfter: durable, removed: false });
    } else {
      files.push({ file: name, bytesBefore, bytesAfter: bytesBefore, removed: false });
    }
  }
  await unlink(recordFile);
  await unlink(`${recordFile}.tmp`).catch(() => undefined);
  return { truncatedBytes, files };
}
