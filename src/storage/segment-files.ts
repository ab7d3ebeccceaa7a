/**
 * File names in a WAL directory, and the directory fsync that makes creates, renames and
 * unlinks durable.
 *
 *   wal-<id, 16 digits>.log        segment `id`; ids are consecutive, the live ones a contiguous range
 *   snap-<group>-<index>.snap      the snapshot image of `group` at `index`
 *   snap-<group>-<index>.tmp       a snapshot being written; never read, deleted at open
 */
import { closeSync, fsyncSync, openSync } from "node:fs";
import { open } from "node:fs/promises";

const SEGMENT_RE = /^wal-(\d{16})\.log$/;
const SNAPSHOT_RE = /^snap-(\d+)-(\d+)\.(snap|tmp)$/;

/** The file name of segment `id` (a positive safe integer). Zero-padded so names sort by id. */
export function segmentFileName(id: number): string {
  return `wal-${String(id).padStart(16, "0")}.log`;
}

/** The segment id named by `name`, or null if `name` is not a segment file. */
export function parseSegmentFileName(name: string): number | null {
  const m = SEGMENT_RE.exec(name);
  return m === null ? null : Number(m[1]);
}

/** The final file name of the snapshot of `group` at `index`. */
export function snapshotFileName(group: number, index: number): string {
  return `snap-${group}-${index}.snap`;
}

/** The temp file name a snapshot is written under before it is renamed into place. */
export function snapshotTempFileName(group: number, index: number): string {
  return `snap-${group}-${index}.tmp`;
}

/** Group, index and whether it is a temp file, or null if `name` is not a snapshot file. */
export function parseSnapshotFileName(name: string): { group: number; index: number; isTemp: boolean } | null {
  const m = SNAPSHOT_RE.exec(name);
  return m === null ? null : { group: Number(m[1]), index: Number(m[2]), isTemp: m[3] === "tmp" };
}

/**
 * fsyncs directory `dir` so that entries created, renamed or removed in it survive a crash
 * (POSIX makes no such promise for the file's own fsync). Blocking; used by the worker.
 */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The non-blocking {@link fsyncDirSync}, for the main thread (runs on the libuv pool). */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
