/** Replies of the cache requests (see PROTOCOL.md "Cache"). */

/** One node's copy of a key, in CACHE_STATE (and the peer CACHE_PEEK). */
export interface CacheCopy {
  readonly node: string;
  /** "S": the node holds a leased copy it may serve; "I": no copy (or its lease ran out). */
  readonly state: "S" | "I";
  /** The log index of the write that produced the copy's value. */
  readonly gen: number | null;
  /** The home that granted the copy. */
  readonly home: string | null;
  /** Milliseconds left on the copy's lease. */
  readonly leaseMs: number;
  /** Near-cache clients holding the key through this node. */
  readonly near: number;
  /** When this node is the key's home: the nodes it granted copies to, with the time left on each. */
  readonly holders: { node: string; leaseMs: number }[] | null;
}

/** CACHE_STATE reply. */
export interface CacheKeyState {
  readonly key: string;
  /** The key's home: the leader of its cache partition (null while it has none). */
  readonly home: string | null;
  /** The key's cache partition. */
  readonly partition: number | null;
  readonly copies: CacheCopy[];
  /** Members that did not answer. */
  readonly unreachable: string[];
}

/** CACHE_STATS reply: one node's counters since it started. */
export interface CacheStats {
  readonly nodeId: string;
  readonly hits: number;
  readonly misses: number;
  readonly hitRatio: number;
  readonly evictions: number;
  readonly invalidationsSent: number;
  readonly invalidationsReceived: number;
  /** Versions written to Redis (write-through or write-back). */
  readonly storeWrites: number;
  /** Leased copies this node holds. */
  readonly lines: number;
  readonly bytes: number;
  readonly capacity: number;
  readonly capacityBytes: number;
  /** Copies this node, as a home, has granted and not yet seen expire. */
  readonly holderEntries: number;
  readonly nearClients: number;
  readonly nearKeys: number;
  readonly store: "redis" | "embedded";
  readonly writePolicy: "write-back" | "write-through";
  /** The cache partitions this node leads (is home of). */
  readonly homeOf: number[];
  /** Versions in the partitions this node leads that Redis does not have yet. */
  readonly dirty: number;
}
