/** Replies of the cache requests (see PROTOCOL.md "Cache"). */

/** One node's copy of a key, in CACHE_STATE (and the peer CACHE_PEEK). */
export interface CacheCopy {
  readonly node: string;
  /** MESI state; "I" when the node holds no copy. */
  readonly state: "M" | "E" | "S" | "I";
  /** The grant number of the copy. */
  readonly gen: number | null;
  /** The home that granted the copy. */
  readonly home: string | null;
  /** Near-cache clients holding the key through this node. */
  readonly near: number;
  /** The directory entry, when this node is the key's home ("X": an M or E copy). */
  readonly directory: { node: string; state: "S" | "X"; gen: number }[] | null;
}

/** CACHE_STATE reply. */
export interface CacheKeyState {
  readonly key: string;
  readonly home: string | null;
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
  readonly writeBacks: number;
  readonly ownerLinesLost: number;
  readonly lines: { M: number; E: number; S: number };
  readonly bytes: number;
  readonly capacity: number;
  readonly capacityBytes: number;
  readonly directoryEntries: number;
  readonly nearClients: number;
  readonly nearKeys: number;
  readonly store: "redis" | "embedded";
  readonly writePolicy: "write-back" | "write-through";
  /** The takeovers this node routes by, highest first. */
  readonly homeOf: { stamp: number; taker: string; view: readonly string[] }[];
}
