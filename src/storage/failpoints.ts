/**
 * Disk-fault failpoints for tests: make the WAL's segment write or fdatasync fail with a real
 * errno-style Error, so the production error path (write error → WAL failed → node fail-stop)
 * runs exactly as it would on a dying disk.
 *
 * Off unless `DSYNC_FAILPOINTS` is set. The variable is parsed once, at module load; the worker
 * receives the parsed config in its `workerData` (explicitly, rather than relying on worker_threads
 * copying `process.env`, so tests can inject a config per WAL). With no failpoint the writer's
 * hot path pays one `null` comparison per syscall.
 *
 * Syntax: comma-separated items, each either
 *   `<point>=<error>[@<trigger>]`  point: wal-append | wal-fsync   error: eio | enospc | stall
 *                                  (stall: the call succeeds, STALL_MS late: a stalling disk)
 *                                  trigger: after:N (fail from the (N+1)th call of that point on),
 *                                           after-ms:T (fail calls made T ms or more after the WAL's
 *                                           worker started, i.e. the WAL opened), none (fail the
 *                                           first call)
 *   `record-synced`                record the durable offset of every segment after each fdatasync
 *                                  (see power-loss.ts); costs a small file write per batch.
 * Once triggered, a failpoint keeps failing. Example: `wal-fsync=eio@after-ms:2000,record-synced`.
 */

/** Where a fault is injected: the segment write, or the segment fdatasync. */
export type FailpointName = "wal-append" | "wal-fsync";
/** Which errno the failing call reports. */
export type FailpointError = "eio" | "enospc" | "stall";

/** How late a `stall` failpoint makes each call it hits. */
export const STALL_MS = 100;

export type FailpointTrigger =
  | { readonly kind: "immediately" }
  | { readonly kind: "afterCalls"; readonly calls: number }
  | { readonly kind: "afterMs"; readonly ms: number };

export interface Failpoint {
  readonly point: FailpointName;
  readonly error: FailpointError;
  readonly trigger: FailpointTrigger;
}

/** Plain data, so it crosses into the worker through `workerData`. */
export interface FailpointConfig {
  readonly faults: readonly Failpoint[];
  readonly recordSynced: boolean;
}

export const NO_FAILPOINTS: FailpointConfig = Object.freeze({ faults: Object.freeze([]), recordSynced: false });

/** An invalid `DSYNC_FAILPOINTS` value; the message says what is wrong and what is accepted. */
export class FailpointConfigError extends Error {
  override readonly name = "FailpointConfigError";
  readonly code = "INVALID_ARGUMENT";
  readonly retryable = false;
}

const SYNTAX = 'expected comma-separated "wal-append|wal-fsync=eio|enospc|stall[@after:N|@after-ms:T]" or "record-synced"';
const POINTS: readonly string[] = ["wal-append", "wal-fsync"];
const ERRORS: readonly string[] = ["eio", "enospc", "stall"];

/**
 * Parses a `DSYNC_FAILPOINTS` value; undefined or blank means no failpoints.
 * @throws FailpointConfigError naming the offending item.
 */
export function parseFailpoints(spec: string | undefined): FailpointConfig {
  if (spec === undefined || spec.trim() === "") return NO_FAILPOINTS;
  const faults: Failpoint[] = [];
  let recordSynced = false;
  for (const raw of spec.split(",")) {
    const item = raw.trim();
    const bad = (why: string): FailpointConfigError => new FailpointConfigError(`DSYNC_FAILPOINTS item "${item}": ${why}; ${SYNTAX}`);
    if (item === "record-synced") {
      recordSynced = true;
      continue;
    }
    const m = /^([a-z-]+)=([a-z]+)(?:@(.*))?$/.exec(item);
    if (m === null) throw bad("not of the form point=error[@trigger]");
    const [, point, error, trigger] = m;
    if (!POINTS.includes(point!)) throw bad(`unknown point "${point}"`);
    if (!ERRORS.includes(error!)) throw bad(`unknown error "${error}"`);
    if (faults.some((f) => f.point === point)) throw bad(`point "${point}" given twice`);
    faults.push({ point: point as FailpointName, error: error as FailpointError, trigger: parseTrigger(trigger, bad) });
  }
  return Object.freeze({ faults: Object.freeze(faults), recordSynced });
}

function parseTrigger(text: string | undefined, bad: (why: string) => Error): FailpointTrigger {
  if (text === undefined) return { kind: "immediately" };
  const m = /^(after|after-ms):(\d{1,12})$/.exec(text);
  if (m === null) throw bad(`bad trigger "${text}" (after:N or after-ms:T, N and T non-negative integers)`);
  const n = Number(m[2]);
  return m[1] === "after" ? { kind: "afterCalls", calls: n } : { kind: "afterMs", ms: n };
}

/** Parsed once: the per-call path never looks at the environment. */
const FROM_ENV: FailpointConfig | FailpointConfigError = (() => {
  try {
    return parseFailpoints(process.env.DSYNC_FAILPOINTS);
  } catch (error) {
    return error as FailpointConfigError;
  }
})();

/**
 * The failpoints `DSYNC_FAILPOINTS` named when this module loaded.
 * @throws FailpointConfigError if it was invalid (a startup error, never a silent "off").
 */
export function envFailpoints(): FailpointConfig {
  if (FROM_ENV instanceof Error) throw FROM_ENV;
  return FROM_ENV;
}

const ERRNO: Record<Exclude<FailpointError, "stall">, { code: string; errno: number; text: string }> = {
  // Negative errno values, as node's fs errors carry them (Linux numbering).
  eio: { code: "EIO", errno: -5, text: "i/o error" },
  enospc: { code: "ENOSPC", errno: -28, text: "no space left on device" },
};

/** Blocks the calling thread for STALL_MS, as a stalling disk blocks a write or fdatasync. */
export function stall(): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, STALL_MS);
}

/** An Error shaped like the one node's fs throws for a failed syscall. */
export function syscallError(error: Exclude<FailpointError, "stall">, syscall: string, path: string): NodeJS.ErrnoException {
  const e = ERRNO[error];
  return Object.assign(new Error(`${e.code}: ${e.text}, ${syscall} '${path}' (failpoint)`), { errno: e.errno, code: e.code, syscall, path });
}

/**
 * The armed state of one failpoint in the segment writer. `shouldFail()` is called once per real call of
 * the point and counts successful calls for `after:N`.
 */
export class ArmedFailpoint {
  readonly error: FailpointError;
  readonly #trigger: FailpointTrigger;
  readonly #openedAt: number;
  #calls: number;
  #tripped = false;

  /** `calls`: successful calls already counted (the state carried over from the other thread). */
  constructor(fp: Failpoint, openedAt: number, calls = 0) {
    this.error = fp.error;
    this.#trigger = fp.trigger;
    this.#openedAt = openedAt;
    this.#calls = calls;
  }

  get calls(): number {
    return this.#calls;
  }

  shouldFail(now: number): boolean {
    if (!this.#tripped) {
      const t = this.#trigger;
      this.#tripped = t.kind === "immediately" || (t.kind === "afterCalls" ? this.#calls >= t.calls : now - this.#openedAt >= t.ms);
    }
    if (!this.#tripped) this.#calls++;
    return this.#tripped;
  }
}

/** The armed failpoint for `point`, or null (the common case) when the config has none. */
export function armFailpoint(config: FailpointConfig, point: FailpointName, openedAt: number, calls = 0): ArmedFailpoint | null {
  const fp = config.faults.find((f) => f.point === point);
  return fp === undefined ? null : new ArmedFailpoint(fp, openedAt, calls);
}
