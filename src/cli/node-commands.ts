/** `dsync ping` and `dsync status`: is the cluster there, and who leads. */
import { credentials, fail, globals, print, program, timeoutMs, withClient } from "./common.ts";
import { clusterStatus } from "./cluster-status.ts";
import { table } from "./output.ts";

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
    const reports = await clusterStatus(seeds, { timeoutMs: timeoutMs(g), auth: credentials(g) });
    const rows = reports.map((r) =>
      r.status
        ? [
            r.status.nodeId,
            r.addr,
            "yes",
            r.status.role,
            String(r.status.term),
            r.status.leader ?? "-",
            String(r.status.commitIndex),
            String(r.status.appliedIndex),
            `${r.status.firstIndex}-${r.status.lastIndex}`,
            fmtBytes(r.status.logBytes),
            r.status.snapshotIndex > 0 ? String(r.status.snapshotIndex) : "-",
            fmtUptime(r.status.uptimeMs),
          ]
        : ["?", r.addr, "no", "-", "-", "-", "-", "-", "-", "-", "-", r.error ?? ""],
    );
    print(g, reports, table(["NODE", "ADDRESS", "REACHABLE", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LOG", "LOG SIZE", "SNAPSHOT", "UPTIME"], rows));
    if (reports.every((r) => !r.reachable)) process.exitCode = 1;
  });

function fmtBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function fmtUptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
}
