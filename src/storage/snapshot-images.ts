/**
 * Snapshot image files in the WAL directory: writing one durably under its final name, reading
 * the one a marker names, and removing those no marker needs. They live apart from `wal.ts`
 * because images bypass the segments and the worker: the main thread writes them directly, and
 * the WAL only orders the marker record after them.
 */
import { readFileSync } from "node:fs";
import { open, readdir, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { WalCorruptionError, WalIoError } from "./errors.ts";
import type { GroupLog } from "./group-log.ts";
import { fsyncDir, parseSnapshotFileName, snapshotFileName, snapshotTempFileName } from "./segment-files.ts";
import { decodeSnapshotFile } from "./snapshot-file.ts";
import type { WalSnapshotMeta } from "./types.ts";

/**
 * Writes an encoded image (see `snapshot-file.ts`) as `snap-<group>-<index>.tmp`, fdatasyncs it,
 * renames it to `snap-<group>-<index>.snap` and fsyncs the directory; returns the final path.
 * @throws WalIoError if any step fails (the temp file is removed).
 */
export async function writeSnapshotImage(dir: string, group: number, index: number, image: Uint8Array, fsync: boolean): Promise<string> {
  const tmp = join(dir, snapshotTempFileName(group, index));
  const final = join(dir, snapshotFileName(group, index));
  try {
    const handle = await open(tmp, "w");
    try {
      await handle.writeFile(image);
      if (fsync) await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(tmp, final);
    if (fsync) await fsyncDir(dir); // The rename must be durable before the marker.
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw new WalIoError(`saving snapshot ${final} failed`, { cause: error });
  }
  return final;
}

/**
 * Reads synchronously the image of `group` that `marker` names.
 * @throws WalCorruptionError if the image is missing, damaged or does not match the marker.
 * @throws WalIoError if it cannot be read.
 */
export function readSnapshotImage(dir: string, group: number, marker: WalSnapshotMeta): { meta: WalSnapshotMeta; data: Uint8Array } {
  const file = join(dir, snapshotFileName(group, marker.index));
  let buf: Uint8Array;
  try {
    buf = readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new WalCorruptionError(file, -1, `snapshot image for the marker at index ${marker.index} is missing`);
    }
    throw new WalIoError(`reading snapshot ${file} failed`, { cause: error });
  }
  const snap = decodeSnapshotFile(buf, file);
  if (snap.meta.index !== marker.index || snap.meta.term !== marker.term) {
    throw new WalCorruptionError(file, 0, `snapshot image (${snap.meta.index}, ${snap.meta.term}) does not match its marker (${marker.index}, ${marker.term})`);
  }
  return snap;
}

/**
 * Removes temp snapshot files and images no marker refers to: older ones are superseded, newer
 * ones were renamed into place but their marker never became durable (a crash in saveSnapshot).
 */
export async function removeUnreferencedSnapshots(dir: string, groups: Map<number, GroupLog>): Promise<void> {
  await removeSnapshotFiles(dir, (group, index, isTemp) => isTemp || groups.get(group)?.snapshotIndex !== index);
}

export async function removeSnapshotFiles(dir: string, doomed: (group: number, index: number, isTemp: boolean) => boolean): Promise<void> {
  for (const name of await readdir(dir)) {
    const snap = parseSnapshotFileName(name);
    if (snap !== null && doomed(snap.group, snap.index, snap.isTemp)) await unlink(join(dir, name)).catch(() => undefined);
  }
}
