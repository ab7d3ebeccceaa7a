/**
 * Real dsyncd processes on loopback for the fault campaign, every peer link through a
 * {@link LinkProxy} the harness controls, each node's log appended to a file in the run folder.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { DAEMON_START_TIMEOUT_MS, ROOT, freePort, waitFor } from "../helpers/daemon.ts";
import { LinkProxy, type LinkMode } from "./link-proxy.ts";

/** Every daemon the campaign started, so none outlives the harness. */
const LIVE = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of LIVE) {
    c.kill("SIGCONT");
    c.kill("SIGKILL");
  }
});

export interface ChaosNodeSpec {
  readonly id: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  readonly clockFile: string;
}

/** One dsyncd process that can be killed, paused and restarted on the same data dir. */
export class ChaosNode {
  child: ChildProcess | null = null;
  paused = false;
  /** Extra env for the next start only (e.g. a disk failpoint). */
  nextStartEnv: Record<string, string> = {};
  #log: WriteStream;
  /** Exit codes seen, in order, with the time (harness clock). */
  readonly exits: { code: number | null; signal: string | null; atMs: number }[] = [];

  constructor(
    readonly spec: ChaosNodeSpec,
    readonly env: Record<string, string>,
  ) {
    this.#log = createWriteStream(spec.logFile, { flags: "a" });
  }

  get clientAddr(): string {
    return `127.0.0.1:${this.spec.clientPort}`;
  }

