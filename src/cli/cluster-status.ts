import type { NodeStatus } from "../../protocol/index.ts";
import { DsyncClient } from "../client/client.ts";
import type { ClientOptions } from "../client/options.ts";

/** One node's line in `dsync status`. */
export interface NodeReport {
  readonly addr: string;
  readonly reachable: boolean;
  readonly status: NodeStatus | null;
  readonly error: string | null;
}

/** How to reach the nodes: a timeout, and the token and TLS settings of the CLI. */
export interface StatusOptions {
  readonly timeoutMs: number;
  readonly auth?: Pick<ClientOptions, "token" | "tokenFile" | "tls">;
}

async function probe(addr: string, opts: StatusOptions): Promise<NodeReport> {
  // One node, one attempt: status must show each node as it is, not follow redirects.
  const client = new DsyncClient({ nodes: [addr], maxAttempts: 1, preferLeader: false, connectTimeoutMs: opts.timeoutMs, requestTimeoutMs: opts.timeoutMs, ...(opts.auth ?? {}) });
  try {
    const status = await client.status();
    return { addr, reachable: true, status, error: null };
  } catch (err) {
    return { addr, reachable: false, status: null, error: (err as Error).message };
  } finally {
    await client.close();
  }
}

/**
 * Asks every known node for its status: the seeds first, then every peer they name, until no
 * new address turns up. Nodes are reported in discovery order, unreachable ones included.
 */
export async function clusterStatus(seeds: readonly string[], opts: StatusOptions): Promise<NodeReport[]> {
  const reports = new Map<string, NodeReport>();
  let frontier = [...new Set(seeds)];
  while (frontier.length > 0) {
    const results = await Promise.all(frontier.map((a) => probe(a, opts)));
    const next: string[] = [];
    for (const r of results) {
      reports.set(r.addr, r);
      for (const p of r.status?.peers ?? []) {
        if (p.clientAddr && !reports.has(p.clientAddr) && !frontier.includes(p.clientAddr) && !next.includes(p.clientAddr)) next.push(p.clientAddr);
      }
    }
    frontier = next;
  }
  // Peers no reachable node could give a client address for still deserve a line.
  const seen = new Set([...reports.values()].map((r) => r.status?.nodeId).filter(Boolean));
  for (const r of [...reports.values()]) {
    for (const p of r.status?.peers ?? []) {
      if (!p.clientAddr && !seen.has(p.id)) {
        seen.add(p.id);
        reports.set(`peer:${p.id}`, { addr: `(peer ${p.peerAddr})`, reachable: false, status: null, error: `${p.id}: no link yet, client address unknown` });
      }
    }
  }
  return [...reports.values()];
}
