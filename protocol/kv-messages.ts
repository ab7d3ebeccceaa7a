/**
 * Wire types of the key-value register and of cluster administration, one declaration for the
 * daemon (its handlers return them) and the client side (the CLI and tests read them).
 * PROTOCOL.md "Key-value" and "ADMIN_…" describe each field.
 */
import type { MoveJob } from "./shard-messages.ts";

/** KV_PUT and KV_DELETE: the revision (log index) the write took effect at; whether the key existed before. */
export interface KvWriteReply {
  readonly revision: number;
  readonly existed: boolean;
}

/** KV_GET: the value and the revision that last wrote it (`found: false`: value nil, revision 0). */
export interface KvGetReply {
  readonly found: boolean;
  readonly value: Uint8Array | null;
  readonly revision: number;
}

/** ADMIN_TRANSFER_LEADER: who leads group 0 now, in which term. */
export interface AdminTransferReply {
  readonly leader: string;
  readonly term: number;
}

/** Group 0's membership after an ADMIN_ADD_NODE or ADMIN_REMOVE_NODE. */
export interface AdminMembership {
  readonly voters: readonly string[];
  readonly learners: readonly string[];
}

/**
 * ADMIN_ADD_NODE's reply: the node's role in group 0 (a voter while group 0 has fewer than 3, or
 * 5, voters; else a learner, which serves clients all the same) and the replica moves queued to
 * rebalance partitions onto it (see ADMIN_SHARDS).
 */
export interface AdminMemberReply {
  readonly nodeId: string;
  readonly role: "voter" | "learner";
  readonly conf: AdminMembership;
  readonly jobs: readonly MoveJob[];
}

/** ADMIN_DRAIN's reply: the Raft groups whose leadership the node handed over. */
export interface AdminDrainReply {
  nodeId: string;
  handedOver: number[];
  /** Groups it still led when the handover's time ran out (no caught-up voter reachable). */
  stillLeading: number[];
}
