import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import {
  ConnectionClosedError,
  DsyncError,
  ErrorCode,
  MovedError,
  NotLeaderError,
  hadNoEffect,
  outcomeError,
  Op,
  RateLimitedError,
  PROTOCOL_VERSION,
  type Envelope,
  type HelloReply,
  type NodeStatus,
  type PingReply,
} from "../../protocol/index.ts";
import { backoffDelayMs } from "../transport/backoff.ts";
import { readFile } from "node:fs/promises";
import { dial, parseAddr } from "../transport/dial.ts";
import { connectTls, isCertificateProblem } from "../security/tls.ts";
import { RpcConnection } from "../transport/rpc-connection.ts";
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from "./options.ts";

/** Connection lifecycle events, in the order they can happen. */
export interface ClientEvents {
  connect: [info: { addr: string; nodeId: string; leader: string | null }];
  disconnect: [info: { addr: string; error: Error }];
  reconnecting: [info: { attempt: number; delayMs: number }];
  push: [env: Envelope];
}

/** Options of one call. */
export interface CallOptions {
  /** Safe to resend after a lost connection or timeout (reads, deduplicated writes). */
  readonly idempotent?: boolean;
  readonly timeoutMs?: number;
}

/**
 * A connection to a dsync cluster. Talks to one node at a time, follows leader redirects,
 * reconnects (single-flight, with backoff) when the node goes away, and raises typed errors.
 * Create it with {@link connect}.
 */
export class DsyncClient extends EventEmitter<ClientEvents> {
  readonly #opts: ResolvedClientOptions;
  #conn: RpcConnection | null = null;
  #connecting: Promise<RpcConnection> | null = null;
  #addr: string | null = null;
  #hello: HelloReply | null = null;
  #nextSeed = 0;
  #preferredAddr: string | null = null;
  #closed = false;
  readonly #siblings = new Map<string, DsyncClient>();

  constructor(opts: ClientOptions) {
    super();
    this.#opts = resolveClientOptions(opts);
  }

  /** The address of the node this client is talking to, or null while disconnected. */
  get connectedTo(): string | null {
    return this.#conn && !this.#conn.isClosed ? this.#addr : null;
  }

  /** What the connected node said in its HELLO reply. */
  get serverInfo(): HelloReply | null {
    return this.#hello;
  }

  /** Round trip to the connected node. */
  async ping(): Promise<{ nodeId: string; rttMs: number }> {
    const started = performance.now();
    const reply = (await this.call(Op.PING, {}, { idempotent: true })) as PingReply;
    return { nodeId: reply.nodeId, rttMs: performance.now() - started };
  }

  /** The connected node's view of itself and its peers. */
  async status(): Promise<NodeStatus> {
    return (await this.call(Op.STATUS, {}, { idempotent: true })) as NodeStatus;
  }

