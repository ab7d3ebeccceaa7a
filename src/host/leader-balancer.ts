import { everyOnGrid } from "./grid.ts";
import type { PeerLinks } from "../transport/peer-links.ts";
import type { Logger } from "./logger.ts";
import type { RaftGroup } from "./raft-group.ts";

/** How often a node checks whether it leads a group that another node should lead. */
const BALANCE_EVERY_MS = 1000;
/** A leader hands a group over only after holding it this long (no ping-pong after elections). */
const BALANCE_SETTLE_MS = 3000;
/** Entries the preferred leader may lag and still be handed the group. */
const BALANCE_LAG_MAX = 50;

/** A group with the node that should lead it when every member is up. */
export interface Preferred {
  readonly group: RaftGroup;
  readonly preferred: string;
}

/**
 * Spreads leadership of partition groups over the nodes: a node leading a group that is not its
 * own hands it back once the preferred node is up and caught up, at most one group per round.
 */
export class LeaderBalancer {
  readonly #leaderSince = new Map<number, number>();
  #stop: (() => void) | null = null;

  constructor(
    readonly what: string,
    readonly nodeId: string,
    readonly peers: PeerLinks,
    readonly log: Logger,
    readonly groups: () => Iterable<Preferred>,
  ) {}

  start(): void {
    this.#stop = everyOnGrid(BALANCE_EVERY_MS, () => this.#balance());
  }

  stop(): void {
    this.#stop?.();
  }

  #balance(): void {
    const now = Date.now();
    for (const { group, preferred } of this.groups()) {
      if (!group.isLeader) {
        this.#leaderSince.delete(group.group);
        continue;
      }
      const since = this.#leaderSince.get(group.group) ?? now;
      this.#leaderSince.set(group.group, since);
      if (preferred === this.nodeId || now - since < BALANCE_SETTLE_MS || !this.peers.isConnected(preferred)) continue;
      const s = group.status();
      const match = s.progress?.[preferred]?.match ?? 0;
      if (!s.conf.voters.includes(preferred) || s.lastIndex - match > BALANCE_LAG_MAX) continue;
      this.log.info({ group: group.group, to: preferred }, `handing a ${this.what} to its preferred leader`);
      this.#leaderSince.delete(group.group);
      group.transferLeader(preferred);
      return;
    }
  }
}
