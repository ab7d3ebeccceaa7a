import { PROTOCOL_VERSION } from "./ops.ts";
import { asFields, int, str } from "./validate.ts";

/** HELLO request: the first message on every client connection. */
export interface HelloRequest {
  /** Protocol version the client speaks; this node speaks {@link PROTOCOL_VERSION}. */
  readonly v: number;
  /** Shared secret, required when the node is configured with one. */
  readonly token?: string;
  /** Free-form client name for logs, e.g. `"billing-worker/3"`. */
  readonly client?: string;
}

/** HELLO reply. */
export interface HelloReply {
  readonly v: number;
  readonly nodeId: string;
  /** Node id of the current leader, or null when none is known. */
  readonly leader: string | null;
  /** Client address (host:port) of the leader, or null. */
  readonly leaderAddr: string | null;
  readonly maxFrameBytes: number;
  readonly server: string;
  /** Who the node took the client for, and until when (ms since the epoch; null: no expiry). */
  readonly identity?: HelloIdentity;
}

/** The authenticated identity of a connection, in the HELLO reply. */
export interface HelloIdentity {
  readonly subject: string;
  /** `open` (no access control), `token` (the shared AUTH_TOKEN), `jwt`, or `certificate`. */
  readonly via: string;
  readonly roles: readonly string[];
  readonly expiresAt: number | null;
}

/** PING reply. */
export interface PingReply {
  readonly nodeId: string;
}

/** One peer as a node sees it, in STATUS. */
export interface PeerStatus {
  readonly id: string;
  /** Peer-port address the node dials. */
  readonly peerAddr: string;
  /** The peer's client address, learnt from its PEER_HELLO; null until first contact. */
  readonly clientAddr: string | null;
  readonly connected: boolean;
}

/** STATUS reply: one node's view of itself and its peers. */
export interface NodeStatus {
  readonly nodeId: string;
  readonly clientAddr: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly leaderAddr: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly uptimeMs: number;
  readonly serving: boolean;
  /** First and last index of the log this node holds (entries before firstIndex are in a snapshot). */
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** Index of the last snapshot taken or installed (0 if none). */
  readonly snapshotIndex: number;
  /** Bytes of write-ahead log on disk. */
  readonly logBytes: number;
  /** Group 0's membership as this node knows it. */
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly peers: readonly PeerStatus[];
}

/** PEER_HELLO request: the first message on every peer connection. */
export interface PeerHelloRequest {
  readonly v: number;
  readonly nodeId: string;
  readonly clientAddr: string;
  readonly token?: string;
  /** The sender's cluster id; absent while a joining node has not learnt it yet. */
  readonly cluster?: string;
}

/** PEER_HELLO reply. */
export interface PeerHelloReply {
  readonly nodeId: string;
  readonly clientAddr: string;
  /** The acceptor's cluster id (absent while it has not learnt one). */
  readonly cluster?: string;
}

/** Reads and validates a HELLO body. @throws InvalidArgumentError */
export function parseHello(body: unknown): HelloRequest {
  const f = asFields(body, "HELLO");
  const token = str(f, "token", "HELLO", { optional: true, maxBytes: 4096 });
  const client = str(f, "client", "HELLO", { optional: true, maxBytes: 256 });
  // Any integer is a version: one this node does not speak is UNSUPPORTED_VERSION, not a bad field.
  return { v: int(f, "v", "HELLO", { min: Number.MIN_SAFE_INTEGER }), ...(token !== undefined && { token }), ...(client !== undefined && { client }) };
}

/** Reads and validates a PEER_HELLO body. @throws InvalidArgumentError */
export function parsePeerHello(body: unknown): PeerHelloRequest {
  const f = asFields(body, "PEER_HELLO");
  const token = str(f, "token", "PEER_HELLO", { optional: true, maxBytes: 4096 });
  const cluster = str(f, "cluster", "PEER_HELLO", { optional: true, maxBytes: 64 });
  return {
    v: int(f, "v", "PEER_HELLO", { min: 1, max: 0xffff }),
    nodeId: str(f, "nodeId", "PEER_HELLO", { maxBytes: 128 }),
    clientAddr: str(f, "clientAddr", "PEER_HELLO", { maxBytes: 300 }),
    ...(token !== undefined && { token }),
    ...(cluster !== undefined && { cluster }),
  };
}

export { PROTOCOL_VERSION };
