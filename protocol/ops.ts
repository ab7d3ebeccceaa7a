/**
 * Message types: the first element of every envelope. Ranges: 0–1 replies, 2–63 client
 * requests, 64–95 pushes (server to client, id 0), 96–127 peer-to-peer.
 *
 * Blocks by service, so each can grow without renumbering: 16–23 key-value, 24–31 admin,
 * 32–39 locks, 40–55 queues, 56–63 cache; pushes 64 lock, 65–66 queue, 67–69 cache;
 * peer 96–99 Raft and forwarding, 100–111 cache coherence, 112–115 queue partitions and backups of them.
 */
export const Op = {
  /** A successful reply; its id is the request's. */
  REPLY: 0,
  /** A failed reply (id of the request) or a connection-level error (id 0). Body: ErrorBody. */
  ERROR: 1,
  HELLO: 2,
  PING: 3,
  STATUS: 4,
  /** Write a key in the replicated key-value register (group 0). */
  KV_PUT: 16,
  /** Read a key; linearizable (ReadIndex) unless `stale: true`. */
  KV_GET: 17,
  KV_DELETE: 18,
  /** Ask the leader to hand leadership to another voter. */
  ADMIN_TRANSFER_LEADER: 24,
  /** Add a node: it joins group 0 as a learner, is promoted to voter if group 0 has fewer than 3 (or 5), and partitions are rebalanced onto it. */
  ADMIN_ADD_NODE: 25,
  /** Decommission a node: its replicas move to other nodes, then it leaves the cluster. */
  ADMIN_REMOVE_NODE: 26,
  /** Drain the node that receives it: its leaderships handed over, new requests refused; stop it next. */
  ADMIN_DRAIN: 27,
  /** Take a linearizable image of every Raft group on the receiving node; fetch it with ADMIN_BACKUP_CHUNK. */
  ADMIN_BACKUP: 28,
  /** One slice of one group's image of a backup taken by ADMIN_BACKUP on the same node. */
  ADMIN_BACKUP_CHUNK: 29,
  /** The shard map: each queue partition's replicas, leader, lag and state, the nodes, and the replica-move jobs. */
  ADMIN_SHARDS: 30,
  /** Plan (dryRun) or queue the replica moves that balance the partitions over the active nodes. */
  ADMIN_REBALANCE: 31,
  /** Open a lock session (a lease kept alive by the client); binds it to this connection. */
  LOCK_SESSION_OPEN: 32,
  LOCK_KEEPALIVE: 33,
  LOCK_SESSION_CLOSE: 34,
  LOCK_ACQUIRE: 35,
  LOCK_RELEASE: 36,
  /** Holders and waiters of one resource (linearizable). */
  LOCK_STATUS: 37,
  /** Every resource with holders or waiters, and the service's counters. */
  LOCK_LIST: 38,
  /** Append messages to a queue; the reply comes once they are committed. */
  QUEUE_ENQUEUE: 40,
  /** Take up to `max` visible messages (long-polls up to `waitMs`); each is in flight until acked. */
  QUEUE_CONSUME: 41,
  QUEUE_ACK: 42,
  /** Give a message back: visible again after `delayMs` or the queue's backoff. */
  QUEUE_NACK: 43,
  /** Start push deliveries (QUEUE_DELIVERY) to this connection, at most `prefetch` unacked. */
  QUEUE_SUBSCRIBE: 44,
  QUEUE_UNSUBSCRIBE: 45,
  /** Depth, in-flight and counters of one queue, with its settings and partition. */
  QUEUE_STATS: 46,
  /** Change a queue's settings (max deliveries, visibility, backoff, DLQ name, dedup window). */
  QUEUE_CONFIGURE: 47,
  /** The oldest messages of a dead-letter queue, with their delivery history. */
  QUEUE_DLQ_LIST: 48,
  /** Move dead-lettered messages back to their source queue. */
  QUEUE_DLQ_REDRIVE: 49,
  QUEUE_PURGE: 50,
  /** Partitions (leader, queues) and every queue's counters. */
  QUEUE_LIST: 51,
  /** Read a cache key through the connected node (a hit is served from its line). */
  CACHE_GET: 56,
  /** Write a cache key (bytes), optionally with a TTL. */
  CACHE_SET: 57,
  CACHE_DELETE: 58,
  /** Drop every cached copy of a key cluster-wide (the value stays). */
  CACHE_INVALIDATE: 59,
  /** Which nodes hold a leased copy of a key, and the copies its home granted. */
  CACHE_STATE: 60,
  /** The connected node's cache counters. */
  CACHE_STATS: 61,
  /** A near-cache client confirms it dropped the keys of a CACHE_NEAR_INVALIDATE push. */
  CACHE_NEAR_ACK: 62,
  /** A near-cache client extends the leases of copies it keeps using. */
  CACHE_NEAR_RENEW: 63,
  /** Push: a lock event for a session bound to this connection (grant, refusal, loss, expiry). */
  LOCK_EVENT: 64,
  /** Push: messages for a subscription of this connection. */
  QUEUE_DELIVERY: 65,
  /** Push: a subscription of this connection ended (its partition moved to other nodes); subscribe again. */
  QUEUE_SUBSCRIPTION_ENDED: 66,
  /** Push: drop these keys from the near-cache, then answer CACHE_NEAR_ACK. */
  CACHE_NEAR_INVALIDATE: 67,
  PEER_HELLO: 96,
  /** A batch of Raft messages between peers; one-way (id 0). */
  RAFT: 97,
  /** A follower hands a client's write to the leader. */
  FORWARD: 98,
  /** Cache coherence between nodes (holder ↔ home); see PROTOCOL.md "Cache". */
  CACHE_READ: 100,
  CACHE_WRITE: 101,
  CACHE_INVALIDATE_COPY: 103,
  CACHE_DROP: 107,
  CACHE_PEEK: 108,
  CACHE_RENEW: 109,
  CACHE_HANDOFF: 110,
  /** One node asks another for its views of queue partitions it does not hold (QUEUE_LIST). */
  QUEUE_LIST_PARTITIONS: 112,
  /** One node asks another for the Raft status of the queue partitions it holds (ADMIN_SHARDS). */
  PARTITION_STATUS: 113,
  /** A node taking a backup asks a node holding groups it lacks for their images (held for BACKUP_IMAGE_CHUNK). */
  BACKUP_IMAGES: 114,
  /** One slice of one of those images. */
  BACKUP_IMAGE_CHUNK: 115,
  /** A node whose group 0 has no leader asks another whether it is still a member (it may have been removed while down). */
  MEMBER_CHECK: 116,
} as const;
/** One of the message types above. */
export type Op = (typeof Op)[keyof typeof Op];

const NAMES = new Map<number, string>(Object.entries(Op).map(([name, op]) => [op, name]));

/** The name of a message type (`"PING"`), or `"OP_<n>"` for an unknown number. */
export function opName(op: number): string {
  return NAMES.get(op) ?? `OP_${op}`;
}

/** Whether `op` is a message type this protocol version defines. */
export function isKnownOp(op: number): op is Op {
  return NAMES.has(op);
}

/** The protocol version this code speaks, exchanged in HELLO / PEER_HELLO. */
export const PROTOCOL_VERSION = 1;
