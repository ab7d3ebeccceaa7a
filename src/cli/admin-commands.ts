/** `dsync admin …`: membership and leadership. */
import { Op, type AdminMemberReply, type AdminTransferReply } from "../../protocol/index.ts";
import { print, program, withClient } from "./common.ts";

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
  .description("add a node started with --join: it catches up as a learner, then becomes a voter")
  .action(async (nodeId: string, peerAddr: string) => {
    await withClient(async (c, g) => {
      if (!g.json) process.stderr.write(`adding ${nodeId} (${peerAddr}): joining as a learner, catching up, then promoting…\n`);
      const r = (await c.call(Op.ADMIN_ADD_NODE, { nodeId, peerAddr }, { timeoutMs: 90_000 })) as AdminMemberReply;
      print(g, r, `${r.nodeId} is a voter; voters: ${r.conf.voters.join(", ")}`);
    });
  });
admin
  .command("remove-node <node-id>")
  .description("remove a node from the cluster")
  .action(async (nodeId: string) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.ADMIN_REMOVE_NODE, { nodeId }, { timeoutMs: 15_000 })) as AdminMemberReply;
      print(g, r, `${r.nodeId} removed; voters: ${r.conf.voters.join(", ")}`);
    });
  });
