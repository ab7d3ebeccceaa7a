import { EventEmitter } from "node:events";
import {
  DsyncError,
  MovedError,
  hadNoEffect,
  outcomeError,
  Op,
  type DeliveredMessage,
  type Envelope,
  type QueueAckReply,
  type QueueConfig,
  type QueueConfigureReply,
  type QueueConsumeReply,
  type QueueDlqListReply,
  type QueueDlqRedriveReply,
  type QueueEnqueueReply,
  type QueueListReply,
  type QueueNackReply,
  type QueuePurgeReply,
  type QueueStatsReply,
  type QueueSubscribeReply,
} from "../../protocol/index.ts";

export type {
  AckOutcome,
  DeadMessage,
  DeliveredMessage,
  QueueAckReply,
  QueueConfig,
  QueueListReply,
  QueueNackReply,
  QueueStats,
  QueueStatsReply,
} from "../../protocol/index.ts";
import type { CallOptions, DsyncClient } from "./client.ts";

/** MOVED redirects one request follows (a map changing under a rebalance may take a second). */
const MOVED_HOPS_MAX = 3;

/** Options of one message of {@link QueueClient.enqueue}. */
export interface EnqueueOptions {
  /** Deliver no earlier than this many ms from now. */
  readonly delayMs?: number;
  /**
   * Within the queue's dedup window (default 5 min) a second enqueue with this id is not added
   * again: it returns the first one's id. It also makes the call safe to resend after a lost
   * connection, so give one to every message that must not be lost or doubled.
   */
  readonly dedupId?: string;
}

/** Options of {@link QueueClient.consume} (a pull). */
export interface ConsumeOptions {
  /** Messages to take at most (1..1000), default 1. */
  readonly max?: number;
  /** How long they stay invisible to other consumers; default: the queue's (30 s). */
  readonly visibilityMs?: number;
  /** Wait up to this long for a message when none is visible (long poll), default 0. */
  readonly waitMs?: number;
  /**
   * Keep the messages in flight when this connection closes (only their visibility timeout
   * brings them back), e.g. to ack them from another process. Default false: a closed
   * connection's messages are redelivered at once.
   */
  readonly detached?: boolean;
}

/** Settings of one queue; only the fields given change. */
export interface QueueSettings {
  readonly maxDeliveries?: number;
  readonly visibilityMs?: number;
  /** Retry delay `min(capMs, baseMs * factor^(n-1))`, shortened by up to `jitter` (0..1). */
  readonly backoff?: { readonly baseMs?: number; readonly factor?: number; readonly capMs?: number; readonly jitter?: number };
  /** The dead-letter queue's name (default `<queue>.dlq`). */
  readonly dlq?: string;
  /** How long a dedupId is remembered; 0 turns dedup off. */
  readonly dedupWindowMs?: number;
}


/** Options of {@link QueueClient.subscribe} (pushed deliveries). */
export interface SubscribeOptions {
  /** Deliveries in hand (not yet acked or nacked) at most: the credit window. Default 16. */
  readonly prefetch?: number;
  readonly visibilityMs?: number;
}

/** What a subscription's handler returning or throwing does: ack, or nack with the queue's backoff. */
export type MessageHandler = (m: DeliveredMessage) => Promise<void> | void;

/** Events of a subscription. */
export interface SubscriptionEvents {
  /** A handler threw (the message was nacked) or an ack/nack/resubscribe failed. */
  error: [err: Error, m?: DeliveredMessage];
}

/**
 * The durable queue service: at-least-once delivery, FIFO first deliveries per queue, visibility
 * timeouts, ack / nack, retries with exponential backoff, dead letters. Any node serves any queue.
 */
export class QueueClient {
  /** Queue → client address of its partition's leader, as the nodes last said. */
  readonly #routes = new Map<string, string>();
  readonly #routeToLeader: boolean;

  /**
   * @param opts.routeToLeader send each queue's requests straight to its partition's leader
   * (learnt from replies) instead of through the node `client` is connected to, which would
   * forward them: one hop less per request. Default true.
   */
  constructor(
    readonly client: DsyncClient,
    opts: { routeToLeader?: boolean } = {},
  ) {
    this.#routeToLeader = opts.routeToLeader ?? true;
  }

  /** Whether requests (and subscriptions) go to the queue's partition leader. */
  get routeToLeader(): boolean {
    return this.#routeToLeader;
  }

  /** The connection requests for `queue` go to. */
  clientFor(queue: string): DsyncClient {
    const addr = this.#routes.get(queue);
    return addr === undefined ? this.client : this.client.sibling(addr);
  }

