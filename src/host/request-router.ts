import {
  DsyncError,
  ErrorCode,
  InvalidArgumentError,
  Op,
  isKnownOp,
  opName,
  type Envelope,
} from "../../protocol/index.ts";
import type { FramedSocket } from "../transport/framed-socket.ts";
import type { Logger } from "./logger.ts";
import type { NodeMetrics } from "./metrics.ts";

/** What a handler knows of the connection a request came on. */
export interface RequestContext {
  readonly conn: FramedSocket;
  /** Per-connection state a handler may keep; dropped on close. */
  readonly connState: Map<string, unknown>;
  /** Runs `fn` once when the connection closes (e.g. to unbind a lock session). */
  onClose(fn: () => void): void;
}

/**
 * Handles one request type: returns the REPLY body (or a promise of it), or throws a
 * DsyncError that becomes the ERROR reply. Any other thrown value is reported as INTERNAL.
 */
export type Handler = (body: unknown, ctx: RequestContext) => unknown;

/**
 * Maps request types to handlers and turns every outcome into exactly one reply: a result, a
 * typed error, or INTERNAL for a handler bug (logged, never fatal to the daemon).
 */
export class RequestRouter {
  readonly #handlers = new Map<number, Handler>();
  /** Each operation's latency histogram, resolved once (a labels() lookup hashes on every call). */
  readonly #opHistograms = new Map<number, { observe(seconds: number): void }>();

  constructor(
    readonly metrics: NodeMetrics,
    readonly log: Logger,
  ) {}

  /** Registers the handler of `type`. Invariant: one handler per type. */
  register(type: number, handler: Handler): void {
    if (this.#handlers.has(type)) throw new Error(`a handler for ${opName(type)} is already registered`);
    this.#handlers.set(type, handler);
    this.#opHistograms.set(type, this.metrics.requestSeconds.labels(opName(type).toLowerCase()));
  }

  /**
   * Dispatches `env` and sends its one reply on `ctx.conn`, then calls `onDone` (once, also on
   * failure) with the error it was answered with, or null. Never throws.
   */
  dispatch(env: Envelope, ctx: RequestContext, onDone: (error: DsyncError | null) => void = () => {}): void {
    const handler = this.#handlers.get(env.type);
    if (!handler) {
      const why = isKnownOp(env.type) ? `${opName(env.type)} is not a request this port accepts` : `unknown message type ${env.type}`;
      onDone(this.#fail(env, ctx, new DsyncError(ErrorCode.UNKNOWN_TYPE, why)));
      return;
    }
    const started = process.hrtime.bigint();
    const done = (error: DsyncError | null): void => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.#opHistograms.get(env.type)!.observe(seconds);
      onDone(error);
    };
    let result: unknown;
    try {
      result = handler(env.body, ctx);
    } catch (err) {
      done(this.#fail(env, ctx, err));
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (body) => done(this.#reply(env, ctx, body)),
        (err: unknown) => done(this.#fail(env, ctx, err)),
      );
    } else {
      done(this.#reply(env, ctx, result));
    }
  }

  #reply(env: Envelope, ctx: RequestContext, body: unknown): DsyncError | null {
    if (env.id === 0) return null; // One-way message: the sender wants no reply.
    try {
      ctx.conn.send({ type: Op.REPLY, id: env.id, body: body ?? null });
      return null;
    } catch (err) {
      return this.#fail(env, ctx, err);
    }
  }

  #fail(env: Envelope, ctx: RequestContext, err: unknown): DsyncError {
    const typed =
      err instanceof DsyncError
        ? err
        : err instanceof RangeError && /frame body/.test(err.message)
          ? new InvalidArgumentError(`the reply to ${opName(env.type)} would exceed the maximum frame size`)
          : new DsyncError(ErrorCode.INTERNAL, `internal error while handling ${opName(env.type)}`, { cause: err });
    if (typed.code === ErrorCode.INTERNAL) this.log.error({ err, op: opName(env.type), remote: ctx.conn.remote }, "handler failed");
    this.metrics.errors.labels(typed.codeName).inc();
    ctx.conn.sendError(env.id, typed);
    return typed;
  }
}
