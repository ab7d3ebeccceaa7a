import { FRAME_BYTES_MAX_DEFAULT } from "../../protocol/index.ts";
import { BACKOFF_DEFAULT, type BackoffOptions } from "../transport/backoff.ts";

/** Every knob of the client, with its default. */
export interface ClientOptions {
  /** Seed nodes' client addresses (`host:port`), as an array or a comma-separated string. */
  readonly nodes: readonly string[] | string;
  /** Auth token (the cluster's AUTH_TOKEN, or a signed token), when the cluster requires one. */
  readonly token?: string;
  /** A file holding the token, read at every (re)connection: a rotated token is picked up. */
  readonly tokenFile?: string;
  /** Connect with TLS: PEM contents (not paths) of the CA to trust, and a client certificate and key for mutual TLS. */
  readonly tls?: ClientTlsOptions;
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

/** TLS settings of a client: PEM strings or buffers, as node:tls takes them. */
export interface ClientTlsOptions {
  /** The CA that signed the nodes' certificates (default: the system's CAs). */
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

/** {@link ClientOptions} with every default filled in, as the client uses them. */
export type ResolvedClientOptions = Required<Omit<ClientOptions, "nodes" | "token" | "tokenFile" | "tls" | "clientName">> & {
  readonly nodes: readonly string[];
  readonly token: string | undefined;
  readonly tokenFile: string | undefined;
  readonly tls: ClientTlsOptions | undefined;
  readonly clientName: string | undefined;
};

/** Fills in defaults. @throws InvalidArgumentError-like Error when no node is given. */
export function resolveClientOptions(o: ClientOptions): ResolvedClientOptions {
  const nodes = (typeof o.nodes === "string" ? o.nodes.split(",") : [...o.nodes]).map((s) => s.trim()).filter(Boolean);
  if (nodes.length === 0) throw new Error("connect: give at least one node address, e.g. { nodes: ['127.0.0.1:7001'] }");
  if (o.token !== undefined && o.tokenFile !== undefined) throw new Error("connect: give token or tokenFile, not both");
  return {
    nodes,
    token: o.token,
    tokenFile: o.tokenFile,
    tls: o.tls,
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
