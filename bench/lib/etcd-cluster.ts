/**
 * A fresh 3-member etcd cluster on free loopback ports, each member with its own temp data dir.
 * Members are stopped by PID and their dirs removed by `destroy()` (and on exit / SIGINT).
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Child, freePorts, removeTempDir, trackTempDir, waitFor } from "./proc.ts";

export const ETCD_BIN = process.env.ETCD_BIN ?? "/usr/bin/etcd";

export function etcdAvailable(): boolean {
  return existsSync(ETCD_BIN);
}

/** `etcd --version`'s first line, e.g. "etcd Version: 3.4.23". */
export function etcdVersion(): string {
  try {
    return execFileSync(ETCD_BIN, ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim();
  } catch {
    return "unknown";
  }
}

/** The environment without ETCD_* variables (etcd reads them and refuses flag/env conflicts). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ETCD_") && !k.startsWith("ETCDCTL_")) env[k] = v;
  return env;
}

export class EtcdCluster {
  private constructor(
    readonly members: Child[],
    readonly clientUrls: string[],
    readonly dir: string,
  ) {}

  /** `host:port` of each member's client endpoint, for `new Etcd3({ hosts })`. */
  get hosts(): string[] {
    return this.clientUrls.map((u) => u.replace(/^http:\/\//, ""));
  }

  get pids(): number[] {
    return this.members.map((m) => m.pid);
  }

  static async start(n = 3, timeoutMs = 30_000): Promise<EtcdCluster> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-bench-etcd-"));
    trackTempDir(dir);
    const ports = await freePorts(n * 2);
    const names = Array.from({ length: n }, (_, i) => `m${i}`);
    const clientUrls = names.map((_, i) => `http://127.0.0.1:${ports[i * 2]}`);
    const peerUrls = names.map((_, i) => `http://127.0.0.1:${ports[i * 2 + 1]}`);
    const initialCluster = names.map((nm, i) => `${nm}=${peerUrls[i]}`).join(",");
    const env = cleanEnv();
    const members = names.map(
      (nm, i) =>
        new Child(
          `etcd ${nm}`,
          ETCD_BIN,
          [
            "--name", nm,
            "--data-dir", path.join(dir, nm),
            "--listen-client-urls", clientUrls[i]!,
            "--advertise-client-urls", clientUrls[i]!,
            "--listen-peer-urls", peerUrls[i]!,
            "--initial-advertise-peer-urls", peerUrls[i]!,
            "--initial-cluster", initialCluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", "bench",
            "--logger", "zap",
            "--log-level", "warn",
          ],
          { env },
        ),
    );
    const cluster = new EtcdCluster(members, clientUrls, dir);
    try {
      // GET /health answers {"health":"true"} once the member is part of a cluster with a leader.
      await Promise.all(
        clientUrls.map((url, i) =>
          waitFor(
            async () => {
              members[i]!.assertAlive();
              const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
              if (!res.ok) return false;
              const body = (await res.json()) as { health?: string };
              return body.health === "true";
            },
            `etcd m${i} to be healthy`,
            timeoutMs,
            100,
          ),
        ),
      );
    } catch (err) {
      const logs = members.map((m) => `--- ${m.name} ---\n${m.output.slice(-2000)}`).join("\n");
      await cluster.destroy();
      throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
    }
    return cluster;
  }

  /** Stops every member by PID (SIGTERM, then SIGKILL) and removes the data dirs. */
  async destroy(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
    removeTempDir(this.dir);
  }
}
