/**
 * Process plumbing for benchmarks: free loopback ports, polling, child processes that are always
 * stopped by PID, and temp dirs that are always removed, also on SIGINT/SIGTERM or a crash.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, waitFor } from "../../scripts/lib/ports.ts";
export { freePort, waitFor };

/** The repository root (bench/lib/../..). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


/** `n` distinct free loopback ports. */
export async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  for (let tries = 0; out.size < n; tries++) {
    if (tries > n * 20) throw new Error(`could not find ${n} distinct free ports`);
    out.add(await freePort());
  }
  return [...out];
}


// ---- cleanup registry -------------------------------------------------------------------------

const liveChildren = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Removes `dir` (recursively) at the latest when the process exits. */
export function trackTempDir(dir: string): void {
  tempDirs.add(dir);
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Last resort, synchronous: SIGKILL every child still alive (by PID) and remove temp dirs. */
function cleanupSync(): void {
  for (const child of liveChildren) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }
  liveChildren.clear();
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  tempDirs.clear();
}

let handlersInstalled = false;
const interruptController = new AbortController();
/** Aborted at the first SIGINT/SIGTERM: loops should stop and the report be skipped. */
export const interruptSignal: AbortSignal = interruptController.signal;
const asyncCleanups = new Set<() => Promise<void>>();

/** Registers an async cleanup run on SIGINT/SIGTERM before the synchronous last resort. */
export function onInterrupt(fn: () => Promise<void>): () => void {
  asyncCleanups.add(fn);
  return () => asyncCleanups.delete(fn);
}

/** Installs SIGINT/SIGTERM/exit/uncaught handlers that stop children and remove temp dirs. */
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      cleanupSync();
      process.exit(130);
    }
    interrupted = true;
    interruptController.abort();
    process.stderr.write(`\n${signal}: stopping benchmark clusters and removing temp dirs…\n`);
    const hard = setTimeout(() => {
      cleanupSync();
      process.exit(130);
    }, 5000);
    hard.unref();
    Promise.allSettled([...asyncCleanups].map((f) => f())).finally(() => {
      cleanupSync();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("exit", cleanupSync);
  process.on("uncaughtException", (err) => {
    process.stderr.write(`uncaught: ${err.stack ?? err.message}\n`);
    cleanupSync();
    process.exit(1);
  });
  process.on("unhandledRejection", (err) => {
    process.stderr.write(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}\n`);
    cleanupSync();
    process.exit(1);
  });
}

/** A child process whose output is kept (last 64 KiB) for error messages; tracked for cleanup. */
export class Child {
  readonly proc: ChildProcess;
  #output = "";

  constructor(
    readonly name: string,
    cmd: string,
    args: readonly string[],
    opts: { cwd?: string; env: NodeJS.ProcessEnv },
  ) {
    this.proc = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    liveChildren.add(this.proc);
    const keep = (d: Buffer): void => {
      this.#output += d.toString();
      if (this.#output.length > 65_536) this.#output = this.#output.slice(-32_768);
    };
    this.proc.stdout!.on("data", keep);
    this.proc.stderr!.on("data", keep);
    this.proc.on("error", (err) => keep(Buffer.from(`spawn error: ${err.message}\n`)));
    this.proc.once("exit", () => liveChildren.delete(this.proc));
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} has no pid (spawn failed):\n${this.#output}`);
    return this.proc.pid;
  }

  get output(): string {
    return this.#output;
  }

  get alive(): boolean {
    return this.proc.pid !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Throws with the process output when it has exited. */
  assertAlive(): void {
    if (!this.alive) throw new Error(`${this.name} exited (code ${this.proc.exitCode}, signal ${this.proc.signalCode}):\n${this.#output.slice(-4000)}`);
  }

  /** Sends SIGTERM by PID, then SIGKILL after `graceMs` (at once when 0); resolves once it has exited. */
  async stop(graceMs = 2000): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.proc.once("exit", () => r()));
    process.kill(this.pid, graceMs > 0 ? "SIGTERM" : "SIGKILL");
    const timer = setTimeout(() => {
      if (this.alive) process.kill(this.pid, "SIGKILL");
    }, graceMs);
    await exited;
    clearTimeout(timer);
  }
}

const CLK_TCK = 100; // Linux USER_HZ; /proc/<pid>/stat times are in these ticks.

/** CPU seconds (user + system) used so far by `pid`, from /proc; NaN when unavailable. */
export function procCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the ")" that closes the command name: state is field 3; utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}
