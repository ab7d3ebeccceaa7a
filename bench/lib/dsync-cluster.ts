/**
 * A fresh dsync cluster (3 dsyncd processes by default) on free loopback ports, each node with its
 * own temp data dir, fsync on. Nodes are killed by PID and dirs removed by `destroy()` (and on
 * exit / SIGINT).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Child, ROOT, freePorts, removeTempDir, trackTempDir, waitFor } from "./proc.ts";
import { loopbackNodeEnv } from "../../scripts/lib/node-env.ts";
import { Op, type AdminShardsReply } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { ENV_VARS } from "../../src/config/node-config.ts";

/** Environment variables dsyncd reads; stripped from the inherited env so the bench sets them all. */
const DSYNC_ENV = [...Object.keys(ENV_VARS), "REDIS_HOST", "REDIS_PORT", "DSYNC_COMMIT_TRACE"];

let built = false;

/**
 * The daemon as it ships: the compiled build (dist/, rebuilt first when a source is newer), run by
 * plain node. Timing the sources through tsx's loader would add its helpers to every hot path.
 */
function daemonEntry(): string {
  if (!built) {
    execFileSync("sh", [path.join(ROOT, "scripts/build-if-stale.sh")], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
    built = true;
  }
  return path.join(ROOT, "dist/src/cli/dsyncd.js");
}

interface Spec {
  readonly id: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly httpPort: number;
}

export class DsyncCluster {
  private constructor(
    readonly nodes: Child[],
    readonly specs: Spec[],
    readonly dir: string,
  ) {}

  /** Client addresses (`127.0.0.1:port`) of every node. */
  get clientAddrs(): string[] {
    return this.specs.map((s) => `127.0.0.1:${s.clientPort}`);
  }

  get pids(): number[] {
    return this.nodes.map((n) => n.pid);
  }

  /** `extraEnv` overrides (e.g. { FSYNC: "false" } — not for fair comparisons). */
  static async start(n = 3, extraEnv: Record<string, string> = {}, timeoutMs = 30_000, nodeEnv: (i: number) => Record<string, string> = () => ({})): Promise<DsyncCluster> {
    const cluster = await DsyncCluster.spawn(n, extraEnv, nodeEnv);
    const { nodes, specs } = cluster;
    try {
      // /health is 200 only while the node is serving, i.e. knows a leader.
      await Promise.all(
        specs.map((s, i) =>
          waitFor(
            async () => {
              nodes[i]!.assertAlive();
              const res = await fetch(`http://127.0.0.1:${s.httpPort}/health`, { signal: AbortSignal.timeout(1000) });
              await res.body?.cancel();
              return res.status === 200;
            },
            `dsyncd ${s.id} /health to return 200`,
            timeoutMs,
            50,
          ),
        ),
      );
    } catch (err) {
      const logs = nodes.map((m) => `--- ${m.name} ---\n${m.output.slice(-2000)}`).join("\n");
      await cluster.destroy();
      throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
    }
    return cluster;
  }

  /**
   * Sets up ports and data dirs and spawns the nodes, without waiting for them (`start()` also
   * waits for every /health to return 200). The caller must `destroy()` the cluster.
   */
  static async spawn(n = 3, extraEnv: Record<string, string> = {}, nodeEnv: (i: number) => Record<string, string> = () => ({})): Promise<DsyncCluster> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "dsync-bench-dsync-"));
    trackTempDir(dir);
    const ports = await freePorts(n * 3);
    const specs: Spec[] = Array.from({ length: n }, (_, i) => ({ id: `node_${i}`, clientPort: ports[i * 3]!, peerPort: ports[i * 3 + 1]!, httpPort: ports[i * 3 + 2]! }));
    const base: NodeJS.ProcessEnv = { ...process.env };
    for (const k of DSYNC_ENV) delete base[k];
    const nodes = specs.map(
      (s, i) =>
        // DSYNC_BENCH_NODE_ARGS passes extra node flags to every daemon, e.g. "--cpu-prof".
        new Child(`dsyncd ${s.id}`, process.execPath, [...(process.env.DSYNC_BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean), daemonEntry()], {
          cwd: ROOT,
          env: {
            ...base,
            ...loopbackNodeEnv(s, specs, path.join(dir, s.id)),
            FSYNC: "true",
            ...extraEnv,
            ...nodeEnv(i),
          },
        }),
    );
    return new DsyncCluster(nodes, specs, dir);
  }

  /**
   * Waits until every queue partition, and its cache partition, is led by the node the shard map
   * prefers. A fresh cluster elects leaders where chance puts them and then hands them over, one
   * group a second per node: a cell measured meanwhile times the hand-overs, not the service.
   * Returns what it saw: how long it took, or which partitions still had another leader when
   * `timeoutMs` ran out (the run goes on; the report says so).
   */
  async settleLeaders(timeoutMs = 30_000): Promise<string> {
    const client = new DsyncClient({ nodes: this.clientAddrs, requestTimeoutMs: 2000 });
    const started = performance.now();
    let off: string[] = ["no answer yet"];
    try {
      while (performance.now() - started < timeoutMs) {
        const r = (await client.call(Op.ADMIN_SHARDS, {}, { idempotent: true }).catch(() => null)) as AdminShardsReply | null;
        if (r !== null) {
          off = r.partitions.flatMap((p) => [
            ...(p.leader === p.preferredLeader ? [] : [`queue partition ${p.partition} (${p.leader ?? "no leader"}, not ${p.preferredLeader})`]),
            ...(p.cache === null || p.cache.leader === p.preferredLeader ? [] : [`cache partition ${p.partition} (${p.cache.leader ?? "no leader"}, not ${p.preferredLeader})`]),
          ]);
          if (off.length === 0) return `partition leaders settled on their preferred nodes after ${((performance.now() - started) / 1000).toFixed(1)} s`;
        }
        await new Promise((res) => setTimeout(res, 200));
      }
      return `partition leaders not all settled after ${timeoutMs / 1000} s: ${off.join(", ")}`;
    } finally {
      await client.close();
    }
  }

  /**
   * Kills every node by PID and removes the data dirs: SIGKILL (a throwaway cluster needs no
   * graceful stop), unless DSYNC_BENCH_NODE_ARGS is set: then SIGTERM, so a --cpu-prof is written.
   */
  async destroy(): Promise<void> {
    const graceMs = process.env.DSYNC_BENCH_NODE_ARGS ? 10_000 : 0;
    await Promise.all(this.nodes.map((n) => n.stop(graceMs)));
    removeTempDir(this.dir);
  }
}
