/**
 * Errors the storage layer reports. Each carries a stable `code`, whether it is `retryable`,
 * and a `cause` where one exists (house error taxonomy).
 *
 * Invariant violations are not errors here: they are `assert()`s that crash the process.
 */

/**
 * The log on disk is damaged in a way recovery must not paper over: a bad CRC or undecodable
 * record followed by valid data, damage in a segment other than the last, a missing segment or
 * missing entries. The message names the file and byte offset. Never retryable: an operator (or a
 * replica rebuild from peers) has to intervene.
 */
export class WalCorruptionError extends Error {
  override readonly name = "WalCorruptionError";
  readonly code = "WAL_CORRUPTION";
  readonly retryable = false;
  /** Path of the damaged file. */
  readonly file: string;
  /** Byte offset of the first damaged record in `file`, or -1 when not about one record. */
  readonly offset: number;

  constructor(file: string, offset: number, detail: string, options?: ErrorOptions) {
    super(`WAL corrupt: ${file}${offset >= 0 ? ` at offset ${offset}` : ""}: ${detail}`, options);
    this.file = file;
    this.offset = offset;
  }
}

/**
 * A write, fsync, rename or unlink failed, or the fsync worker died. When it comes from the log
 * itself (append, compact, close, worker) the WAL is failed: every later call rejects with this
 * error too, because after a failed fsync the page cache may no longer match the disk
 * ("fsyncgate"); the process must restart and recover. A failure to write a snapshot *image*
 * (before its marker is appended) leaves the WAL usable.
 */
export class WalIoError extends Error {
  override readonly name = "WalIoError";
  readonly code = "WAL_IO";
  readonly retryable = false;
}

/** The WAL was closed; the call came too late. A caller bug at shutdown. */
export class WalClosedError extends Error {
  override readonly name = "WalClosedError";
  readonly code = "WAL_CLOSED";
  readonly retryable = false;

  constructor() {
    super("WAL is closed");
  }
}

/** A record broke the append contract (gap, non-consecutive indexes, stale snapshot...). A caller bug. */
export class WalInvalidArgumentError extends Error {
  override readonly name = "WalInvalidArgumentError";
  readonly code = "INVALID_ARGUMENT";
  readonly retryable = false;
}

/** The fs error behind `err` (its `cause` chain): code ('EIO'…), syscall and file, where known. */
export function ioFailureDetails(err: unknown): { code: string | null; syscall: string | null; file: string | null } {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const x = e as NodeJS.ErrnoException;
    if (typeof x.syscall === "string" || (typeof x.code === "string" && /^E[A-Z]+$/.test(x.code))) {
      return { code: x.code ?? null, syscall: x.syscall ?? null, file: x.path ?? null };
    }
  }
  return { code: null, syscall: null, file: null };
}
