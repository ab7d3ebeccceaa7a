import { InvalidArgumentError, NotLeaderError, Op, asFields, int, type Envelope } from "../../protocol/index.ts";
import { wallNow } from "./wall-clock.ts";
import type { GroupId } from "../raft/index.ts";
import { encodeCommand } from "../services/command-codec.ts";
import type { PeerLinks } from "../transport/peer-links.ts";
import type { RaftHost } from "./raft-host.ts";

/** Time a write may take from proposal to being applied before the client hears TIMEOUT. */
export const PROPOSE_TIMEOUT_MS = 5000;

/**
 * Proposes writes on behalf of clients: locally when this node leads the group, otherwise
 * forwarded over the peer link to the leader, so any node serves any client.
 */
export class Proposer {
  constructor(
    readonly host: RaftHost,
    readonly peers: PeerLinks,
  ) {}

  /**
   * Resolves with the state machine's result for `data` once applied on the leader.
   * @throws NotLeaderError (with the leader's address when known) if no leader can be reached.
   */
  async propose(group: GroupId, data: Uint8Array): Promise<unknown> {
    const g = this.#group(group);
    if (g.isLeader) return g.propose(data, PROPOSE_TIMEOUT_MS);
    const leader = g.leader;
    if (leader === null) throw noLeaderYet();
    if (!this.peers.isConnected(leader)) throw new NotLeaderError(leader, this.peers.clientAddrOf(leader));
    return this.peers.request(leader, Op.FORWARD, { group, data }, PROPOSE_TIMEOUT_MS + 500);
  }

  /**
   * Proposes a command object that the leader stamps with its own clock (`now`, ms) and encodes:
   * time-based state (lock TTLs, sessions) then follows one clock, the leader's, never a
   * replica's.
   */
  async proposeStamped(group: GroupId, cmd: Record<string, unknown>): Promise<unknown> {
    const g = this.#group(group);
    if (g.isLeader) return g.propose(this.#stamp(cmd), PROPOSE_TIMEOUT_MS);
    const leader = g.leader;
    if (leader === null) throw noLeaderYet();
    if (!this.peers.isConnected(leader)) throw new NotLeaderError(leader, this.peers.clientAddrOf(leader));
    return this.peers.request(leader, Op.FORWARD, { group, cmd }, PROPOSE_TIMEOUT_MS + 500);
  }

  #lastStampMs = 0;

  #stamp(cmd: Record<string, unknown>): Uint8Array {
    // Never hand the state machine a clock that runs backwards on this leader.
    this.#lastStampMs = Math.max(this.#lastStampMs, wallNow());
    return encodeCommand({ ...cmd, now: this.#lastStampMs });
  }

  /** Resolves once reads on this node reflect every write committed before the call. */
  async readBarrier(group: GroupId): Promise<void> {
    const g = this.#group(group);
    if (g.leader === null) throw noLeaderYet();
    await g.readBarrier(PROPOSE_TIMEOUT_MS);
  }

  /** Serves a FORWARD request from a follower: propose here if this node still leads. */
  async onForward(env: Envelope): Promise<unknown> {
    const f = asFields(env.body, "FORWARD");
    const group = int(f, "group", "FORWARD", { max: 0xffff });
    const g = this.#group(group);
    if (!g.isLeader) throw new NotLeaderError(g.leader, g.leader ? this.peers.clientAddrOf(g.leader) : null);
    if (f.cmd !== undefined && f.cmd !== null) {
      if (typeof f.cmd !== "object" || Array.isArray(f.cmd)) throw new InvalidArgumentError("FORWARD: cmd must be a map");
      return g.propose(this.#stamp(f.cmd as Record<string, unknown>), PROPOSE_TIMEOUT_MS);
    }
    const data = f.data;
    if (!(data instanceof Uint8Array)) throw new InvalidArgumentError("FORWARD: data must be bin");
    return g.propose(data, PROPOSE_TIMEOUT_MS);
  }

  #group(id: GroupId) {
    const g = this.host.group(id);
    if (!g) throw new InvalidArgumentError(`no Raft group ${id} on this node`);
    return g;
  }
}

/**
 * Refused before anything was proposed: NOT_LEADER with no hint, which clients treat as any
 * leader change (no effect; pause, then retry).
 */
function noLeaderYet(): NotLeaderError {
  return new NotLeaderError(null, null);
}
