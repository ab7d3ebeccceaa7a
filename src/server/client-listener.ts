import net from "node:net";
import {
  DsyncError,
  ErrorCode,
  Op,
  PROTOCOL_VERSION,
  parseHello,
  type Envelope,
  type HelloReply,
} from "../../protocol/index.ts";
import { FramedSocket } from "../transport/framed-socket.ts";
import { tokensEqual } from "../transport/token.ts";
import type { Logger } from "../host/logger.ts";
import type { NodeMetrics } from "../host/metrics.ts";
import type { RequestRouter } from "../host/request-router.ts";
import { listenOn } from "../transport/listen.ts";

export interface ClientListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly maxFrameBytes: number;
  readonly authToken: string | null;
  /** Requests in flight on one connection beyond which new ones get OVERLOADED. */
  readonly inflightMax?: number;
  /** Facts for the HELLO reply, read at handshake time. */
  readonly hello: () => Omit<HelloReply, "v" | "maxFrameBytes">;
}

/**
 * The client port: accepts connections, enforces the HELLO handshake (version, auth token), then
 * hands every request to the router. A misbehaving client only ever affects its own connection.
 */
export class ClientListener {
  readonly #server: net.Server;
  readonly #conns = new Set<FramedSocket>();
  #accepting = true;

  constructor(
    readonly opts: ClientListenerOptions,
    readonly router: RequestRouter,
    readonly metrics: NodeMetrics,
    readonly log: Logger,
  ) {
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  listen(): Promise<void> {
    return listenOn(this.#server, this.opts.port, this.opts.host);
  }


  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Stops accepting; closes every connection after its queued replies are flushed. */
  async close(): Promise<void> {
    this.#accepting = false;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const c of this.#conns) c.close();
    await closed;
  }

  #accept(socket: net.Socket): void {
    if (!this.#accepting) {
      socket.destroy();
      return;
    }
    const conn = new FramedSocket(socket, { maxFrameBytes: this.opts.maxFrameBytes, observer: this.metrics.observer("client") });
    const connState = new Map<string, unknown>();
    const closeHandlers: (() => void)[] = [];
    const ctx = { conn, connState, onClose: (fn: () => void) => void closeHandlers.push(fn) };
    const inflightMax = this.opts.inflightMax ?? 4096;
    let handshaken = false;
    let inflight = 0;
    const release = (): void => {
      inflight--;
    };
    this.#conns.add(conn);
    this.metrics.connections.inc();
    conn.onClose(() => {
      this.#conns.delete(conn);
      this.metrics.connections.dec();
      for (const fn of closeHandlers) fn();
    });
    conn.onMessage((env: Envelope) => {
      if (env.type === Op.HELLO) {
        handshaken = this.#hello(conn, env) || handshaken;
        return;
      }
      if (!handshaken) {
        this.#refuse(conn, env.id, new DsyncError(ErrorCode.HANDSHAKE_REQUIRED, "send HELLO {v: 1} before any other request"));
        return;
      }
      if (inflight >= inflightMax) {
        this.#refuse(conn, env.id, new DsyncError(ErrorCode.OVERLOADED, `more than ${inflightMax} requests in flight on this connection`));
        return;
      }
      inflight++;
      this.router.dispatch(env, ctx, release);
    });
  }

  /** Answers a HELLO; returns whether the handshake succeeded. */
  #hello(conn: FramedSocket, env: Envelope): boolean {
    let hello;
    try {
      hello = parseHello(env.body);
    } catch (err) {
      this.#refuse(conn, env.id, err as DsyncError);
      return false;
    }
    if (hello.v !== PROTOCOL_VERSION) {
      this.#refuse(conn, env.id, new DsyncError(ErrorCode.UNSUPPORTED_VERSION, `protocol version ${hello.v} is not supported; this node speaks ${PROTOCOL_VERSION}`));
      conn.close();
      return false;
    }
    if (this.opts.authToken !== null && !tokensEqual(hello.token, this.opts.authToken)) {
      this.#refuse(conn, env.id, new DsyncError(ErrorCode.UNAUTHENTICATED, hello.token === undefined ? "this node requires an auth token" : "wrong auth token"));
      conn.close();
      return false;
    }
    const reply: HelloReply = { v: PROTOCOL_VERSION, maxFrameBytes: this.opts.maxFrameBytes, ...this.opts.hello() };
    conn.send({ type: Op.REPLY, id: env.id, body: reply });
    return true;
  }

  #refuse(conn: FramedSocket, id: number, err: DsyncError): void {
    this.metrics.errors.labels(err.codeName).inc();
    conn.sendError(id, err);
  }
}
