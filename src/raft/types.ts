/**
 * The contract of the pure Raft core: the values that cross its boundary.
 *
 * The core does no I/O and reads no clock. The node layer feeds it `tick()`, `step(msg)` and
 * proposals, drains a {@link Ready}, persists `hardState`/`entries`/`snapshot` *before* it sends
 * `messages`, applies `committedEntries`, then calls `advance(ready)`.
 */

/** A node's id in the cluster, e.g. `"n1"`. Stable for the node's lifetime. */
export type NodeId = string;

/** A Raft group's id. Group 0 is the cluster's control group (cluster map, locks). */
export type GroupId = number;

/** Kinds of log entries. A `Normal` entry with empty data is the leader's no-op. */
export const EntryType = {
  Normal: 0,
  ConfChange: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One log entry. `data` is opaque to the core, except for ConfChange entries (see {@link encodeConfChange}). */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must be durable before a vote or an append is acknowledged. */
export interface HardState {
  readonly term: number;
  /** Whom this node voted for in `term`, or null. */
  readonly vote: NodeId | null;
  readonly commit: number;
}

/** The membership of a group. A learner receives the log but neither votes nor counts for quorum. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export const ConfChangeType = {
  /** Add a node as a learner; it catches up before it is promoted. */
  AddLearner: 0,
  /** Add a voter, or promote a learner to voter. */
  AddVoter: 1,
  RemoveNode: 2,
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

/** One membership change. Only one may be pending (proposed but not applied) at a time. */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly node: NodeId;
}

export interface SnapshotMeta {
  /** Index and term of the last entry the snapshot covers. */
  readonly index: number;
  readonly term: number;
  readonly conf: ConfState;
}

/** A state-machine image at `meta.index`; `data` is opaque to the core. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export const MessageType = {
  /** Local only: election timeout elapsed. Never sent over the wire. */
  Hup: 0,
  PreVote: 1,
  PreVoteResp: 2,
  Vote: 3,
  VoteResp: 4,
  App: 5,
  AppResp: 6,
  Heartbeat: 7,
  HeartbeatResp: 8,
  /** One chunk of an InstallSnapshot. */
  Snap: 9,
  SnapResp: 10,
  TimeoutNow: 11,
  ReadIndex: 12,
  ReadIndexResp: 13,
  TransferLeader: 14,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** A chunk of a snapshot in flight: bytes `[offset, offset + data.length)` of `meta`'s image. */
export interface SnapshotChunk {
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly totalBytes: number;
  readonly data: Uint8Array;
  readonly done: boolean;
}

/**
 * A message between the Raft cores of one group. Fields not relevant to `type` are 0/empty.
 * Every message carries its group so one transport serves many groups.
 */
export interface Message {
  readonly type: MessageType;
  readonly group: GroupId;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /** App: term of the entry at `index` (the entry preceding `entries`). Vote: last log term. */
  readonly logTerm: number;
  /** App: index preceding `entries`. AppResp: last matching index (or rejected index). Vote: last log index. */
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  /** AppResp on reject: a hint for fast backtracking (the follower's last index / conflict index). */
  readonly rejectHint: number;
  /** AppResp on reject: the term at rejectHint, for term-based fast backtracking. 0 if unknown. */
  readonly rejectTerm?: number;
  readonly snapshot?: SnapshotChunk;
  /**
   * Snap: the leader's transfer attempt the chunk belongs to (unique among one leader's attempts
   * in one term); SnapResp: echoed from the chunk answered. Absent from peers that predate it.
   */
  readonly snapshotAttempt?: number;
  /** ReadIndex request context, echoed in the response; heartbeat context for ReadIndex rounds. */
  readonly context?: string;
}

/** A linearizable read point: once `applied >= index`, a read for `context` may be served. */
export interface ReadState {
  readonly context: string;
  readonly index: number;
}

export const Role = {
  Follower: "follower",
  PreCandidate: "pre-candidate",
  Candidate: "candidate",
  Leader: "leader",
  Learner: "learner",
} as const;
export type Role = (typeof Role)[keyof typeof Role];

export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
}

/**
 * Outstanding work. The node layer must, in order: persist `snapshot`, `entries` and `hardState`
 * (entries replace any existing suffix starting at `entries[0].index`); send `messages`; apply
 * `committedEntries` in order; then call `advance(ready)`.
 */
export interface Ready {
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
}

/**
 * Read-only view of the durable log that the core consults. Ranges are half-open `[lo, hi)`.
 * Returned arrays are owned by the caller and must not be mutated by the storage afterwards.
 */
export interface LogStorage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in `[lo, hi)`, stopping early once `maxBytes` of data is exceeded (always at least one). Throws {@link CompactedError} if `lo < firstIndex()`. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry `index`; valid for `[firstIndex() - 1, lastIndex()]`. Throws {@link CompactedError} below. */
  term(index: number): number;
  /** Index of the first entry still in the log (the snapshot's index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  /** The most recent snapshot (meta.index 0 when none). */
  snapshot(): Snapshot;
}

/** Thrown by {@link LogStorage} for an index that was compacted into a snapshot. */
export class CompactedError extends Error {
  override readonly name = "CompactedError";
}

/** A deterministic random source injected into the core. */
export interface Rng {
  /** A uniformly distributed integer in `[0, n)`. */
  nextInt(n: number): number;
}

export interface RaftConfig {
  readonly id: NodeId;
  readonly group: GroupId;
  /** Ticks without a leader's word before an election; the actual timeout is drawn from `[electionTicks, 2 * electionTicks)`. */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly storage: LogStorage;
  readonly rng: Rng;
  /** Index of the last entry already applied by the state machine (on restart). */
  readonly applied?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  /**
   * Grant no unforced (pre)vote during the first election timeout after start (default off).
   * Needed when the host times leadership by a lease: a member that acknowledged the leader and
   * then restarted has forgotten it, and would otherwise vote at once.
   */
  readonly holdVotesAtStart?: boolean;
  /** Upper bound of entry bytes in one App message. */
  readonly maxMsgBytes?: number;
  /** Maximum App messages in flight per follower (pipelining window). */
  readonly maxInflightMsgs?: number;
  /** Maximum bytes of one InstallSnapshot chunk. */
  readonly snapshotChunkBytes?: number;
}