  get alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process and resolves once its HTTP side port answers; fails at once if it exits. */
  async start(): Promise<void> {
    const env = { ...process.env, ...this.env, ...this.nextStartEnv };
    this.nextStartEnv = {};
    this.#log.write(`\n=== start at ${new Date().toISOString()} ===\n`);
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/dsyncd.ts")], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.paused = false;
    LIVE.add(child);
    child.stdout!.pipe(this.#log, { end: false });
    child.stderr!.pipe(this.#log, { end: false });
    // What it said last on stderr, so a start that fails says why (EADDRINUSE is retried).
    let stderrTail = "";
    child.stderr!.on("data", (d: Buffer) => (stderrTail = (stderrTail + d.toString()).slice(-2000)));
    const exited = new Promise<never>((_, reject) =>
      child.once("exit", (code, signal) => {
        LIVE.delete(child);
        this.exits.push({ code, signal, atMs: performance.now() });
        reject(new Error(`dsyncd ${this.spec.id} exited with ${code ?? signal} at start (see ${this.spec.logFile}): ${stderrTail.trim()}`));
      }),
    );
    exited.catch(() => undefined);
    const listening = waitFor(async () => (await fetch(`http://127.0.0.1:${this.spec.httpPort}/health`).catch(() => null)) !== null, `dsyncd ${this.spec.id} to listen`, DAEMON_START_TIMEOUT_MS);
    await Promise.race([listening, exited]);
  }

  /** SIGKILL (or another terminating signal), resolving once the process is gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    if (this.paused) child.kill("SIGCONT");
    child.kill(signal);
    this.paused = false;
    await exited;
  }

  pause(): void {
    if (!this.alive || this.paused) return;
    this.child!.kill("SIGSTOP");
    this.paused = true;
  }

  resume(): void {
    if (!this.alive || !this.paused) return;
    this.child!.kill("SIGCONT");
    this.paused = false;
  }

  /** Sets this node's wall-clock offset (see src/host/wall-clock.ts). */
  async setClockOffset(offsetMs: number): Promise<void> {
    await writeFile(this.spec.clockFile, JSON.stringify({ offsetMs }));
    if (this.alive) this.child!.kill("SIGUSR2");
  }

  /** Group 0's role and leader as this node sees them, or null when it does not answer. */
  async health(timeoutMs = 500): Promise<{ role: string; leader: string | null; term: number } | null> {
    if (!this.alive || this.paused) return null;
    try {
      const res = await fetch(`http://127.0.0.1:${this.spec.httpPort}/health`, { signal: AbortSignal.timeout(timeoutMs) });
      return (await res.json()) as { role: string; leader: string | null; term: number };
    } catch {
      return null;
    }
  }

  closeLog(): void {
    this.#log.end();
  }
}

/** A directed link `from → to`: the proxy `from` dials to reach `to`. */
export interface Link {
  readonly from: string;
  readonly to: string;
  readonly proxy: LinkProxy;
}

/** N nodes, N·(N−1) link proxies. */
export class ChaosCluster {
  private constructor(
    readonly nodes: ChaosNode[],
    readonly links: Link[],
    readonly dir: string,
  ) {}

  /**
   * `nodeEnv(id)` adds settings of one node (its own certificate, say). A port found free can be
   * taken before the daemon binds it (by a link proxy's own port, or another process): such a
   * start is tried again on fresh ports, at most three times in all.
   */
  static async create(n: number, dir: string, env: Record<string, string>, nodeEnv: (id: string) => Record<string, string> = () => ({})): Promise<ChaosCluster> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await ChaosCluster.#createOnce(n, dir, env, nodeEnv);
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
        await rm(path.join(dir, "data"), { recursive: true, force: true });
      }
    }
  }

  static async #createOnce(n: number, dir: string, env: Record<string, string>, nodeEnv: (id: string) => Record<string, string>): Promise<ChaosCluster> {
    await mkdir(path.join(dir, "logs"), { recursive: true });
    const specs: ChaosNodeSpec[] = [];
    for (let i = 0; i < n; i++) {
      const id = `node_${i}`;
      specs.push({
        id,
        clientPort: await freePort(),
        peerPort: await freePort(),
        httpPort: await freePort(),
        dataDir: path.join(dir, "data", id),
        logFile: path.join(dir, "logs", `${id}.log`),
        clockFile: path.join(dir, "data", `${id}.clock.json`),
      });
    }
    const links: Link[] = [];
    for (const from of specs) {
      for (const to of specs) {
        if (from === to) continue;
        const proxy = new LinkProxy(`${from.id}->${to.id}`, "127.0.0.1", to.peerPort);
        await proxy.listen();
        links.push({ from: from.id, to: to.id, proxy });
      }
    }
    const nodes = specs.map(
      (s) =>
        new ChaosNode(s, {
          NODE_ID: s.id,
          NODE_HOST: "127.0.0.1",
          API_PORT: String(s.clientPort),
          NODE_PORT: String(s.peerPort),
          HTTP_PORT: String(s.httpPort),
          // Every peer is reached through this node's own proxy for that link.
          PEER_NODES: links
            .filter((l) => l.from === s.id)
            .map((l) => `${l.to}:${l.proxy.addr}`)
            .join(","),
          DATA_DIR: s.dataDir,
          DSYNC_CLOCK_FILE: s.clockFile,
          LOG_LEVEL: "info",
          ...env,
          ...nodeEnv(s.id),
        }),
    );
    const cluster = new ChaosCluster(nodes, links, dir);
    await mkdir(path.join(dir, "data"), { recursive: true });
    try {
      await Promise.all(nodes.map((d) => d.start()));
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  node(id: string): ChaosNode {
    const n = this.nodes.find((x) => x.spec.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  get clientAddrs(): string[] {
    return this.nodes.map((n) => n.clientAddr);
  }

  /** Sets the mode of every link between a node of `a` and a node of `b`, both directions. */
  cut(a: readonly string[], b: readonly string[], mode: LinkMode, delayMs = 0): void {
    for (const l of this.links) {
      if ((a.includes(l.from) && b.includes(l.to)) || (b.includes(l.from) && a.includes(l.to))) l.proxy.set(mode, delayMs);
    }
  }

  /** Every link back to `pass`, releasing held bytes. */
  heal(): void {
    for (const l of this.links) l.proxy.set("pass");
  }

  /** Bytes that crossed each link so far. */
  linkBytes(): Record<string, number> {
    return Object.fromEntries(this.links.map((l) => [l.proxy.name, l.proxy.bytes]));
  }

  /** Group 0's leader as most live nodes see it (null when there is none). */
  async leader(): Promise<string | null> {
    const views = await Promise.all(this.nodes.map((n) => n.health()));
    const self = views.find((v, i) => v?.role === "leader" && v.leader === this.nodes[i]!.spec.id);
    return self?.leader ?? null;
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill("SIGKILL")));
    for (const n of this.nodes) n.closeLog();
    await Promise.all(this.links.map((l) => l.proxy.close()));
  }
}
