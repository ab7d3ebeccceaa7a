import { Command } from "commander";
import { DsyncError } from "../../protocol/index.ts";
import { DsyncClient } from "../client/client.ts";
import { clusterStatus } from "./cluster-status.ts";
import { table } from "./output.ts";

const DEFAULT_NODES = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

interface GlobalOptions {
  nodes: string;
  token?: string;
  json?: boolean;
  timeout: string;
}

const program = new Command("dsync")
  .description("Command-line client for a dsync cluster: locks, queues, cache, status and admin.")
  .option("-n, --nodes <list>", "node client addresses host:port,… [env DSYNC_NODES]", process.env.DSYNC_NODES ?? DEFAULT_NODES)
  .option("--token <token>", "auth token, if the cluster requires one [env DSYNC_TOKEN]", process.env.DSYNC_TOKEN)
  .option("--json", "print machine-readable JSON instead of text")
  .option("--timeout <ms>", "per-request timeout in milliseconds", "3000")
  .showHelpAfterError();

function globals(): GlobalOptions {
  return program.opts<GlobalOptions>();
}

function timeoutMs(g: GlobalOptions): number {
  const n = Number(g.timeout);
  if (!Number.isInteger(n) || n <= 0) fail(`--timeout must be a positive integer (milliseconds), got "${g.timeout}"`);
  return n;
}

function print(g: GlobalOptions, json: unknown, text: string): void {
  process.stdout.write((g.json ? JSON.stringify(json, null, 2) : text) + "\n");
}

function fail(message: string, code = 1): never {
  process.stderr.write(`dsync: ${message}\n`);
  process.exit(code);
}

async function withClient<T>(fn: (c: DsyncClient, g: GlobalOptions) => Promise<T>): Promise<T> {
  const g = globals();
  const t = timeoutMs(g);
  const client = new DsyncClient({ nodes: g.nodes, connectTimeoutMs: t, requestTimeoutMs: t, maxAttempts: 3, clientName: "dsync-cli", ...(g.token !== undefined && { token: g.token }) });
  try {
    return await fn(client, g);
  } catch (err) {
    const e = err as Error;
    fail(err instanceof DsyncError ? `${e.message} (${err.codeName})` : e.message);
  } finally {
    await client.close();
  }
}

program
  .command("ping")
  .description("round trip to one node of the cluster")
  .option("-c, --count <n>", "number of pings", "1")
  .action(async (o: { count: string }) => {
    const count = Number(o.count);
    if (!Number.isInteger(count) || count < 1 || count > 100_000) fail(`--count must be an integer in [1, 100000], got "${o.count}"`);
    await withClient(async (c, g) => {
      const results: { nodeId: string; rttMs: number }[] = [];
      for (let i = 0; i < count; i++) results.push(await c.ping());
      const lines = results.map((r) => `pong from ${r.nodeId} (${c.connectedTo}) in ${r.rttMs.toFixed(2)} ms`);
      print(g, count === 1 ? results[0] : results, lines.join("\n"));
    });
  });

program
  .command("status")
  .description("every node of the cluster: reachable, role, term, leader, commit and applied index")
  .action(async () => {
    const g = globals();
    const seeds = g.nodes.split(",").map((s) => s.trim()).filter(Boolean);
    const reports = await clusterStatus(seeds, { timeoutMs: timeoutMs(g), ...(g.token !== undefined && { token: g.token }) });
    const rows = reports.map((r) =>
      r.status
        ? [r.status.nodeId, r.addr, "yes", r.status.role, String(r.status.term), r.status.leader ?? "-", String(r.status.commitIndex), String(r.status.appliedIndex), fmtUptime(r.status.uptimeMs)]
        : ["?", r.addr, "no", "-", "-", "-", "-", "-", r.error ?? ""],
    );
    print(g, reports, table(["NODE", "ADDRESS", "REACHABLE", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "UPTIME"], rows));
    if (reports.every((r) => !r.reachable)) process.exitCode = 1;
  });

function fmtUptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
}

await program.parseAsync(process.argv);
