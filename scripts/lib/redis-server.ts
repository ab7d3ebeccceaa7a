/**
 * Starts a private redis-server on a free loopback port for tests and benchmarks: its own temp
 * directory, append-only file with the fsync policy asked for, stopped (and the directory removed)
 * by `stop()` or when this process exits.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports.ts";

export type AppendFsync = "always" | "everysec" | "no";

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly appendfsync: AppendFsync;
  /** The server's version string, e.g. "7.0.15". */
  readonly version: string;
  /** The redis-server process (benchmarks read its CPU time). */
  readonly pid: number;
  stop(): Promise<void>;
}

/** Whether a redis-server binary is on PATH. */
export function hasRedisServer(): boolean {
  return spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
}

/**
 * Starts redis-server. Throws with an install hint when the binary is missing: callers under
 * CI=true must fail loudly rather than skip.
 */
export async function startRedis(opts: { appendfsync?: AppendFsync; port?: number } = {}): Promise<RedisServer> {
  const version = /v=(\S+)/.exec(spawnSync("redis-server", ["--version"], { encoding: "utf8" }).stdout ?? "")?.[1];
  if (!version) throw new Error("redis-server is not installed: apt-get install -y redis-server (CI installs it in .ci/run)");
  const appendfsync = opts.appendfsync ?? "always";
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), "dsync-redis-"));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", appendfsync, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"];
  const child = spawn("redis-server", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  live.add(child);
  const cleanup = (): void => {
    live.delete(child);
    rmSync(dir, { recursive: true, force: true });
  };
  child.once("exit", cleanup);
  const deadline = Date.now() + 10_000;
  while (!(await pong(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`redis-server did not start on 127.0.0.1:${port}: ${stderr.trim() || "no answer to PING"}`);
    }
    await new Promise((r) => setTimeout(r, 30));
  }
  return {
    host: "127.0.0.1",
    port,
    url: `redis://127.0.0.1:${port}`,
    appendfsync,
    version,
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      }),
  };
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once("error", () => done(false));
    s.once("connect", () => s.write("PING\r\n"));
    s.once("data", (d) => done(d.toString().startsWith("+PONG")));
  });
}
