import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, waitFor } from "../../scripts/lib/ports.ts";
import { loopbackNodeEnv } from "../../scripts/lib/node-env.ts";
export { freePort, waitFor };

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * How long a daemon may take to answer on its side port after it is spawned. It starts in about
 * a second on a quiet machine; a 2-core machine running the suite's clusters side by side has
 * been seen to take over 20 s, and a slow machine must not fail a test.
 */
export const DAEMON_START_TIMEOUT_MS = 60_000;



export interface NodeSpec {
  readonly id: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
}

/** Every daemon this test process started, so none outlives it (even when it is killed). */
const LIVE = new Set<ChildProcess>();
function killAll(): void {
  for (const c of LIVE) c.kill("SIGKILL");
}
process.once("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

/** A dsyncd child process. */
export class DaemonProcess {
  child: ChildProcess | null = null;
  output = "";
  constructor(
    readonly spec: NodeSpec,
    readonly env: Record<string, string>,
  ) {}

  get clientAddr(): string {
    return `127.0.0.1:${this.spec.clientPort}`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.spec.httpPort}`;
  }

  /** Starts the process and resolves once its /health answers. */
  async start(): Promise<void> {
    this.output = "";
    // DSYNC_TEST_NODE_ARGS passes extra node flags to every daemon, e.g. "--cpu-prof".
    const extra = (process.env.DSYNC_TEST_NODE_ARGS ?? "").split(" ").filter(Boolean);
    const child = spawn(process.execPath, [...extra, "--import", "tsx", path.join(ROOT, "src/cli/dsyncd.ts")], {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    LIVE.add(child);
    child.once("exit", () => LIVE.delete(child));
    child.stdout!.on("data", (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (this.output += d.toString()));
    // A daemon that exits while starting (a port taken meanwhile, bad config) fails the start at
    // once rather than after the whole timeout.
    const exited = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`dsyncd ${this.spec.id} exited with ${code}:\n${this.output}`))));
    exited.catch(() => {});
    const listening = waitFor(async () => (await fetch(`${this.httpUrl}/health`).catch(() => null)) !== null, `dsyncd ${this.spec.id} to listen`, DAEMON_START_TIMEOUT_MS);
    await Promise.race([listening, exited]);
  }

  get alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `signal` and, unless it is SIGSTOP/SIGCONT, waits for the exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    if (signal === "SIGSTOP" || signal === "SIGCONT") {
      child.kill(signal);
      return;
    }
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill(signal);
    await exited;
  }
}

/** `n` nodes `${prefix}i` on free loopback ports, data dirs under `dir`. */
export async function nodeSpecs(n: number, dir: string, prefix = "node_"): Promise<NodeSpec[]> {
  const specs: NodeSpec[] = [];
  for (let i = 0; i < n; i++) {
    specs.push({ id: `${prefix}${i}`, clientPort: await freePort(), peerPort: await freePort(), httpPort: await freePort(), dataDir: path.join(dir, `${prefix}${i}`) });
  }
  return specs;
}

/** One (not yet started) daemon per spec, each peered with the others. */
export function daemonsOf(specs: readonly NodeSpec[], extraEnv: Record<string, string> = {}, nodeEnv: readonly Record<string, string>[] = []): DaemonProcess[] {
  return specs.map(
    (s, i) =>
      new DaemonProcess(s, {
        ...loopbackNodeEnv(s, specs, s.dataDir),
        ...extraEnv,
        ...nodeEnv[i],
      }),
  );
}

/** N dsyncd processes on free loopback ports, each peered with the others, in a temp folder. */
export class TestCluster {
  constructor(
    readonly nodes: DaemonProcess[],
    readonly dir: string,
  ) {}

  /**
   * `nodeEnv[i]`, when given, adds to (and overrides) `extraEnv` for node i only. A port found free
   * can be taken by another test process before the daemon binds it: such a start is tried again
   * on fresh ports (at most three times in all).
   */
  static async create(n: number, extraEnv: Record<string, string> = {}, nodeEnv: readonly Record<string, string>[] = []): Promise<TestCluster> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await TestCluster.#createOnce(n, extraEnv, nodeEnv);
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
      }
    }
  }

  static async #createOnce(n: number, extraEnv: Record<string, string>, nodeEnv: readonly Record<string, string>[]): Promise<TestCluster> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-test-"));
    const nodes = daemonsOf(await nodeSpecs(n, dir), extraEnv, nodeEnv);
    const cluster = new TestCluster(nodes, dir);
    try {
      await Promise.all(nodes.map((d) => d.start()));
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  /** Starts one more node (not in the others' PEER_NODES), e.g. to join with JOIN=true. */
  async addNode(id: string, extraEnv: Record<string, string> = {}): Promise<DaemonProcess> {
    const spec: NodeSpec = { id, clientPort: await freePort(), peerPort: await freePort(), httpPort: await freePort(), dataDir: path.join(this.dir, id) };
    const node = new DaemonProcess(spec, { ...loopbackNodeEnv(spec, this.nodes.map((o) => o.spec), spec.dataDir), ...extraEnv });
    this.nodes.push(node);
    await node.start();
    return node;
  }

  get clientAddrs(): string[] {
    return this.nodes.map((n) => n.clientAddr);
  }

  /** SIGKILLs every node and removes the data folder. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill("SIGCONT").then(() => n.kill("SIGKILL"))));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts a dsyncd from any command (a compiled build, an installed package) and resolves once
 * its /health answers 200; `stop()` SIGKILLs it. For tests of how dsyncd is packaged.
 */
export async function startServingProcess(command: string, args: readonly string[], env: NodeJS.ProcessEnv, httpPort: number, cwd = ROOT): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  LIVE.add(child);
  child.once("exit", () => LIVE.delete(child));
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  };
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/health`).catch(() => null))?.status === 200, `${path.basename(command)} to serve`, DAEMON_START_TIMEOUT_MS);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${output}`, { cause: err });
  }
  return { child, stop };
}
