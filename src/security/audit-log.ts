/**
 * The audit log (`AUDIT_LOG`): one JSON line per security-relevant event, appended in batches
 * with one write and one fsync each, rotated by size. A torn last line (power lost mid-write) is
 * cut off when the file is opened again, so every line in the file parses.
 */
import { closeSync, fsyncSync, openSync, readSync, renameSync, statSync, ftruncateSync, existsSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

export interface AuditRecord {
  /** `auth`, `denied`, `rate-limited`, `admin`, `write`, `reload`. */
  readonly event: string;
  readonly identity?: string;
  readonly via?: string;
  readonly source?: string;
  readonly op?: string;
  readonly resource?: string;
  /** `ok`, or the error code name the request was answered with. */
  readonly outcome: string;
  readonly detail?: string;
}

export interface AuditLogOptions {
  readonly file: string;
  readonly node: string;
  /** Rotate when the file would grow past this (default 100 MiB). */
  readonly maxBytes?: number;
  /** Rotated files kept: file.1 (newest) … file.N (default 5). */
  readonly keep?: number;
  /** A batch is written this long after its first record at most (default 50 ms). */
  readonly flushMs?: number;
  readonly now?: () => number;
}

/** Records buffered beyond this are counted as dropped instead of growing memory without bound. */
const PENDING_MAX = 100_000;

export class AuditLog {
  readonly #opts: Required<Omit<AuditLogOptions, "now">> & { now: () => number };
  #fh: FileHandle | null = null;
  #size = 0;
  #pending: string[] = [];
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> = Promise.resolve();
  #dropped = 0;

  private constructor(opts: AuditLogOptions) {
    this.#opts = { maxBytes: 100 * 1024 * 1024, keep: 5, flushMs: 50, now: Date.now, ...opts };
  }

  /** Opens (creating) the log, cutting off a torn last line. */
  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    const log = new AuditLog(opts);
    repairTail(opts.file);
    log.#fh = await open(opts.file, "a");
    log.#size = (await log.#fh.stat()).size;
    return log;
  }

  /** Records dropped because the disk could not keep up (or failed). */
  get dropped(): number {
    return this.#dropped;
  }

  record(r: AuditRecord): void {
    if (this.#fh === null) return;
    if (this.#pending.length >= PENDING_MAX) {
      this.#dropped++;
      return;
    }
    this.#pending.push(JSON.stringify({ time: new Date(this.#opts.now()).toISOString(), node: this.#opts.node, ...r }) + "\n");
    this.#timer ??= setTimeout(() => {
      this.#timer = null;
      void this.flush();
    }, this.#opts.flushMs);
  }

  /** Writes and fsyncs what is buffered; resolves when it is on disk. */
  flush(): Promise<void> {
    this.#writing = this.#writing.then(() => this.#writeBatch());
    return this.#writing;
  }

  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.flush();
    await this.#fh?.close();
    this.#fh = null;
  }

  async #writeBatch(): Promise<void> {
    if (this.#pending.length === 0 || this.#fh === null) return;
    const batch = Buffer.from(this.#pending.join(""), "utf8");
    const lines = this.#pending.length;
    this.#pending = [];
    try {
      if (this.#size > 0 && this.#size + batch.length > this.#opts.maxBytes) await this.#rotate();
      await this.#fh.write(batch);
      await this.#fh.datasync();
      this.#size += batch.length;
    } catch {
      this.#dropped += lines;
    }
  }

  async #rotate(): Promise<void> {
    await this.#fh!.close();
    const f = this.#opts.file;
    for (let i = this.#opts.keep - 1; i >= 1; i--) if (existsSync(`${f}.${i}`)) renameSync(`${f}.${i}`, `${f}.${i + 1}`);
    renameSync(f, `${f}.1`);
    this.#fh = await open(f, "a");
    this.#size = 0;
  }
}

/** Truncates `file` after its last newline, so a line cut by a crash does not stay in it. */
function repairTail(file: string): void {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return;
  }
  if (size === 0) return;
  const fd = openSync(file, "r+");
  try {
    const chunk = Buffer.alloc(64 * 1024);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const n = readSync(fd, chunk, 0, end - start, start);
      const nl = chunk.subarray(0, n).lastIndexOf(0x0a);
      if (nl >= 0) {
        const keep = start + nl + 1;
        if (keep < size) {
          ftruncateSync(fd, keep);
          fsyncSync(fd);
        }
        return;
      }
      end = start;
    }
    ftruncateSync(fd, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

