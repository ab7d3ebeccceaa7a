import { setTimeout as sleep } from "node:timers/promises";
import { DsyncError, ErrorCode, InvalidArgumentError, NotLeaderError, Op, asFields, str, type AdminMemberReply, type AdminRemoveReply, type AdminTransferReply, type MoveJob } from "../../../protocol/index.ts";
import { ConfChangeType, type ConfState } from "../../raft/index.ts";
import { NODE_ID_PATTERN, NODE_ID_RULE, encodeMemberCommand } from "./machine/cluster-machine.ts";
import { formatAddr, parseAddr } from "../../transport/dial.ts";
import type { PeerLinks } from "../../transport/peer-links.ts";
import type { Proposer } from "../../host/proposer.ts";
import type { RaftGroup } from "../../host/raft-group.ts";
import type { ClusterMachine } from "./machine/cluster-machine.ts";
import { group0VoterTarget } from "./machine/voter-target.ts";
import type { NodeLifecycle } from "./node-lifecycle.ts";
import type { RequestRouter } from "../../host/request-router.ts";
import type { Service } from "../../host/service.ts";

const ADMIN_TIMEOUT_MS = 10_000;
/** How far behind the leader's log a learner may be and still be promoted. */
const PROMOTE_LAG_ENTRIES_MAX = 10;

export interface AdminServiceContext {
  readonly group0: RaftGroup;
  readonly machine: ClusterMachine;
  readonly proposer: Proposer;
  readonly peers: PeerLinks;
  readonly selfId: string;
  /** Group 0 leader's node bookkeeping (dead nodes, leaving nodes, voter count). */
  readonly lifecycle: NodeLifecycle;
}

/** Cluster administration through group 0: leadership transfer, adding and removing nodes. */
export function adminService(x: AdminServiceContext): Service {
  return {
    name: "admin",
    register: (h) => {
      registerAdminHandlers(h.client, x);
      h.peer(Op.MEMBER_CHECK, async (from, env) => {
        const id = str(asFields(env.body, "MEMBER_CHECK"), "id", "MEMBER_CHECK", { maxBytes: 64 });
        const reply = x.lifecycle.memberCheck(id);
        // A removed node dialled in only to ask: drop the link again once the answer is out.
        if (!reply.member && id === from) setTimeout(() => x.peers.removePeer(from), 1000).unref();
        return reply;
      });
    },
    start: () => x.lifecycle.start(),
    stop: () => x.lifecycle.stop(),
  };
}

