import type { Socket } from "node:net";
import {
  ConnectionClosedError,
  DsyncError,
  ErrorCode,
  Op,
  TimeoutError,
  errorFromBody,
  opName,
  type Envelope,
  type ErrorBody,
} from "../../protocol/index.ts";
import { FramedSocket, type FramedSocketOptions } from "./framed-socket.ts";

export interface RpcConnectionOptions extends FramedSocketOptions {
  /** Requests allowed in flight at once; more fail fast with OVERLOADED. */
  readonly pendingRequestsMax?: number;
  readonly requestTimeoutMs?: number;
}

interface Pending {
  resolve(body: unknown): void;
  reject(err: Error): void;
  /** performance.now() past which the request fails with TimeoutError. */
  readonly deadline: number;
  readonly type: number;
  readonly timeoutMs: number;
}

/**
 * The requesting side of a connection: many pipelined requests in flight, each matched to its
 * REPLY or ERROR by id and bounded by a timeout. Envelopes that are not replies (pushes, one-way
 * peer messages, id-0 errors) go to `onPush`.
 */
export class RpcConnection {
  readonly framed: FramedSocket;
  readonly #pending = new Map<number, Pending>();
  readonly #pendingMax: number;
  readonly #timeoutMs: number;
  #nextId = 1;
  /** One timer for every request's deadline, armed for the earliest (a timer per request costs more than the request on a fast path). */
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  #closeError: Error | null = null;
  #onPush: (env: Envelope) => void = () => {};
  #onClose: (err: Error) => void = () => {};

  constructor(socket: Socket, opts: RpcConnectionOptions) {
    this.#pendingMax = opts.pendingRequestsMax ?? 10_000;
    this.#timeoutMs = opts.requestTimeoutMs ?? 5000;
    this.framed = new FramedSocket(socket, opts)
      .onMessage((env) => this.#onMessage(env))
      .onClose((err) => this.#failAll(new ConnectionClosedError("connection closed", { cause: err })));
  }

  onPush(fn: (env: Envelope) => void): this {
    this.#onPush = fn;
    return this;
  }

  onClose(fn: (err: Error) => void): this {
    this.#onClose = fn;
    return this;
  }

  get isClosed(): boolean {
    return this.#closeError !== null;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /**
   * Sends a request and resolves with the REPLY body.
   * @throws the typed error of an ERROR reply; TimeoutError after `timeoutMs`;
   * ConnectionClosedError when the connection drops first; DsyncError(OVERLOADED) when too many
   * requests are in flight.
   */
  request(type: number, body: unknown, timeoutMs: number = this.#timeoutMs): Promise<unknown> {
    if (this.#closeError) return Promise.reject(new ConnectionClosedError("connection is closed", { cause: this.#closeError }));
    if (this.#pending.size >= this.#pendingMax) {
      return Promise.reject(new DsyncError(ErrorCode.OVERLOADED, `more than ${this.#pendingMax} requests in flight on one connection`));
    }
    const id = this.#allocateId();
    return new Promise((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      this.#pending.set(id, { resolve, reject, deadline, type, timeoutMs });
      if (deadline < this.#timerAt) this.#armTimer(deadline);
      this.framed.send({ type, id, body });
    });
  }

  #armTimer(at: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = at;
    // Unref: the open socket keeps the process alive while a reply is awaited.
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - performance.now())).unref();
  }

  /** Fails the requests past their deadline, and arms the timer for the earliest of the rest. */
  #expire(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [id, p] of this.#pending) {
      if (p.deadline <= now) {
        this.#pending.delete(id);
        p.reject(new TimeoutError(`${opName(p.type)} got no reply within ${p.timeoutMs} ms`));
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Infinity) this.#armTimer(next);
  }

  /** Sends a one-way envelope (id 0). */
  send(type: number, body: unknown): void {
    this.framed.send({ type, id: 0, body });
  }

  close(): void {
    this.framed.close();
    this.#failAll(new ConnectionClosedError("connection closed by this side"));
  }

  #allocateId(): number {
    // Ids wrap within u32 and skip 0 (reserved for one-way messages) and ids still pending.
    do {
      this.#nextId = this.#nextId >= 0xffff_ffff ? 1 : this.#nextId + 1;
    } while (this.#pending.has(this.#nextId));
    return this.#nextId;
  }

  #onMessage(env: Envelope): void {
    if ((env.type === Op.REPLY || env.type === Op.ERROR) && env.id !== 0) {
      const p = this.#pending.get(env.id);
      if (!p) return; // A reply after its timeout: the caller has moved on.
      this.#pending.delete(env.id);
      if (env.type === Op.REPLY) p.resolve(env.body);
      else p.reject(errorFromBody(toErrorBody(env.body)));
      return;
    }
    if (env.type === Op.ERROR) {
      // A connection-level error (PROTOCOL_ERROR, TLS_REQUIRED …): the node closes the connection
      // next, and this is why: pending requests fail with it rather than with "connection closed".
      this.#failAll(errorFromBody(toErrorBody(env.body)));
      return;
    }
    this.#onPush(env);
  }

  #failAll(err: Error): void {
    if (this.#closeError) return;
    this.#closeError = err;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#onClose(err);
  }
}

function toErrorBody(body: unknown): ErrorBody {
  const b = (body ?? {}) as Partial<ErrorBody>;
  return {
    code: typeof b.code === "number" ? b.code : ErrorCode.INTERNAL,
    message: typeof b.message === "string" ? b.message : "error without a message",
    leaderHint: typeof b.leaderHint === "string" ? b.leaderHint : null,
    leaderAddr: typeof b.leaderAddr === "string" ? b.leaderAddr : null,
    ...(typeof b.retryAfterMs === "number" && Number.isFinite(b.retryAfterMs) && { retryAfterMs: Math.max(0, b.retryAfterMs) }),
  };
}
