import { FRAME_BYTES_MAX_DEFAULT } from "../../protocol/index.ts";
import { BACKOFF_DEFAULT, type BackoffOptions } from "../transport/backoff.ts";

/** Every knob of the client, with its default. */
export interface ClientOptions {
  /** Seed nodes' client addresses (`host:port`), as an array or a comma-separated string. */
  readonly nodes: readonly string[] | string;
  /** Auth token, when the cluster is configured with one. */
  readonly token?: string;
  /** A name for this client in the nodes' logs. */
  readonly clientName?: string;
  readonly connectTimeoutMs?: number;
  /** Per request; a request without a reply by then fails with TimeoutError. */
  readonly requestTimeoutMs?: number;
  /** Attempts for a retryable failure (redirect, no quorum, lost connection for idempotent calls). */
  readonly maxAttempts?: number;
  /** Requests in flight at once on the connection. */
  readonly pendingRequestsMax?: number;
  readonly backoff?: BackoffOptions;
  readonly maxFrameBytes?: number;
  /**
   * Move to the leader when the node first reached names another one (default true): writes then
   * skip the follower-to-leader hop. Off, any node serves (followers forward writes).
   */
  readonly preferLeader?: boolean;
}

/** {@link ClientOptions} with every default filled in, as the client uses them. */
export type ResolvedClientOptions = Required<Omit<ClientOptions, "nodes" | "token" | "clientName">> & {
  readonly nodes: readonly string[];
  readonly token: string | undefined;
  readonly clientName: string | undefined;
};

/** Fills in defaults. @throws InvalidArgumentError-like Error when no node is given. */
export function resolveClientOptions(o: ClientOptions): ResolvedClientOptions {
  const nodes = (typeof o.nodes === "string" ? o.nodes.split(",") : [...o.nodes]).map((s) => s.trim()).filter(Boolean);
  if (nodes.length === 0) throw new Error("connect: give at least one node address, e.g. { nodes: ['127.0.0.1:7001'] }");
  return {
    nodes,
    token: o.token,
    clientName: o.clientName,
    connectTimeoutMs: o.connectTimeoutMs ?? 2000,
    requestTimeoutMs: o.requestTimeoutMs ?? 5000,
    maxAttempts: o.maxAttempts ?? 8,
    pendingRequestsMax: o.pendingRequestsMax ?? 10_000,
    backoff: o.backoff ?? BACKOFF_DEFAULT,
    maxFrameBytes: o.maxFrameBytes ?? FRAME_BYTES_MAX_DEFAULT,
    preferLeader: o.preferLeader ?? true,
  };
}
