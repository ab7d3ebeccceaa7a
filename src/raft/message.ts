import type { Message, MessageType, NodeId } from "./types.ts";

/** The fields a sender fills in; everything else defaults to 0/empty. */
export type MessageInit = Partial<Message> & { readonly type: MessageType };

/** Builds a complete {@link Message} with zero/empty defaults for the fields not given. */
export function makeMessage(init: MessageInit & Pick<Message, "group" | "from" | "to" | "term">): Message {
  return {
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...init,
  };
}

/** Context carried by Vote messages of a campaign triggered by TimeoutNow: it overrides the leader lease. */
export const CAMPAIGN_TRANSFER_CONTEXT = "raft:transfer";

/** How a helper of the `Raft` core queues a message: the node stamps its group, id and (unless given) term. */
export type Outbox = (init: MessageInit & { to: NodeId }) => void;