  /**
   * Calls through the queue's route, learning the leader from the reply. A routed call that
   * cannot reach its node forgets the route; an idempotent one is then tried through `client`.
   */
  async #call(queue: string, op: number, body: object, opts: CallOptions = {}): Promise<unknown> {
    let unknown: DsyncError | null = null;
    for (let hop = 0; ; hop++) {
      const routed = this.#routes.has(queue);
      try {
        const reply = await this.clientFor(queue).call(op, body, opts);
        this.#learn(queue, reply);
        return reply;
      } catch (caught) {
        const raw = caught as Error;
        // An earlier hop of unknown outcome stays the outcome unless one succeeds (see outcomeError).
        const err = outcomeError(unknown, raw);
        if (unknown === null && raw instanceof DsyncError && !hadNoEffect(raw.code)) unknown = raw;
        // The node holds no replica of the queue's partition: go where it says (MOVED had no effect).
        if (raw instanceof MovedError && raw.leaderAddr !== null && hop < MOVED_HOPS_MAX) {
          this.#route(queue, raw.leaderAddr);
          // The route's connection may have fallen back to another node while that one was down.
          this.client.sibling(raw.leaderAddr).moveTo(raw.leaderAddr);
          continue;
        }
        // A routed node that cannot serve: forget the route; an idempotent call goes round again
        // through `client` (which may answer MOVED to a node that holds the partition).
        if (!routed || !(raw instanceof DsyncError) || !raw.retryable) throw err;
        this.#routes.delete(queue);
        if (!opts.idempotent || hop >= MOVED_HOPS_MAX) throw err;
      }
    }
  }

  /** Remembers `addr` as where `queue`'s requests go (also after a MOVED, whatever `routeToLeader` says). */
  #route(queue: string, addr: string): void {
    // Bounded: a process touching millions of queue names must not grow this without limit.
    if (this.#routes.size >= 10_000) this.#routes.clear();
    this.#routes.set(queue, addr);
  }

  #learn(queue: string, reply: unknown): void {
    if (!this.#routeToLeader) return;
    const addr = (reply as { leaderAddr?: unknown } | null)?.leaderAddr;
    if (typeof addr !== "string" || this.#routes.get(queue) === addr) return;
    this.#route(queue, addr);
  }

  /** Learns where `queue` is led (a stale, local read on any node). */
  async locate(queue: string): Promise<void> {
    if (!this.#routeToLeader || this.#routes.has(queue)) return;
    this.#learn(queue, await this.#call(queue, Op.QUEUE_STATS, { queue, stale: true }, { idempotent: true }).catch(() => null));
  }

  /** Enqueues one message; resolves once it is committed (durable on a majority). */
  async enqueue(queue: string, payload: Uint8Array | string, opts: EnqueueOptions = {}): Promise<{ id: number; duplicate: boolean }> {
    const r = await this.enqueueBatch(queue, [{ payload, ...opts }]);
    return { id: r.ids[0]!, duplicate: r.duplicates[0]! };
  }

  /** Enqueues messages in one command: all of them or none. */
  async enqueueBatch(queue: string, messages: readonly ({ payload: Uint8Array | string } & EnqueueOptions)[]): Promise<QueueEnqueueReply> {
    const body = { queue, messages: messages.map((m) => ({ payload: typeof m.payload === "string" ? new TextEncoder().encode(m.payload) : m.payload, delayMs: m.delayMs, dedupId: m.dedupId })) };
    const idempotent = messages.length > 0 && messages.every((m) => m.dedupId !== undefined);
    return (await this.#call(queue, Op.QUEUE_ENQUEUE, body, { idempotent })) as QueueEnqueueReply;
  }

  /** Takes up to `max` messages, waiting up to `waitMs` for the first. */
  async consume(queue: string, opts: ConsumeOptions = {}): Promise<DeliveredMessage[]> {
    const waitMs = opts.waitMs ?? 0;
    const r = (await this.#call(queue, Op.QUEUE_CONSUME, { queue, max: opts.max, visibilityMs: opts.visibilityMs, waitMs, detached: opts.detached === true }, { timeoutMs: waitMs + 5000 })) as QueueConsumeReply;
    return r.messages;
  }

  /** Acks deliveries by receipt. A receipt whose delivery already ended gets `ok: false`. */
  async ack(queue: string, receipts: readonly string[]): Promise<QueueAckReply> {
    return (await this.#call(queue, Op.QUEUE_ACK, { queue, receipts }, { idempotent: true })) as QueueAckReply;
  }

  /** Gives a delivery back: visible again after `delayMs`, or after the queue's backoff. */
  async nack(queue: string, receipt: string, opts: { delayMs?: number } = {}): Promise<QueueNackReply> {
    return (await this.#call(queue, Op.QUEUE_NACK, { queue, receipt, delayMs: opts.delayMs })) as QueueNackReply;
  }

  async configure(queue: string, settings: QueueSettings): Promise<QueueConfig> {
    const r = (await this.#call(queue, Op.QUEUE_CONFIGURE, { queue, ...settings }, { idempotent: true })) as QueueConfigureReply;
    return r.config;
  }

  async stats(queue: string): Promise<QueueStatsReply> {
    return (await this.#call(queue, Op.QUEUE_STATS, { queue }, { idempotent: true })) as QueueStatsReply;
  }

  /** Every partition with its leader and queues. */
  async list(): Promise<QueueListReply> {
    return (await this.client.call(Op.QUEUE_LIST, {}, { idempotent: true })) as QueueListReply;
  }

  /** The oldest dead-lettered messages of `queue`, with the reason and every delivery. */
  async dlqList(queue: string, opts: { max?: number } = {}): Promise<QueueDlqListReply> {
    return (await this.#call(queue, Op.QUEUE_DLQ_LIST, { queue, max: opts.max }, { idempotent: true })) as QueueDlqListReply;
  }

  /** Moves dead-lettered messages of `queue` back to it, oldest first, as new deliveries. */
  async dlqRedrive(queue: string, opts: { max?: number } = {}): Promise<QueueDlqRedriveReply> {
    return (await this.#call(queue, Op.QUEUE_DLQ_REDRIVE, { queue, max: opts.max })) as QueueDlqRedriveReply;
  }

  /** Drops the waiting messages of `queue` (in-flight ones stay ackable), or with `dlq` its dead letters. */
  async purge(queue: string, opts: { dlq?: boolean } = {}): Promise<QueuePurgeReply> {
    return (await this.#call(queue, Op.QUEUE_PURGE, { queue, dlq: opts.dlq === true })) as QueuePurgeReply;
  }

  /**
   * Push deliveries: the node sends messages as they arrive, never more than `prefetch` unsettled.
   * `handler` resolving acks the message; throwing nacks it (retried with the queue's backoff).
   */
  async subscribe(queue: string, opts: SubscribeOptions, handler: MessageHandler): Promise<Subscription> {
    await this.locate(queue);
    const sub = new Subscription(this, this.clientFor(queue), queue, opts, handler);
    await sub.start();
    return sub;
  }
}

/** A push subscription; resubscribes by itself after a reconnect. */
export class Subscription extends EventEmitter<SubscriptionEvents> {
  #id: number | null = null;
  #closed = false;
  #inHand = 0;
  #acks: string[] = [];
  #ackScheduled = false;
  #idle: (() => void)[] = [];
  readonly #onPush = (env: Envelope): void => this.#deliver(env);
  readonly #onDisconnect = (): void => void this.#resubscribe();
  #resubscribing = false;
  /** A subscribe (with its moves) is under way: it ends subscribed at the leader it learns. */
  #subscribing = false;

  #client: DsyncClient;

  constructor(
    readonly queues: QueueClient,
    /** The connection deliveries arrive on (the partition leader's, when known). */
    client: DsyncClient,
    readonly queue: string,
    readonly opts: SubscribeOptions,
    readonly handler: MessageHandler,
  ) {
    super();
    this.#client = client;
  }

  /** The connection deliveries arrive on; it changes when the queue's partition moves. */
  get client(): DsyncClient {
    return this.#client;
  }

  /** Messages handed to the handler and not yet settled. */
  get inHand(): number {
    return this.#inHand;
  }

  async start(): Promise<void> {
    this.#attach();
    try {
      await this.#subscribe();
    } catch (err) {
      this.#closed = true;
      this.#detach();
      throw err;
    }
  }

  #attach(): void {
    // Many subscriptions may share one connection; each adds two listeners.
    if (this.#client.getMaxListeners() !== 0) this.#client.setMaxListeners(this.#client.getMaxListeners() + 2);
    this.#client.on("push", this.#onPush);
    this.#client.on("disconnect", this.#onDisconnect);
  }

  #detach(): void {
    this.#client.off("disconnect", this.#onDisconnect);
    this.#client.off("push", this.#onPush);
    if (this.#client.getMaxListeners() > 2) this.#client.setMaxListeners(this.#client.getMaxListeners() - 2);
  }

  /** Stops deliveries, lets running handlers finish and sends their acks. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const id = this.#id;
    if (id !== null) await this.#client.call(Op.QUEUE_UNSUBSCRIBE, { subscriptionId: id }, { idempotent: true }).catch(() => {});
    if (this.#inHand > 0) await new Promise<void>((r) => this.#idle.push(r));
    await this.#flushAcks();
    this.#detach();
  }

  async #subscribe(): Promise<void> {
    this.#subscribing = true;
    try {
      await this.#subscribeMoving();
    } finally {
      this.#subscribing = false;
    }
  }

  async #subscribeMoving(): Promise<void> {
    for (let hop = 0; ; hop++) {
      let r: QueueSubscribeReply;
      try {
        r = (await this.#client.call(Op.QUEUE_SUBSCRIBE, { queue: this.queue, prefetch: this.opts.prefetch, visibilityMs: this.opts.visibilityMs }, { idempotent: true })) as QueueSubscribeReply;
      } catch (err) {
        if (!(err instanceof MovedError) || err.leaderAddr === null || hop >= MOVED_HOPS_MAX) throw err;
        // Deliveries come from a node holding the partition: move this subscription's connection there.
        this.#move(err.leaderAddr);
        continue;
      }
      this.#id = r.subscriptionId;
      const leaderAddr = r.leaderAddr ?? null;
      if (!this.queues.routeToLeader || leaderAddr === null || leaderAddr === this.#client.connectedTo || hop >= MOVED_HOPS_MAX) return;
      // Subscribed on a node that does not lead the partition (say, after a failover): the leader
      // serves deliveries without a forwarding hop. Deliveries that came first are handled as usual
      // (the node sends them before its unsubscribe reply).
      try {
        await this.#client.call(Op.QUEUE_UNSUBSCRIBE, { subscriptionId: r.subscriptionId }, { idempotent: true });
      } catch {
        return; // still subscribed here, which works (a hop more); a dropped connection resubscribes
      }
      this.#move(leaderAddr);
    }
  }

  /** Moves this subscription's connection to the node at `addr`. */
  #move(addr: string): void {
    this.#detach();
    this.#client = this.queues.client.sibling(addr);
    this.#client.moveTo(addr);
    this.#attach();
  }

  /**
   * The connection dropped: the node released this subscription's unacked messages, and nothing
   * else may be calling on this client to make it reconnect, so subscribe again (which
   * reconnects), retrying until it works or the subscription is closed.
   */
  async #resubscribe(): Promise<void> {
    if (this.#resubscribing) return;
    this.#resubscribing = true;
    this.#id = null;
    try {
      while (!this.#closed) {
        try {
          await this.#subscribe();
          return;
        } catch (err) {
          if (this.listenerCount("error") > 0) this.emit("error", err as Error);
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    } finally {
      this.#resubscribing = false;
    }
  }

  #deliver(env: Envelope): void {
    if (env.type === Op.QUEUE_SUBSCRIPTION_ENDED) {
      // The partition or its leadership moved off that node: subscribe again, at the leader it
      // names when there is one (otherwise a redirect leads to a node holding the partition).
      // A subscribe under way moves on by itself; starting another would leave one orphaned.
      const ended = env.body as { subscriptionId?: unknown; leaderAddr?: unknown } | null;
      if (ended?.subscriptionId !== this.#id || this.#closed || this.#subscribing) return;
      if (this.queues.routeToLeader && typeof ended.leaderAddr === "string" && ended.leaderAddr !== this.#client.connectedTo) this.#move(ended.leaderAddr);
      void this.#resubscribe();
      return;
    }
    if (env.type !== Op.QUEUE_DELIVERY || this.#id === null) return;
    const body = env.body as { subscriptionId: number; messages: DeliveredMessage[] };
    if (body.subscriptionId !== this.#id) return;
    for (const m of body.messages) void this.#handle(m);
  }

  async #handle(m: DeliveredMessage): Promise<void> {
    this.#inHand++;
    try {
      await this.handler(m);
      this.#acks.push(m.receipt);
      this.#scheduleAcks();
    } catch (err) {
      if (this.listenerCount("error") > 0) this.emit("error", err as Error, m);
      await this.#client.call(Op.QUEUE_NACK, { queue: this.queue, receipt: m.receipt }).catch(() => {});
    } finally {
      this.#inHand--;
      if (this.#inHand === 0) for (const r of this.#idle.splice(0)) r();
    }
  }

  /** One ACK request per event-loop turn, however many handlers finished in it. */
  #scheduleAcks(): void {
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    setImmediate(() => {
      this.#ackScheduled = false;
      void this.#flushAcks();
    });
  }

  async #flushAcks(): Promise<void> {
    if (this.#acks.length === 0) return;
    const receipts = this.#acks;
    this.#acks = [];
    try {
      // Through the subscription's own node, which counts its credit: acks sent elsewhere (say,
      // to a partition leader that moved) would settle the messages but never return the credit.
      // `linger`: nothing waits on this reply, so the node may hold the ack a moment to share a
      // log entry with the partition's next write.
      await this.#client.call(Op.QUEUE_ACK, { queue: this.queue, receipts, linger: true }, { idempotent: true });
    } catch (err) {
      // The messages come back after their visibility timeout: at-least-once, never lost.
      if (this.listenerCount("error") > 0) this.emit("error", err as Error);
    }
  }
}
