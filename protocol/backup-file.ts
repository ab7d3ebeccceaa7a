/**
 * The backup file `dsync admin backup` writes and `dsyncd --restore-from` reads:
 *
 *   "DSYNCBAK"  u32 format (1)  u32 manifest length M  manifest (M bytes of UTF-8 JSON)
 *   image of manifest.groups[0] … image of manifest.groups[n-1]  (each `bytes` long)
 *   SHA-256 of everything before it (32 bytes)
 *
 * Integers are big-endian. The manifest is {clusterId, node, takenAt, groups: BackupGroupInfo[]};
 * each group also carries its image's own SHA-256. A file is written as `<name>.partial` and
 * renamed once complete and synced, so a backup cut short never looks like a finished one.
 */
import { createHash, type Hash } from "node:crypto";
import { open, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import type { BackupGroupInfo } from "./backup-messages.ts";

export const BACKUP_MAGIC = "DSYNCBAK";
export const BACKUP_FORMAT = 1;
const HEAD_BYTES = 16;
const SUM_BYTES = 32;

/** What a backup holds besides the images themselves. */
export interface BackupManifest {
  readonly clusterId: string;
  readonly node: string;
  readonly takenAt: number;
  readonly groups: readonly BackupGroupInfo[];
}

/** A verified backup: its manifest, one image per group, and the whole file's SHA-256. */
export interface BackupContents {
  readonly manifest: BackupManifest;
  readonly images: ReadonlyMap<number, Uint8Array>;
  readonly sha256: string;
}

/** A backup file that is not one, is cut short or does not match its checksums. */
export class BackupFileError extends Error {
  override readonly name = "BackupFileError";
}

/** Streams a backup to disk: the manifest first, then the images' bytes in manifest order. */
export class BackupFileWriter {
  readonly #file: FileHandle;
  readonly #path: string;
  readonly #hash: Hash = createHash("sha256");
  #written = 0;

  private constructor(file: FileHandle, path: string) {
    this.#file = file;
    this.#path = path;
  }

  static async create(path: string, manifest: BackupManifest): Promise<BackupFileWriter> {
    const file = await open(`${path}.partial`, "w", 0o600);
    const w = new BackupFileWriter(file, path);
    const json = Buffer.from(JSON.stringify(manifest), "utf8");
    const head = Buffer.alloc(HEAD_BYTES);
    head.write(BACKUP_MAGIC, 0, "ascii");
    head.writeUInt32BE(BACKUP_FORMAT, 8);
    head.writeUInt32BE(json.length, 12);
    await w.write(head);
    await w.write(json);
    return w;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.#written;
  }

  async write(data: Uint8Array): Promise<void> {
    this.#hash.update(data);
    await this.#file.write(data);
    this.#written += data.length;
  }

  /** Appends the checksum, syncs and renames the file into place; returns the SHA-256 (hex). */
  async finish(): Promise<string> {
    const sum = this.#hash.digest();
    await this.#file.write(sum);
    await this.#file.sync();
    await this.#file.close();
    await rename(`${this.#path}.partial`, this.#path);
    return sum.toString("hex");
  }

  /** Drops the partial file (a failed backup leaves nothing behind). */
  async abort(): Promise<void> {
    await this.#file.close().catch(() => undefined);
    await rm(`${this.#path}.partial`, { force: true });
  }
}

/** Reads and verifies a backup file. @throws BackupFileError saying what is wrong with it */
export async function readBackupFile(path: string): Promise<BackupContents> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw new BackupFileError(`cannot read ${path}: ${(err as Error).message}`);
  }
  return parseBackup(buf, path);
}

/** Verifies a backup held in memory. @throws BackupFileError */
export function parseBackup(buf: Buffer, name = "the backup"): BackupContents {
  if (buf.length < HEAD_BYTES + SUM_BYTES || buf.toString("ascii", 0, 8) !== BACKUP_MAGIC) {
    throw new BackupFileError(`${name} is not a dsync backup (it does not start with ${BACKUP_MAGIC})`);
  }
  const format = buf.readUInt32BE(8);
  if (format !== BACKUP_FORMAT) throw new BackupFileError(`${name} has format ${format}; this dsyncd reads format ${BACKUP_FORMAT}`);
  const manifestBytes = buf.readUInt32BE(12);
  if (HEAD_BYTES + manifestBytes + SUM_BYTES > buf.length) throw new BackupFileError(`${name} is truncated: it ends inside its manifest`);
  const manifest = parseManifest(buf.subarray(HEAD_BYTES, HEAD_BYTES + manifestBytes), name);
  const expected = HEAD_BYTES + manifestBytes + manifest.groups.reduce((n, g) => n + g.bytes, 0) + SUM_BYTES;
  if (buf.length !== expected) {
    throw new BackupFileError(`${name} is ${buf.length < expected ? "truncated" : "longer than its manifest says"}: ${buf.length} bytes, expected ${expected}`);
  }
  const body = buf.subarray(0, buf.length - SUM_BYTES);
  const sum = createHash("sha256").update(body).digest();
  if (!sum.equals(buf.subarray(buf.length - SUM_BYTES))) throw new BackupFileError(`${name} is corrupt: its SHA-256 does not match the checksum it ends with`);
  const images = new Map<number, Uint8Array>();
  let at = HEAD_BYTES + manifestBytes;
  for (const g of manifest.groups) {
    const image = buf.subarray(at, at + g.bytes);
    at += g.bytes;
    if (createHash("sha256").update(image).digest("hex") !== g.sha256) throw new BackupFileError(`${name} is corrupt: group ${g.group}'s image does not match its SHA-256`);
    images.set(g.group, image);
  }
  return { manifest, images, sha256: sum.toString("hex") };
}

function parseManifest(bytes: Buffer, name: string): BackupManifest {
  let m: unknown;
  try {
    m = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new BackupFileError(`${name} is corrupt: its manifest is not JSON`);
  }
  const bad = (what: string): never => {
    throw new BackupFileError(`${name} is corrupt: its manifest ${what}`);
  };
  if (m === null || typeof m !== "object") return bad("is not an object");
  const o = m as Record<string, unknown>;
  if (typeof o.clusterId !== "string" || typeof o.node !== "string" || typeof o.takenAt !== "number") bad("lacks clusterId, node or takenAt");
  if (!Array.isArray(o.groups) || o.groups.length === 0) return bad("lists no group");
  const seen = new Set<number>();
  for (const g of o.groups as unknown[]) {
    const r = (g ?? {}) as Record<string, unknown>;
    const ints = [r.group, r.index, r.term, r.bytes];
    if (!ints.every((v) => Number.isSafeInteger(v) && (v as number) >= 0)) bad("has a group without group, index, term or bytes");
    if (!isStrings(r.voters) || !isStrings(r.learners) || typeof r.sha256 !== "string") bad(`has group ${String(r.group)} without voters, learners or sha256`);
    if (seen.has(r.group as number)) bad(`lists group ${String(r.group)} twice`);
    seen.add(r.group as number);
  }
  return m as BackupManifest;
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === "string");
}
