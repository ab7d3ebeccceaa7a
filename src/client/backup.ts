/**
 * Taking a backup from a client: ADMIN_BACKUP on the connected node, then every group's image
 * slice by slice into a backup file (see protocol/backup-file.ts). Use a client that stays on one
 * node (`preferLeader: false`): the images live on the node that took them.
 */
import { createHash } from "node:crypto";
import {
  BackupFileWriter,
  DsyncError,
  ErrorCode,
  Op,
  type AdminBackupChunkReply,
  type AdminBackupReply,
} from "../../protocol/index.ts";
import type { DsyncClient } from "./client.ts";

/** How far a backup has come: bytes of images received out of the total. */
export interface BackupProgress {
  readonly bytes: number;
  readonly totalBytes: number;
  readonly groupsDone: number;
  readonly groups: number;
}

export interface BackupResult {
  readonly file: string;
  /** SHA-256 of the whole file (it ends with it). */
  readonly sha256: string;
  readonly bytes: number;
  readonly manifest: AdminBackupReply;
}

/** Writes a backup of the cluster, as the connected node sees it, to `file` (`file.partial` until complete). */
export async function takeBackup(client: DsyncClient, file: string, onProgress?: (p: BackupProgress) => void): Promise<BackupResult> {
  const m = (await client.call(Op.ADMIN_BACKUP, {}, { timeoutMs: 60_000 })) as AdminBackupReply;
  const writer = await BackupFileWriter.create(file, { clusterId: m.clusterId, node: m.node, takenAt: m.takenAt, groups: m.groups });
  const totalBytes = m.groups.reduce((n, g) => n + g.bytes, 0);
  let bytes = 0;
  try {
    for (const [i, g] of m.groups.entries()) {
      const hash = createHash("sha256");
      let offset = 0;
      while (offset < g.bytes) {
        const r = (await client.call(Op.ADMIN_BACKUP_CHUNK, { backupId: m.backupId, group: g.group, offset }, { idempotent: true })) as AdminBackupChunkReply;
        if (r.data.length === 0) throw new DsyncError(ErrorCode.INTERNAL, `group ${g.group}'s image ended at ${offset} of ${g.bytes} bytes`);
        hash.update(r.data);
        await writer.write(r.data);
        offset += r.data.length;
        bytes += r.data.length;
        onProgress?.({ bytes, totalBytes, groupsDone: i, groups: m.groups.length });
      }
      if (hash.digest("hex") !== g.sha256) throw new DsyncError(ErrorCode.INTERNAL, `group ${g.group}'s image arrived damaged (SHA-256 mismatch); take the backup again`);
      onProgress?.({ bytes, totalBytes, groupsDone: i + 1, groups: m.groups.length });
    }
    const sha256 = await writer.finish();
    return { file, sha256, bytes: writer.bytes + 32, manifest: m };
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
