/**
 * Wire types of ADMIN_BACKUP and ADMIN_BACKUP_CHUNK, one declaration for the daemon and the
 * client. PROTOCOL.md "Backup and restore" describes the exchange and the file they fill.
 */

/** One Raft group's image in a backup: where in its log it was taken, its membership, its size. */
export interface BackupGroupInfo {
  readonly group: number;
  /** The log index the image reflects (every entry up to it applied) and that entry's term. */
  readonly index: number;
  readonly term: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly bytes: number;
  /** SHA-256 of the image, hex: the client checks what it received against it. */
  readonly sha256: string;
}

/** ADMIN_BACKUP's reply: the images now held by the node, fetched with ADMIN_BACKUP_CHUNK. */
export interface AdminBackupReply {
  readonly backupId: string;
  readonly clusterId: string;
  readonly node: string;
  /** When the images were taken (ms since the epoch). */
  readonly takenAt: number;
  readonly groups: readonly BackupGroupInfo[];
  /** Bytes per ADMIN_BACKUP_CHUNK reply at most. */
  readonly chunkBytes: number;
  /** The node drops the images after this long without a chunk request. */
  readonly idleTimeoutMs: number;
}

/** ADMIN_BACKUP_CHUNK's reply: bytes `[offset, offset + data.length)` of one group's image. */
export interface AdminBackupChunkReply {
  readonly data: Uint8Array;
}
