import type { NodeStatus } from "../../protocol/index.ts";
import { DsyncClient } from "../../src/client/client.ts";
import { waitFor, type DaemonProcess, type TestCluster } from "./daemon.ts";

/** A client bound to one node, without redirects, to read that node's own view. */
export function direct(node: DaemonProcess): DsyncClient {
  return new DsyncClient({ nodes: [node.clientAddr], maxAttempts: 1, preferLeader: false, requestTimeoutMs: 2000, connectTimeoutMs: 1000 });
}

/** The node's STATUS, or null when it does not answer. */
export async function statusOf(node: DaemonProcess): Promise<NodeStatus | null> {
  const c = direct(node);
  try {
    return await c.status();
  } catch {
    return null;
  } finally {
    await c.close();
  }
}

/** Waits until the live nodes agree on one leader; returns it with its status. */
export async function leaderOf(cluster: TestCluster, what = "a leader"): Promise<{ node: DaemonProcess; status: NodeStatus }> {
  return waitFor(async () => {
    const live = cluster.nodes.filter((n) => n.alive);
    const statuses = await Promise.all(live.map(statusOf));
    const leaders = statuses.filter((s) => s?.role === "leader");
    if (leaders.length !== 1) return null;
    const leader = leaders[0]!;
    if (!statuses.every((s) => s?.leader === leader.nodeId)) return null;
    return { node: live.find((n) => n.spec.id === leader.nodeId)!, status: leader };
  }, what, 30_000, 50);
}
