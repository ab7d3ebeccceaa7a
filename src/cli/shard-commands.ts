/** `dsync admin shards | jobs | rebalance | decommission`: where queue partitions live and the moves between nodes. */
import { Op, type AdminRebalanceReply, type AdminRemoveReply, type AdminShardsReply, type MoveJob } from "../../protocol/index.ts";
import { fail, print, program, withClient } from "./common.ts";
import { bar, followJobs, shards } from "./job-progress.ts";
import { table } from "./output.ts";

const admin = program.commands.find((c) => c.name() === "admin") ?? fail("internal: the admin command is not registered");

admin
  .command("shards")
  .description("each partition's replicas, leader, cache home, lag and state, and the replicas and leaderships per node")
  .action(async () => {
    await withClient(async (c, g) => {
      const r = await shards(c);
      print(g, r, renderShards(r));
    });
  });

admin
  .command("jobs")
  .description("replica moves (rebalance, decommission, replacement of a dead node): running, queued and recent")
  .action(async () => {
    await withClient(async (c, g) => {
      const r = await shards(c);
      print(g, r.jobs, r.jobs.length === 0 ? "no replica moves" : renderJobs(r.jobs));
    });
  });

admin
  .command("rebalance")
  .description("move replicas so every node holds its share of partitions and leaderships (--dry-run: show the plan only)")
  .option("--dry-run", "print the moves a rebalance would make, and change nothing")
  .action(async (opts: { dryRun?: boolean }) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.ADMIN_REBALANCE, { dryRun: opts.dryRun === true }, { timeoutMs: 15_000 })) as AdminRebalanceReply;
      const moves = r.moves.map((m) => `  partition ${m.partition}: ${m.from ?? "(new replica)"} → ${m.to}`).join("\n");
      const head = r.moves.length === 0 ? "balanced: nothing to move" : r.dryRun ? `would move ${r.moves.length} replica(s):` : `queued ${r.jobs.length} move(s); follow them with \`dsync admin jobs\`:`;
      print(g, r, r.moves.length === 0 ? head : `${head}\n${moves}`);
    });
  });

admin
  .command("move <partition> <from> <to>")
  .description("move one replica of a queue partition from one node to another (a job: see `dsync admin jobs`)")
  .action(async (partition: string, from: string, to: string) => {
    const p = Number(partition);
    if (!Number.isInteger(p) || p < 1) fail(`partition must be a whole number ≥ 1, got "${partition}"`);
    await withClient(async (c, g) => {
      const r = (await c.call(Op.ADMIN_REBALANCE, { move: { partition: p, from, to } }, { timeoutMs: 15_000 })) as AdminRebalanceReply;
      print(g, r, `queued job ${r.jobs.map((j) => j.id).join(", ")}: partition ${p} from ${from} to ${to}; follow it with \`dsync admin jobs\``);
    });
  });

admin
  .command("decommission <node-id>")
  .alias("remove-node")
  .description("move every replica off a node, then remove it from the cluster (waits, showing progress; --no-wait returns at once)")
  .option("--no-wait", "return once the moves are queued")
  .action(async (nodeId: string, opts: { wait: boolean }) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.ADMIN_REMOVE_NODE, { nodeId }, { timeoutMs: 15_000 })) as AdminRemoveReply;
      if (r.removed || !opts.wait) {
        print(g, r, r.removed ? `${nodeId} removed; voters: ${r.conf.voters.join(", ")}` : `${nodeId} is leaving: ${r.jobs.length} replica move(s) queued; follow them with \`dsync admin jobs\``);
        return;
      }
      if (!g.json) process.stderr.write(`${nodeId} is leaving: moving ${r.jobs.length} replica(s) off it…\n`);
      await followJobs(c, g, r.jobs, (s) => !s.nodes.some((n) => n.id === nodeId), `${nodeId} is still leaving`);
      print(g, { nodeId, removed: true }, `${nodeId} holds no replica and has left the cluster`);
    });
  });


/** A job's catch-up: a bar on a terminal, the entry counts either way. */
function jobProgress(j: MoveJob, tty: boolean): string {
  if (j.target === 0) return "-";
  const counts = `${j.caughtUp}/${j.target}`;
  return tty ? `${bar(j.step === "done" ? 1 : j.caughtUp / j.target, 10)} ${counts}` : counts;
}

function renderShards(r: AdminShardsReply): string {
  const parts = table(
    ["partition", "replicas", "leader", "preferred", "cache home", "lag", "state"],
    r.partitions.map((p) => [
      String(p.partition),
      p.replicas.join(","),
      p.leader ?? "-",
      p.preferredLeader,
      p.cache === null ? "-" : (p.cache.leader ?? "none"),
      Object.entries(p.lag)
        .filter(([, n]) => n > 0)
        .map(([id, n]) => `${id}:${n}`)
        .join(",") || "0",
      p.state,
    ]),
  );
  const nodes = table(
    ["node", "zone", "state", "replicas", "leads", "reachable"],
    r.nodes.map((n) => [n.id, n.zone ?? "-", n.state, String(n.replicas), String(n.leaders), n.reachable ? "yes" : "no"]),
  );
  const running = r.jobs.filter((j) => j.step !== "done" && j.step !== "cancelled").length;
  return `shard map v${r.version}, replication factor ${r.replicationFactor}\n\n${parts}\n\n${nodes}\n\n${running === 0 ? "no replica moves running" : `${running} replica move(s) running or queued: dsync admin jobs`}`;
}

function renderJobs(jobs: readonly MoveJob[]): string {
  return table(
    ["job", "partition", "from", "to", "reason", "step", "progress", "updated"],
    jobs.map((j) => [
      String(j.id),
      String(j.partition),
      j.from ?? "-",
      j.to,
      j.reason,
      j.step + (j.note ? ` (${j.note})` : ""),
      jobProgress(j, process.stdout.isTTY === true),
      new Date(j.updatedAt).toISOString(),
    ]),
  );
}
