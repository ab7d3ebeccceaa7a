/**
 * `dsyncd --restore-from FILE`: seeds an empty data dir from a backup, offline, the way
 * `etcdutl snapshot restore` does. Every node of the new cluster runs it with the same file and
 * its own settings; each group starts from its image as a snapshot at the backup's index, with
 * the new cluster's nodes as voters, and the cluster gets a new id.
 */
import { existsSync, readdirSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { BackupFileError, readBackupFile, type BackupManifest } from "../../protocol/index.ts";
import { ClusterIdentity, restoredClusterId } from "../host/cluster-id.ts";
import { ClusterMachine } from "../services/cluster/machine/cluster-machine.ts";
import { Wal } from "../storage/index.ts";

export interface RestoreTarget {
  readonly dataDir: string;
  /** The new cluster's nodes, id → peer address (this node included). */
  readonly members: ReadonlyMap<string, string>;
  readonly fsync: boolean;
}

export interface RestoreReport {
  readonly clusterId: string;
  readonly source: Omit<BackupManifest, "groups">;
  readonly groups: readonly { group: number; index: number; term: number; bytes: number }[];
  readonly sha256: string;
}

/** A restore that must not go ahead (a non-empty data dir); the file's own faults are BackupFileError. */
export class RestoreError extends Error {
  override readonly name = "RestoreError";
}

export { BackupFileError };

/** Verifies `file` and writes the data dir; nothing is written unless the whole file checks out. */
export async function restoreDataDir(file: string, target: RestoreTarget): Promise<RestoreReport> {
  const backup = await readBackupFile(file);
  const walDir = path.join(target.dataDir, "wal");
  if (existsSync(walDir) && readdirSync(walDir).length > 0) {
    throw new RestoreError(`${target.dataDir} already holds a node's log: restore only into an empty data dir (move it aside first)`);
  }
  // Sorted: every node of the new cluster writes the same membership, whatever its own config's order.
  const voters = [...target.members.keys()].sort();
  // Decode every image before writing anything: a bad image refuses the whole restore.
  const images = backup.manifest.groups.map((g) => {
    const data = backup.images.get(g.group)!;
    return { info: g, data: g.group === 0 ? rebaseGroup0(data, new Map(voters.map((v) => [v, target.members.get(v)!]))) : data };
  });
  await mkdir(target.dataDir, { recursive: true });
  const wal = await Wal.open(walDir, { fsync: target.fsync });
  try {
    for (const { info, data } of images) {
      const meta = { index: info.index, term: info.term, conf: { voters, learners: [] } };
      await wal.saveSnapshot(info.group, meta, data);
      // Everything up to the image's index is committed: a restarted group neither replays nor
      // waits for it, and its first election starts from the backup's term.
      await wal.append([{ kind: "hardState", group: info.group, hardState: { term: info.term, vote: null, commit: info.index } }]);
    }
  } finally {
    await wal.close();
  }
  const clusterId = restoredClusterId(backup.sha256, voters);
  ClusterIdentity.write(target.dataDir, clusterId);
  const { groups, ...source } = backup.manifest;
  return { clusterId, source, groups: groups.map(({ group, index, term, bytes }) => ({ group, index, term, bytes })), sha256: backup.sha256 };
}

/** Group 0's image with the new cluster's member book; a corrupt image is refused. */
function rebaseGroup0(data: Uint8Array, members: ReadonlyMap<string, string>): Uint8Array {
  const m = new ClusterMachine();
  try {
    m.restore(data);
  } catch (err) {
    throw new BackupFileError(`group 0's image cannot be read: ${(err as Error).message}`);
  }
  m.rebase(members);
  return m.snapshot();
}
