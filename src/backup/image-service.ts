/**
 * The daemon's side of `dsync admin backup`: ADMIN_BACKUP takes a linearizable image of every
 * Raft group this node hosts and holds them; ADMIN_BACKUP_CHUNK hands them out slice by slice, so
 * no frame grows with the state and the cluster keeps serving throughout.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  DsyncError,
  ErrorCode,
  InvalidArgumentError,
  Op,
  UnavailableError,
  asFields,
  int,
  str,
  type AdminBackupChunkReply,
  type AdminBackupReply,
  type BackupGroupInfo,
} from "../../protocol/index.ts";
import type { RaftHost } from "../host/raft-host.ts";
import type { Handlers, Service } from "../host/service.ts";
import type { Logger } from "../host/logger.ts";

/** How long a backup's images stay after their last chunk request (the client is gone). */
const IDLE_TIMEOUT_MS = 60_000;
/** Backups held at once: each is a full copy of the node's state in memory. */
const MAX_HELD = 2;
/** How long each group's read barrier may take (a leader must confirm it still leads). */
const BARRIER_TIMEOUT_MS = 10_000;

interface Held {
  readonly images: Map<number, Uint8Array>;
  timer: NodeJS.Timeout;
}

export interface BackupImagesOptions {
  readonly host: () => RaftHost | null;
  readonly nodeId: string;
  readonly clusterId: () => string;
  /** The largest frame this node sends: chunks stay well below it. */
  readonly maxFrameBytes: number;
  readonly log: Logger;
  /** Queue partitions this node holds no replica of (a cluster larger than the replication factor). */
  readonly missingPartitions: () => readonly number[];
}

/** ADMIN_BACKUP and ADMIN_BACKUP_CHUNK on the client port. */
export class BackupImages implements Service {
  readonly name = "backup";
  readonly #o: BackupImagesOptions;
  readonly #held = new Map<string, Held>();
  /** Backups whose images are being taken (counted against MAX_HELD with the held ones). */
  #taking = 0;
  readonly #chunkBytes: number;

  constructor(o: BackupImagesOptions) {
    this.#o = o;
    this.#chunkBytes = Math.max(4096, Math.min(1 << 20, Math.floor(o.maxFrameBytes / 2)));
  }

  register(h: Handlers): void {
    h.client.register(Op.ADMIN_BACKUP, async (body): Promise<AdminBackupReply> => {
      asFields(body, "ADMIN_BACKUP");
      return this.take();
    });
    h.client.register(Op.ADMIN_BACKUP_CHUNK, (body): AdminBackupChunkReply => {
      const f = asFields(body, "ADMIN_BACKUP_CHUNK");
      const id = str(f, "backupId", "ADMIN_BACKUP_CHUNK", { maxBytes: 64 });
      const group = int(f, "group", "ADMIN_BACKUP_CHUNK", { min: 0, max: 0xffff });
      const offset = int(f, "offset", "ADMIN_BACKUP_CHUNK", { min: 0 });
      return { data: this.chunk(id, group, offset) };
    });
  }

  stop(): void {
    for (const h of this.#held.values()) clearTimeout(h.timer);
    this.#held.clear();
  }

  /** Images of every group, each after a read barrier: it holds every write acknowledged before. */
  async take(): Promise<AdminBackupReply> {
    const host = this.#o.host();
    if (!host) throw new UnavailableError("this node is still starting; retry shortly");
    const missing = this.#o.missingPartitions();
    if (missing.length > 0) {
      // A backup is one node's images of every group; partitions held elsewhere are not fetched yet.
      throw new UnavailableError(`this node holds no replica of queue partition(s) ${missing.join(", ")}: a backup needs every partition on the node that takes it, so it works only while every node holds every partition (nodes ≤ replication factor)`);
    }
    if (this.#held.size + this.#taking >= MAX_HELD) throw new DsyncError(ErrorCode.OVERLOADED, `this node already holds ${MAX_HELD} backups being fetched; retry in a minute`);
    this.#taking++;
    try {
      return await this.#take(host);
    } finally {
      this.#taking--;
    }
  }

  async #take(host: RaftHost): Promise<AdminBackupReply> {
    const groups = [...host.groups()].sort((a, b) => a.group - b.group);
    const images = new Map<number, Uint8Array>();
    const infos: BackupGroupInfo[] = [];
    const takenAt = Date.now();
    for (const g of groups) {
      if (g.leader === null) throw new UnavailableError(`group ${g.group} has no leader right now; retry shortly`);
      await g.readBarrier(BARRIER_TIMEOUT_MS);
      const img = g.image();
      images.set(g.group, img.data);
      infos.push({
        group: g.group,
        index: img.index,
        term: img.term,
        voters: [...img.conf.voters],
        learners: [...img.conf.learners],
        bytes: img.data.length,
        sha256: createHash("sha256").update(img.data).digest("hex"),
      });
    }
    const backupId = randomUUID();
    this.#held.set(backupId, { images, timer: this.#expiry(backupId) });
    const bytes = infos.reduce((n, i) => n + i.bytes, 0);
    this.#o.log.info({ backupId, groups: infos.length, bytes }, "backup images taken");
    return { backupId, clusterId: this.#o.clusterId(), node: this.#o.nodeId, takenAt, groups: infos, chunkBytes: this.#chunkBytes, idleTimeoutMs: IDLE_TIMEOUT_MS };
  }

  chunk(id: string, group: number, offset: number): Uint8Array {
    const held = this.#held.get(id);
    if (!held) throw new InvalidArgumentError(`backup ${id} is unknown here or expired (images are dropped ${IDLE_TIMEOUT_MS / 1000} s after the last chunk request): take the backup again`);
    const image = held.images.get(group);
    if (!image) throw new InvalidArgumentError(`backup ${id} has no group ${group}`);
    if (offset > image.length) throw new InvalidArgumentError(`offset ${offset} is past the end of group ${group}'s image (${image.length} bytes)`);
    clearTimeout(held.timer);
    held.timer = this.#expiry(id);
    return image.subarray(offset, offset + this.#chunkBytes);
  }

  #expiry(id: string): NodeJS.Timeout {
    const t = setTimeout(() => this.#held.delete(id), IDLE_TIMEOUT_MS);
    t.unref();
    return t;
  }
}
