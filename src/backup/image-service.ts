/**
 * The daemon's side of `dsync admin backup`: ADMIN_BACKUP takes a linearizable image of every
 * Raft group of the cluster — those this node hosts here, the others (queue partitions living on
 * other nodes) on a node holding them, fetched over the peer link — and holds them;
 * ADMIN_BACKUP_CHUNK hands them out slice by slice, so no frame grows with the state and the
 * cluster keeps serving throughout.
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
import type { PeerLinks } from "../transport/peer-links.ts";

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
  /** Every group a backup must hold, with the nodes holding a replica (preferred first). */
  readonly groups: () => readonly { readonly group: number; readonly holders: readonly string[] }[];
  /** Peer requests to the nodes holding the groups this node lacks. */
  readonly peers: Pick<PeerLinks, "request" | "isConnected">;
}

/** How long one peer request of a backup (an image taken, one chunk) may take. */
const PEER_TIMEOUT_MS = 30_000;

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
    h.peer(Op.BACKUP_IMAGES, (_from, env) => this.#peerImages(env.body));
    h.peer(Op.BACKUP_IMAGE_CHUNK, async (_from, env) => {
      const f = asFields(env.body, "BACKUP_IMAGE_CHUNK");
      return { data: this.chunk(str(f, "backupId", "BACKUP_IMAGE_CHUNK", { maxBytes: 64 }), int(f, "group", "BACKUP_IMAGE_CHUNK", { min: 0, max: 0xffff }), int(f, "offset", "BACKUP_IMAGE_CHUNK", { min: 0 })) };
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
    if (this.#held.size + this.#taking >= MAX_HELD) throw new DsyncError(ErrorCode.OVERLOADED, `this node already holds ${MAX_HELD} backups being fetched; retry in a minute`);
    this.#taking++;
    try {
      return await this.#take(host);
    } finally {
      this.#taking--;
    }
  }

  async #take(host: RaftHost): Promise<AdminBackupReply> {
    const takenAt = Date.now();
    const local = await this.#imagesOf(host, null);
    // Groups held on other nodes (queue partitions live on a subset of the nodes): imaged there,
    // after the same read barrier, and fetched chunk by chunk.
    const missing = this.#o.groups().filter((g) => host.group(g.group) === undefined);
    const byHolder = new Map<string, number[]>();
    for (const g of missing) {
      const at = g.holders.find((id) => this.#o.peers.isConnected(id));
      if (at === undefined) throw new UnavailableError(`no node holding group ${g.group} (${g.holders.join(", ")}) is reachable from this node; retry shortly`);
      byHolder.set(at, [...(byHolder.get(at) ?? []), g.group]);
    }
    for (const [node, groups] of byHolder) {
      const r = (await this.#o.peers.request(node, Op.BACKUP_IMAGES, { groups }, PEER_TIMEOUT_MS)) as { backupId: string; groups: BackupGroupInfo[] };
      for (const info of r.groups) {
        const data = await this.#fetch(node, r.backupId, info);
        local.images.set(info.group, data);
        local.infos.push(info);
      }
    }
    local.infos.sort((a, b) => a.group - b.group);
    const { images, infos } = local;
    const backupId = randomUUID();
    this.#held.set(backupId, { images, timer: this.#expiry(backupId) });
    const bytes = infos.reduce((n, i) => n + i.bytes, 0);
    this.#o.log.info({ backupId, groups: infos.length, fetched: missing.length, bytes }, "backup images taken");
    return { backupId, clusterId: this.#o.clusterId(), node: this.#o.nodeId, takenAt, groups: infos, chunkBytes: this.#chunkBytes, idleTimeoutMs: IDLE_TIMEOUT_MS };
  }

  /** One group's image from the node holding it, checked against its SHA-256. */
  async #fetch(node: string, backupId: string, info: BackupGroupInfo): Promise<Uint8Array> {
    const out = new Uint8Array(info.bytes);
    for (let offset = 0; offset < info.bytes; ) {
      const r = (await this.#o.peers.request(node, Op.BACKUP_IMAGE_CHUNK, { backupId, group: info.group, offset }, PEER_TIMEOUT_MS)) as { data: Uint8Array };
      if (!(r.data instanceof Uint8Array) || r.data.length === 0) throw new DsyncError(ErrorCode.INTERNAL, `${node} sent no bytes of group ${info.group}'s image at offset ${offset}`);
      out.set(r.data.subarray(0, info.bytes - offset), offset);
      offset += r.data.length;
    }
    if (createHash("sha256").update(out).digest("hex") !== info.sha256) throw new DsyncError(ErrorCode.INTERNAL, `group ${info.group}'s image from ${node} does not match its SHA-256`);
    return out;
  }

  /** Images of this node's groups (`only`: those of them), each after a read barrier. */
  async #imagesOf(host: RaftHost, only: ReadonlySet<number> | null): Promise<{ images: Map<number, Uint8Array>; infos: BackupGroupInfo[] }> {
    const groups = [...host.groups()].filter((g) => only === null || only.has(g.group)).sort((a, b) => a.group - b.group);
    const images = new Map<number, Uint8Array>();
    const infos: BackupGroupInfo[] = [];
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
    return { images, infos };
  }

  /** BACKUP_IMAGES from a node taking a backup: images of the named groups, held for BACKUP_IMAGE_CHUNK. */
  async #peerImages(body: unknown): Promise<{ backupId: string; groups: BackupGroupInfo[] }> {
    const f = asFields(body, "BACKUP_IMAGES");
    const host = this.#o.host();
    if (!host) throw new UnavailableError("this node is still starting; retry shortly");
    if (!Array.isArray(f.groups) || !f.groups.every((g) => Number.isInteger(g))) throw new InvalidArgumentError("BACKUP_IMAGES: groups must be an array of group numbers");
    const wanted = new Set(f.groups as number[]);
    const absent = [...wanted].filter((g) => host.group(g) === undefined);
    if (absent.length > 0) throw new UnavailableError(`this node holds no replica of group(s) ${absent.join(", ")}`);
    if (this.#held.size + this.#taking >= MAX_HELD) throw new DsyncError(ErrorCode.OVERLOADED, `this node already holds ${MAX_HELD} backups being fetched; retry in a minute`);
    this.#taking++;
    try {
      const { images, infos } = await this.#imagesOf(host, wanted);
      const backupId = randomUUID();
      this.#held.set(backupId, { images, timer: this.#expiry(backupId) });
      return { backupId, groups: infos };
    } finally {
      this.#taking--;
    }
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