  /**
   * Sends one request and resolves with its reply body. Follows NOT_LEADER redirects, waits out
   * UNAVAILABLE with backoff, and resends after a lost connection or timeout only when
   * `idempotent`. Other errors are thrown as their typed class.
   */
  async call(op: number, body: unknown, opts: CallOptions = {}): Promise<unknown> {
    let lastError: Error | null = null;
    // The first attempt whose outcome is unknown: the call's outcome, if no later attempt succeeds.
    let unknown: DsyncError | null = null;
    let redirects = 0;
    for (let attempt = 0; attempt < this.#opts.maxAttempts; attempt++) {
      if (this.#closed) throw new ConnectionClosedError("client is closed");
      // Connected: no await before the request goes out (the common case on a hot path).
      let conn = this.#conn !== null && !this.#conn.isClosed ? this.#conn : null;
      if (conn === null) {
        try {
          conn = await this.#connection();
        } catch (err) {
          lastError = err as Error;
          await this.#pause(attempt);
          continue;
        }
      }
      try {
        return await conn.request(op, body, opts.timeoutMs ?? this.#opts.requestTimeoutMs);
      } catch (err) {
        lastError = outcomeError(unknown, err as Error);
        if (unknown === null && err instanceof DsyncError && !hadNoEffect(err.code)) unknown = err;
        if (err instanceof NotLeaderError) {
          this.#redirect(err.leaderAddr);
          // One redirect is the usual case and goes at once; more mean the nodes do not agree on
          // a leader yet (an election under way), and without a pause every attempt would be
          // spent within milliseconds.
          if (err.leaderAddr === null || ++redirects > 1) await this.#pause(attempt);
          continue;
        }
        // A queue's partition lives elsewhere: the queue client routes it (this connection stays).
        // After an attempt of unknown outcome, what is thrown says so (see outcomeError).
        if (!(err instanceof DsyncError) || !err.retryable || err instanceof MovedError) throw lastError;
        const lost = err.code === ErrorCode.CONNECTION_CLOSED || err.code === ErrorCode.TIMEOUT;
        if (lost && !opts.idempotent) throw lastError;
        // A new connection sends a new HELLO, with the token file read again.
        if (err.code === ErrorCode.TIMEOUT || err.code === ErrorCode.TOKEN_EXPIRED || err.code === ErrorCode.SHUTTING_DOWN) this.#drop(conn, err);
        if (err instanceof RateLimitedError) await new Promise((r) => setTimeout(r, err.retryAfterMs));
        else await this.#pause(attempt);
      }
    }
    throw lastError ?? new ConnectionClosedError("no attempt was made");
  }

  /** Closes the connection; pending calls fail with ConnectionClosedError. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#conn?.close();
    this.#conn = null;
    const siblings = [...this.#siblings.values()];
    this.#siblings.clear();
    await Promise.all(siblings.map((s) => s.close()));
  }

  /**
   * A client with the same options that talks to `addr` first (then the seeds), and does not move
   * to group 0's leader: for services whose requests are best served by a particular node, like
   * a queue partition's leader. One per address; closed with this client.
   */
  sibling(addr: string): DsyncClient {
    let s = this.#siblings.get(addr);
    if (!s) {
      const o = this.#opts;
      s = new DsyncClient({
        ...o,
        nodes: [addr, ...o.nodes.filter((n) => n !== addr)],
        preferLeader: false,
        ...(o.token !== undefined && { token: o.token }),
        ...(o.tokenFile !== undefined && { tokenFile: o.tokenFile }),
        ...(o.tls !== undefined && { tls: o.tls }),
        ...(o.clientName !== undefined && { clientName: o.clientName }),
      });
      this.#siblings.set(addr, s);
    }
    return s;
  }

  /**
   * Makes the next call go to `addr` (a node that holds what the caller needs): a client that
   * fell back to another node while `addr` was unreachable would otherwise stay there.
   */
  moveTo(addr: string): void {
    this.#redirect(addr);
  }

  /** Connects now (instead of on the first call). */
  async ready(): Promise<this> {
    await this.#connection();
    return this;
  }

  #connection(): Promise<RpcConnection> {
    if (this.#conn && !this.#conn.isClosed) return Promise.resolve(this.#conn);
    // Single flight: every caller waiting for a connection shares one dial.
    this.#connecting ??= this.#dialAny().finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #dialAny(): Promise<RpcConnection> {
    // A redirect target first, then each seed once, round-robin across dials.
    const tries = this.#opts.nodes.length + (this.#preferredAddr ? 1 : 0);
    const errors: string[] = [];
    for (let i = 0; i < tries; i++) {
      const addr = this.#preferredAddr ?? this.#opts.nodes[this.#nextSeed++ % this.#opts.nodes.length]!;
      this.#preferredAddr = null;
      try {
        const conn = await this.#open(addr);
        const leaderAddr = this.#hello?.leaderAddr ?? null;
        if (!this.#opts.preferLeader || leaderAddr === null || leaderAddr === addr) return conn;
        // One hop to the leader; if it cannot be reached, the first node serves (it forwards).
        try {
          const toLeader = await this.#open(leaderAddr);
          conn.close();
          return toLeader;
        } catch {
          return conn;
        }
      } catch (err) {
        if (err instanceof DsyncError && !err.retryable && err.code !== ErrorCode.CONNECTION_CLOSED) throw err;
        errors.push(`${addr}: ${(err as Error).message}`);
      }
    }
    throw new ConnectionClosedError(`no dsync node reachable (${errors.join("; ")})`);
  }

  async #open(addr: string): Promise<RpcConnection> {
    const token = await this.#token();
    const raw = await dial(addr, this.#opts.connectTimeoutMs);
    let socket: Socket = raw;
    const tls = this.#opts.tls;
    if (tls) {
      try {
        socket = await connectTls(raw, addr, parseAddr(addr).host, { ...(tls.ca && { ca: tls.ca }), ...(tls.cert && { cert: tls.cert }), ...(tls.key && { key: tls.key }) }, null, this.#opts.connectTimeoutMs);
      } catch (err) {
        raw.destroy();
        // A certificate problem will not fix itself by retrying: say so at once.
        if (isCertificateProblem(err)) throw new DsyncError(ErrorCode.UNAUTHENTICATED, (err as Error).message, { cause: err });
        throw new ConnectionClosedError((err as Error).message, { cause: err });
      }
    }
    const conn = new RpcConnection(socket, {
      maxFrameBytes: this.#opts.maxFrameBytes,
      pendingRequestsMax: this.#opts.pendingRequestsMax,
      requestTimeoutMs: this.#opts.requestTimeoutMs,
    });
    let hello: HelloReply;
    try {
      hello = (await conn.request(
        Op.HELLO,
        { v: PROTOCOL_VERSION, ...(token !== undefined && { token }), ...(this.#opts.clientName !== undefined && { client: this.#opts.clientName }) },
        this.#opts.connectTimeoutMs,
      )) as HelloReply;
    } catch (err) {
      conn.close();
      throw err;
    }
    if (this.#closed) {
      conn.close();
      throw new ConnectionClosedError("client is closed");
    }
    this.#conn = conn;
    this.#addr = addr;
    this.#hello = hello;
    conn.onPush((env) => this.emit("push", env));
    conn.onClose((error) => {
      if (this.#conn === conn) this.#conn = null;
      if (!this.#closed) this.emit("disconnect", { addr, error });
    });
    this.emit("connect", { addr, nodeId: hello.nodeId, leader: hello.leader });
    return conn;
  }

  async #token(): Promise<string | undefined> {
    const file = this.#opts.tokenFile;
    if (file === undefined) return this.#opts.token;
    try {
      return (await readFile(file, "utf8")).trim();
    } catch (err) {
      throw new DsyncError(ErrorCode.UNAUTHENTICATED, `cannot read the token file ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  #redirect(leaderAddr: string | null): void {
    if (leaderAddr === null || leaderAddr === this.#addr) return;
    this.#preferredAddr = leaderAddr;
    this.#conn?.close();
    this.#conn = null;
  }

  #drop(conn: RpcConnection, _why: Error): void {
    // A node that times out may be stuck (paused, partitioned): try another one.
    conn.close();
    if (this.#conn === conn) this.#conn = null;
  }

  async #pause(attempt: number): Promise<void> {
    const delayMs = backoffDelayMs(attempt, this.#opts.backoff, Math.random);
    this.emit("reconnecting", { attempt: attempt + 1, delayMs });
    await new Promise((r) => setTimeout(r, delayMs));
  }
}

/**
 * Connects to a dsync cluster through any of `opts.nodes` and completes the handshake.
 * @throws ConnectionClosedError when no node is reachable; DsyncError(UNAUTHENTICATED) for a bad token.
 */
export async function connect(opts: ClientOptions): Promise<DsyncClient> {
  return new DsyncClient(opts).ready();
}
