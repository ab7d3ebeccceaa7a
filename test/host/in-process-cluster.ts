/**
 * Three RaftHosts in this process, each with group 1 over a counter, linked by a loopback that
 * records every frame sent and can cut nodes off (their messages are dropped both ways, as a
 * partition would).
 */
import { RaftHost, type RaftHostOptions } from "../../src/host/raft-host.ts";
import { createLogger } from "../../src/host/logger.ts";
import type { Message, NodeId } from "../../src/raft/index.ts";
import type { PeerLinks } from "../../src/transport/peer-links.ts";
import { removeDir, tempDir } from "../storage/wal-fixtures.ts";
import { waitFor } from "../helpers/daemon.ts";

/** A state machine counting its entries; an entry whose first byte is 255 calls `urgent`. */
export class Counter {
  n = 0;
  urgent: (() => void) | null = null;
  apply(entry: { data: Uint8Array }): unknown {
    if (entry.data[0] === 255) this.urgent?.();
    return ++this.n;
  }
  snapshot(): Uint8Array {
    return Uint8Array.of(this.n & 0xff);
  }
  restore(data: Uint8Array): void {
    this.n = data[0] ?? 0;
  }
}

export interface InProcessCluster {
  readonly leader: RaftHost;
  readonly all: RaftHost[];
  /** Every batch sent, as one frame on a real link (dropped ones included). */
  readonly sent: Message[][];
  /** Nodes cut off from every other: what they send and what is sent to them is dropped. */
  readonly cut: Set<NodeId>;
}

export type ClusterOptions = Partial<Pick<RaftHostOptions, "commitNoticeDelayMs" | "leaseReads" | "electionTimeoutMs" | "idleBeatIntervalMs" | "snapshotThreshold">>;

export async function withCluster(opts: ClusterOptions, fn: (c: InProcessCluster) => Promise<void>): Promise<void> {
  const ids = ["n1", "n2", "n3"];
  const hosts = new Map<NodeId, RaftHost>();
  const sent: Message[][] = [];
  const cut = new Set<NodeId>();
  const dirs: string[] = [];
  try {
    for (const id of ids) {
      const links = {
        send: (to: NodeId, type: number, body: { msgs: Message[] }) => {
          sent.push(body.msgs);
          if (!cut.has(id) && !cut.has(to)) setImmediate(() => hosts.get(to)?.onPeerMessage(id, { type, id: 0, body }));
          return true;
        },
      } as unknown as PeerLinks;
      const dir = await tempDir();
      dirs.push(dir);
      const host = await RaftHost.open({
        nodeId: id,
        dataDir: dir,
        fsync: false,
        voters: ids,
        electionTimeoutMs: opts.electionTimeoutMs ?? 300,
        heartbeatIntervalMs: 50,
        snapshotThreshold: opts.snapshotThreshold ?? 100_000,
        ...(opts.commitNoticeDelayMs !== undefined && { commitNoticeDelayMs: opts.commitNoticeDelayMs }),
        ...(opts.leaseReads !== undefined && { leaseReads: opts.leaseReads }),
        ...(opts.idleBeatIntervalMs !== undefined && { idleBeatIntervalMs: opts.idleBeatIntervalMs }),
        peers: links,
        log: createLogger(id, "silent"),
      });
      hosts.set(id, host);
      const counter = new Counter();
      const group = await host.addGroup(1, counter);
      counter.urgent = () => group.notifyFollowersNow();
    }
    for (const h of hosts.values()) h.start();
    const leader = await waitFor(() => [...hosts.values()].find((h) => h.group(1)?.isLeader) ?? null, "a leader", 10_000);
    await fn({ leader, all: [...hosts.values()], sent, cut });
  } finally {
    for (const h of hosts.values()) await h.close();
    for (const d of dirs) await removeDir(d);
  }
}

/** The id of `host`'s node. */
export const idOf = (host: RaftHost): NodeId => host.group(1)!.raw.status().id;
