/** `dsync admin …`: membership, leadership, draining a node before it stops, backups. */
import { Op, type AdminDrainReply, type AdminMemberReply, type AdminTransferReply } from "../../protocol/index.ts";
import { DsyncClient } from "../client/client.ts";
import { takeBackup, type BackupProgress } from "../client/backup.ts";
import { clusterStatus } from "./cluster-status.ts";
import { credentials, fail, globals, print, program, timeoutMs, withClient } from "./common.ts";
import { followJobs } from "./job-progress.ts";

const admin = program.command("admin").description("cluster membership and leadership");
admin
  .command("transfer-leader [node-id]")
  .description("hand leadership to another voter (default: the most caught-up one)")
  .action(async (to: string | undefined) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.ADMIN_TRANSFER_LEADER, to ? { to } : {}, { timeoutMs: 15_000 })) as AdminTransferReply;
      print(g, r, `leader is now ${r.leader} (term ${r.term})`);
    });
  });
admin
  .command("add-node <node-id> <peer-addr>")
  .description("add a node started with --join: it catches up on group 0, votes if group 0 has fewer than 3 (or 5) voters, and partitions are rebalanced onto it")
  .option("--wait", "wait for the replica moves onto it to finish, with a progress bar on a terminal")
  .action(async (nodeId: string, peerAddr: string, opts: { wait?: boolean }) => {
    await withClient(async (c, g) => {
      if (!g.json) process.stderr.write(`adding ${nodeId} (${peerAddr}): joining as a learner, catching up…\n`);
      const r = (await c.call(Op.ADMIN_ADD_NODE, { nodeId, peerAddr }, { timeoutMs: 90_000 })) as AdminMemberReply;
      const ids = new Set(r.jobs.map((j) => j.id));
      if (opts.wait === true && ids.size > 0) {
        if (!g.json) process.stderr.write(`moving ${ids.size} replica(s) onto ${nodeId}…\n`);
        await followJobs(c, g, r.jobs, (s) => s.jobs.filter((j) => ids.has(j.id)).every((j) => j.step === "done" || j.step === "cancelled"), `moves onto ${nodeId} are still running`);
      }
      const moves = r.jobs.length === 0 ? "" : opts.wait === true ? `; ${r.jobs.length} replica move(s) onto it done` : `; ${r.jobs.length} replica move(s) queued onto it (dsync admin jobs)`;
      print(g, r, `${r.nodeId} is a ${r.role} of group 0 (voters: ${r.conf.voters.join(", ")})${moves}`);
    });
  });
admin
  .command("drain <node-id>")
  .description("before stopping a node: hand its leaderships to other voters and refuse new requests (clients move on); then stop it")
  .action(async (nodeId: string) => {
    const g = globals();
    const auth = credentials(g);
    const reports = await clusterStatus(g.nodes.split(",").map((s) => s.trim()).filter(Boolean), { timeoutMs: timeoutMs(g), auth });
    const target = reports.find((r) => r.status?.nodeId === nodeId);
    if (!target) fail(`no reachable node is ${nodeId} (nodes seen: ${reports.map((r) => r.status?.nodeId ?? r.addr).join(", ")})`);
    // Straight to that node: a drain applies to the node that receives it.
    const c = new DsyncClient({ nodes: [target.addr], preferLeader: false, maxAttempts: 1, requestTimeoutMs: 15_000, clientName: "dsync-cli", ...auth });
    try {
      if (!g.json) process.stderr.write(`draining ${nodeId} (${target.addr})…\n`);
      const r = (await c.call(Op.ADMIN_DRAIN, {}, { timeoutMs: 15_000 })) as AdminDrainReply;
      const moved = r.handedOver.length > 0 ? `handed over the leadership of group(s) ${r.handedOver.join(", ")}` : "led no group";
      const stuck = r.stillLeading.length > 0 ? `; still leads ${r.stillLeading.join(", ")} (no caught-up voter reachable)` : "";
      print(g, r, `${nodeId} drained: ${moved}${stuck}; it refuses new requests — stop it now (e.g. systemctl stop dsyncd@${nodeId})`);
    } catch (err) {
      fail(`drain of ${nodeId} failed: ${(err as Error).message}`);
    } finally {
      await c.close();
    }
  });
admin
  .command("backup <file>")
  .description("write a consistent backup of every Raft group (locks, sessions, KV, queues, membership) to <file>, without stopping the cluster; restore it with dsyncd --restore-from")
  .action(async (file: string) => {
    await withClient(
      async (c, g) => {
        const progress = !g.json && process.stderr.isTTY ? (p: BackupProgress): void => void process.stderr.write(`\rbackup: ${p.groupsDone}/${p.groups} groups, ${mib(p.bytes)} of ${mib(p.totalBytes)} MiB `) : undefined;
        const r = await takeBackup(c, file, progress);
        if (progress) process.stderr.write("\n");
        const entries = r.manifest.groups.map((x) => `group ${x.group} at index ${x.index}`).join(", ");
        print(g, { file: r.file, sha256: r.sha256, bytes: r.bytes, node: r.manifest.node, clusterId: r.manifest.clusterId, takenAt: r.manifest.takenAt, groups: r.manifest.groups }, `wrote ${r.file}: ${r.bytes} bytes, sha256 ${r.sha256}\n  from ${r.manifest.node} (cluster ${r.manifest.clusterId}): ${entries}`);
      },
      // The images live on the node that took them: stay on it for every chunk.
      { preferLeader: false },
    );
  });

function mib(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(1);
}