function registerAdminHandlers(router: RequestRouter, x: AdminServiceContext): void {
  const { group0, peers, selfId } = x;
  const requireLeader = (): void => {
    if (!group0.isLeader) {
      const leader = group0.leader;
      throw new NotLeaderError(leader, leader === null ? null : leader === selfId ? null : peers.clientAddrOf(leader));
    }
  };

  router.register(Op.ADMIN_TRANSFER_LEADER, async (body): Promise<AdminTransferReply> => {
    const f = asFields(body, "ADMIN_TRANSFER_LEADER");
    requireLeader();
    const status = group0.status();
    // Default: the most caught-up other voter loses the least time catching up.
    const to = str(f, "to", "ADMIN_TRANSFER_LEADER", { optional: true, maxBytes: 128 }) ?? group0.mostCaughtUpVoter();
    if (to === undefined) throw new DsyncError(ErrorCode.UNAVAILABLE, "there is no other voter to hand leadership to");
    if (to === selfId) return { leader: selfId, term: status.term };
    if (!status.conf.voters.includes(to)) throw new InvalidArgumentError(`${to} is not a voting member (voters: ${status.conf.voters.join(", ")})`);
    group0.transferLeader(to);
    const deadline = Date.now() + ADMIN_TIMEOUT_MS;
    while (Date.now() < deadline) {
      await sleep(20);
      const s = group0.status();
      if (s.leader === to) return { leader: to, term: s.term };
    }
    throw new DsyncError(ErrorCode.TIMEOUT, `leadership did not move to ${to} within ${ADMIN_TIMEOUT_MS} ms`);
  });

  router.register(Op.ADMIN_ADD_NODE, async (body): Promise<AdminMemberReply> => {
    const f = asFields(body, "ADMIN_ADD_NODE");
    const nodeId = str(f, "nodeId", "ADMIN_ADD_NODE", { maxBytes: 64 });
    const peerAddrRaw = str(f, "peerAddr", "ADMIN_ADD_NODE", { maxBytes: 300 });
    if (!NODE_ID_PATTERN.test(nodeId)) throw new InvalidArgumentError(`nodeId "${nodeId}" must be ${NODE_ID_RULE}`);
    let peerAddr: string;
    try {
      const { host, port } = parseAddr(peerAddrRaw);
      peerAddr = formatAddr(host, port);
    } catch (err) {
      throw new InvalidArgumentError(`peerAddr: ${(err as Error).message}`);
    }
    requireLeader();
    const conf = group0.status().conf;
    if (conf.voters.includes(nodeId)) return { nodeId, role: "voter", conf, jobs: [] };
    // 1. Every node learns the address, 2. the node joins as a learner and catches up,
    // 3. it is promoted to voter. One membership change at a time, as the core requires.
    await group0.propose(encodeMemberCommand({ op: "member", id: nodeId, peerAddr }), ADMIN_TIMEOUT_MS);
    if (!conf.learners.includes(nodeId)) await group0.proposeConfChange({ type: ConfChangeType.AddLearner, node: nodeId }, ADMIN_TIMEOUT_MS);
    const deadline = Date.now() + 6 * ADMIN_TIMEOUT_MS;
    for (;;) {
      const s = group0.status();
      const match = s.progress?.[nodeId]?.match ?? 0;
      if (s.lastIndex - match <= PROMOTE_LAG_ENTRIES_MAX) break;
      if (Date.now() > deadline) {
        throw new DsyncError(ErrorCode.TIMEOUT, `${nodeId} joined as a learner but has not caught up (match ${match} of ${s.lastIndex}); is it running with --join and reachable at ${peerAddr}?`);
      }
      await sleep(50);
    }
    requireLeader();
    // A voter only while group 0 has fewer than its target (3, or 5 from five nodes on).
    let finalConf = group0.status().conf;
    const members = new Set([...finalConf.voters, ...finalConf.learners, nodeId]).size;
    if (!finalConf.voters.includes(nodeId) && finalConf.voters.length < group0VoterTarget(members)) {
      finalConf = (await group0.proposeConfChange({ type: ConfChangeType.AddVoter, node: nodeId }, ADMIN_TIMEOUT_MS)) as ConfState;
    }
    // The node joins the shard map and partitions are rebalanced onto it.
    let jobs: MoveJob[] = [];
    if (x.machine.shards !== null) {
      await x.proposer.proposeStamped(0, { op: "shards.node", id: nodeId });
      jobs = ((await x.proposer.proposeStamped(0, { op: "shards.rebalance" })) as { jobs: MoveJob[] }).jobs;
    }
    return { nodeId, role: finalConf.voters.includes(nodeId) ? "voter" : "learner", conf: finalConf, jobs };
  });

  router.register(Op.ADMIN_REMOVE_NODE, async (body): Promise<AdminRemoveReply> => {
    const f = asFields(body, "ADMIN_REMOVE_NODE");
    const nodeId = str(f, "nodeId", "ADMIN_REMOVE_NODE", { maxBytes: 64 });
    requireLeader();
    const conf = group0.status().conf;
    const shards = x.machine.shards;
    const holds = shards?.partitionsOn(nodeId) ?? [];
    if (!conf.voters.includes(nodeId) && !conf.learners.includes(nodeId) && holds.length === 0) throw new InvalidArgumentError(`${nodeId} is not a member (voters: ${conf.voters.join(", ")}; learners: ${conf.learners.join(", ") || "none"})`);
    if (conf.voters.length === 1 && conf.voters[0] === nodeId) throw new InvalidArgumentError("cannot remove the last voter");
    if (shards !== null && (holds.length > 0 || shards.node(nodeId)?.state === "active")) {
      // Its replicas move first (jobs); group 0's leader removes it once it holds none, and the
      // node, seeing itself leaving with nothing, stops serving clients.
      const r = (await x.proposer.proposeStamped(0, { op: "shards.leave", id: nodeId, reason: "decommission" })) as { error?: string; jobs?: MoveJob[] };
      if (r.error !== undefined) throw new InvalidArgumentError(r.error);
      return { nodeId, removed: false, jobs: r.jobs ?? [], conf };
    }
    const finalConf = (await group0.proposeConfChange({ type: ConfChangeType.RemoveNode, node: nodeId }, ADMIN_TIMEOUT_MS)) as ConfState;
    if (shards?.node(nodeId)) await x.proposer.proposeStamped(0, { op: "shards.forget", id: nodeId });
    return { nodeId, removed: true, jobs: [], conf: finalConf };
  });
}
