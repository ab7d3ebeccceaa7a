import { everyOnGrid } from "../../host/grid.ts";
import { randomBytes } from "node:crypto";
import {
  DsyncError,
  ErrorCode,
  InvalidArgumentError,
  NotLeaderError,
  Op,
  errorForCode,
  UnavailableError,
  asFields,
  bool,
  int,
  str,
  type Fields,
} from "../../../protocol/index.ts";
import type { DeliveredMessage, QueueEvent, QueueResult, UnstampedQueueCommand } from "./machine/index.ts";
import { BATCH_MAX } from "./machine/queue-machine.ts";
import { ACK_BATCH_MAX, CONSUME_MAX, DURATION_MS_MAX, NAME_BYTES_MAX } from "./machine/validate.ts";
import type { FramedSocket } from "../../transport/framed-socket.ts";
import { ExpiryLoop } from "../../host/expiry-loop.ts";
import type { Logger } from "../../host/logger.ts";
import type { Proposer } from "../../host/proposer.ts";
import { QueueMetrics } from "./metrics.ts";
import type { Partition, QueuePartitions } from "./partitions.ts";
import type { SpaceWatch } from "./space-watch.ts";
import type { NodeMetrics } from "../../host/metrics.ts";
import type { RequestContext } from "../../host/request-router.ts";
import type { Handlers, Service } from "../../host/service.ts";
import type {
  LeaderHint,
  QueueAckReply,
  QueueConfigureReply,
  QueueConsumeReply,
  QueueDlqListReply,
  QueueDlqRedriveReply,
  QueueEnqueueReply,
  QueueListReply,
  QueueNackReply,
  QueuePartitionView,
  QueuePurgeReply,
  QueueStatsReply,
  QueueSubscribeReply,
  QueueUnsubscribeReply,
} from "../../../protocol/queue-messages.ts";

/** How long a write keeps retrying, inside the node, while a partition elects a new leader. */
const FAILOVER_RETRY_MS = 4000;
/** Longest long-poll a consume may ask for. */
const WAIT_MS_MAX = 60_000;
/** Longest visibility one consume or subscription may ask for (a queue's own setting may be longer). */
const DELIVERY_VISIBILITY_MS_MAX = 12 * 3600_000;
/** A receipt is `<id>:<delivery seq>` in decimal: far below this. */
const RECEIPT_BYTES_MAX = 64;
/** Bytes of payload one batch entry carries at most before another entry starts. */
const BATCH_BYTES_MAX = 1024 * 1024;
/** A subscription with credit and nothing delivered looks again this often (missed wake-ups, failover). */
const PUMP_SAFETY_MS = 500;
/** How long a QUEUE_LIST waits for another node's partitions. */
const LIST_PEER_TIMEOUT_MS = 5000;

type Ok<K extends string> = Extract<QueueResult, { ok: true; kind: K }>;

interface Waiter {
  resolve(r: QueueResult): void;
  reject(e: Error): void;
}

/**
 * One turn's commands for a partition. Consumes go after every other command of the turn, so
 * they see all the turn's enqueues (and acks) in the same entry: commands of one turn are
 * concurrent, so any order among them is one the clients could have seen.
 */
interface PendingBatch {
  readonly cmds: UnstampedQueueCommand[];
  readonly waiters: Waiter[];
  readonly consumes: UnstampedQueueCommand[];
  readonly consumeWaiters: Waiter[];
  bytes: number;
  /** Whether every command so far is a lingering ack (see QueueService's ackLingerMs). */
  lingering: boolean;
  /** While the batch lingers: the timer that proposes it anyway. */
  timer: NodeJS.Timeout | null;
}

/** A connection as a consumer: its id in the machines and the partitions it took messages from. */
interface Consumer {
  readonly id: string;
  readonly partitions: Set<Partition>;
  readonly subscriptions: Set<Subscription>;
}

interface Subscription {
  readonly id: number;
  readonly conn: FramedSocket;
  readonly consumer: Consumer;
  readonly queue: string;
  readonly part: Partition;
  readonly prefetch: number;
  readonly visibilityMs: number | null;
  /** Receipts delivered and not yet acked or nacked, with when their visibility ends (local clock). */
  readonly outstanding: Map<string, number>;
  busy: boolean;
  /** Ending: no new consume starts; it closes once the one in flight has been delivered. */
  ending: boolean;
  /** Called when the pump goes idle (an ending subscription waits for it). */
  readonly onIdle: (() => void)[];
  closed: boolean;
}

/** Why a node ended a subscription (QUEUE_SUBSCRIPTION_ENDED): the partition or its leadership moved. */
type EndReason = "moved" | "leader-moved";

/**
 * The queue service's node side. Requests name a queue; the queue's partition (a Raft group)
 * takes the command, proposed here when this node leads the partition or forwarded to its leader.
 * Commands arriving in one event-loop turn for one partition share one log entry (a batch), so
 * many producers and consumers share one append and one fsync.
 *
 * Long-poll consumes and push subscriptions wait on this node's replica: every entry that makes
 * messages visible raises a `visible` event on every replica, which wakes the waiters here.
 */
export class QueueService implements Service {
  readonly name = "queues";
  readonly #batches = new Map<number, PendingBatch>();
  readonly #consumers = new WeakMap<FramedSocket, Consumer>();
  readonly #subs = new Map<number, Subscription>();
  readonly #subsByQueue = new Map<string, Set<Subscription>>();
  readonly #receiptSub = new Map<string, Subscription>();
  /** Long polls waiting per queue, in arrival order: how to wake each, and how many it takes. */
  readonly #waiters = new Map<string, Map<() => void, number>>();
  /** Per queue, a counter bumped on each visible event: a consume that found nothing compares it. */
  readonly #gen = new Map<string, number>();
  readonly #expiry = new Map<number, ExpiryLoop>();
  readonly #metrics: QueueMetrics;
  readonly #bootId = randomBytes(4).toString("hex");
  #connSeq = 0;
  #subSeq = 0;
  #stopSafety: (() => void) | null = null;

  constructor(
    readonly partitions: QueuePartitions,
    readonly proposer: Proposer,
    readonly nodeId: string,
    metrics: NodeMetrics,
    readonly log: Logger,
    /** The client address of a node, so replies can tell clients where a partition is led. */
    readonly leaderAddrOf: (nodeId: string | null) => string | null = () => null,
    /** The space quota: enqueues are refused while any node is over its budget. */
    readonly space: SpaceWatch | null = null,
    /**
     * How long a batch of only lingering acks (QUEUE_ACK with `linger`: a subscription's, which no
     * caller waits on) waits for another write to its partition before it is proposed alone. At
     * C=1 a consumer's ack comes just before the producer's next enqueue: sharing its entry saves
     * a commit per message (an ack proposed alone holds the next enqueue behind its fsync).
     */
    readonly ackLingerMs = 0,
  ) {
    this.#metrics = new QueueMetrics(metrics.registry);
  }

  /** A machine event from partition `partition` of this node's replica. */
  onEvent(partition: number, e: QueueEvent): void {
    this.#gen.set(e.queue, (this.#gen.get(e.queue) ?? 0) + 1);
    const part = this.partitions.get(partition);
    const waiting = part?.machine.depth(e.queue) ?? Infinity;
    this.#wakeLongPolls(e.queue, waiting);
    if (part) this.#pumpSubs(part, e.queue, waiting, false);
  }

  start(): void {
    this.partitions.startBalancer();
    this.space?.start();
    this.#stopSafety = everyOnGrid(PUMP_SAFETY_MS, () => {
      for (const s of this.#subs.values()) void this.#pump(s);
    });
  }

  /** A replica opened here: starts its leader-side expiry (a no-op while this node follows). */
  onPartitionOpen(part: Partition): void {
    const loop = new ExpiryLoop({
      isLeader: () => part.group.isLeader,
      nextDeadline: () => part.machine.nextDeadline(),
      expire: () => this.proposer.proposeStamped(part.group.group, { op: "expire" }),
      log: this.log,
      what: `queue partition ${part.partition}`,
    });
    loop.start();
    this.#expiry.set(part.partition, loop);
  }

  /**
   * A replica moved off this node: its expiry stops, and its subscriptions here end with a
   * QUEUE_SUBSCRIPTION_ENDED push, so their clients subscribe again where the partition now is.
   */
  onPartitionClose(part: Partition): void {
    this.#expiry.get(part.partition)?.stop();
    this.#expiry.delete(part.partition);
    for (const s of [...this.#subs.values()]) if (s.part === part) void this.#endSub(s, "moved");
  }

  /**
   * Subscriptions follow their partition's leader: once another node is known to lead it, those
   * held here end with a leader-moved push naming it. Deliveries from here would cost a forwarding
   * hop per consume, and a consume could never share the log entry of the enqueue that fills it.
   */
  onRoleChange(group: number, leader: boolean): void {
    if (leader) return;
    const part = this.partitions.all().find((p) => p.group.group === group);
    const now = part?.group.leader ?? null;
    if (part === undefined || now === null || now === this.nodeId) return;
    for (const s of [...this.#subs.values()]) if (s.part === part) void this.#endSub(s, "leader-moved");
  }

  stop(): void {
    this.partitions.stop();
    this.space?.stop();
    for (const l of this.#expiry.values()) l.stop();
    this.#stopSafety?.();
  }

  refreshGauges(): void {
    this.#metrics.refresh(this.partitions.all());
    this.space?.refreshGauges();
  }

  register({ client: router, peer }: Handlers): void {
    router.register(Op.QUEUE_ENQUEUE, async (body): Promise<QueueEnqueueReply> => {
      const f = asFields(body, "QUEUE_ENQUEUE");
      const queue = queueName(f, "QUEUE_ENQUEUE");
      if (!Array.isArray(f.messages) || f.messages.length === 0) throw new InvalidArgumentError('QUEUE_ENQUEUE: field "messages" must be a non-empty array of {payload, delayMs?, dedupId?}');
      const messages = f.messages.map((m, i) => enqueueMessage(m, i));
      const part = this.partitions.partitionFor(queue);
      this.space?.checkWrite("QUEUE_ENQUEUE");
      const pending = this.#submit(part, { op: "enqueue", queue, messages });
      const now = messages.filter((m) => !m.delayMs).length;
      if (now > 0) this.#joinEnqueue(part, queue, now);
      const r = ok(await pending, "enqueued");
      this.#metrics.enqueued(queue, r.ids.length - r.duplicates.filter(Boolean).length);
      return { queue, partition: part.partition, ids: r.ids, duplicates: r.duplicates, ...this.#leaderHint(part) };
    });
    router.register(Op.QUEUE_CONSUME, async (body, ctx): Promise<QueueConsumeReply> => {
      const f = asFields(body, "QUEUE_CONSUME");
      const queue = queueName(f, "QUEUE_CONSUME");
      const max = int(f, "max", "QUEUE_CONSUME", { optional: true, min: 1, max: CONSUME_MAX }) ?? 1;
      const visibilityMs = int(f, "visibilityMs", "QUEUE_CONSUME", { optional: true, min: 1, max: DELIVERY_VISIBILITY_MS_MAX }) ?? null;
      const waitMs = int(f, "waitMs", "QUEUE_CONSUME", { optional: true, min: 0, max: WAIT_MS_MAX }) ?? 0;
      const part = this.partitions.partitionFor(queue);
      // Detached deliveries outlive the connection (a CLI consume acked by a later command): only
      // their visibility timeout brings them back.
      const consumerId = bool(f, "detached", "QUEUE_CONSUME") ? `${this.nodeId}/${this.#bootId}/detached` : this.#consumer(ctx, part).id;
      const deadline = Date.now() + waitMs;
      for (;;) {
        const gen = this.#gen.get(queue) ?? 0;
        const r = ok(await this.#submit(part, { op: "consume", queue, consumerId, max, visibilityMs }), "messages");
        const left = deadline - Date.now();
        if (r.messages.length > 0 || left <= 0 || ctx.conn.isClosed) {
          this.#metrics.delivered(queue, r.messages);
          return { queue, messages: r.messages, ...this.#leaderHint(part) };
        }
        if ((this.#gen.get(queue) ?? 0) === gen) await this.#waitVisible(queue, left, max);
        // The client left while this waited: taking messages now would hold them for nobody.
        if (ctx.conn.isClosed) return { queue, messages: [], ...this.#leaderHint(part) };
      }
    });
    router.register(Op.QUEUE_ACK, async (body): Promise<QueueAckReply> => {
      const f = asFields(body, "QUEUE_ACK");
      const queue = queueName(f, "QUEUE_ACK");
      const receipts = receiptList(f.receipts);
      const linger = bool(f, "linger", "QUEUE_ACK");
      const part = this.partitions.partitionFor(queue);
      const pending = this.#submit(part, { op: "ack", queue, receipts }, linger);
      // Credit comes back as the ack arrives (as in AMQP): the subscription's next consume then
      // rides in the same log entry as this ack instead of waiting for it to commit.
      this.#settled(receipts);
      const r = ok(await pending, "acked");
      return { queue, acked: r.acked, outcomes: r.outcomes, ...this.#leaderHint(part) };
    });
    router.register(Op.QUEUE_NACK, async (body): Promise<QueueNackReply> => {
      const f = asFields(body, "QUEUE_NACK");
      const queue = queueName(f, "QUEUE_NACK");
      const receipt = str(f, "receipt", "QUEUE_NACK", { maxBytes: RECEIPT_BYTES_MAX });
      const delayMs = int(f, "delayMs", "QUEUE_NACK", { optional: true, min: 0, max: DURATION_MS_MAX }) ?? null;
      const pending = this.#submit(this.partitions.partitionFor(queue), { op: "nack", queue, receipt, delayMs });
      this.#settled([receipt]);
      const r = await pending;
      const n = ok(r, "nacked");
      return { queue, id: n.id, visibleAt: n.visibleAt, deadLettered: n.deadLettered };
    });
    router.register(Op.QUEUE_SUBSCRIBE, (body, ctx): QueueSubscribeReply => {
      const f = asFields(body, "QUEUE_SUBSCRIBE");
      const queue = queueName(f, "QUEUE_SUBSCRIBE");
      const prefetch = int(f, "prefetch", "QUEUE_SUBSCRIBE", { optional: true, min: 1, max: CONSUME_MAX }) ?? 16;
      const visibilityMs = int(f, "visibilityMs", "QUEUE_SUBSCRIBE", { optional: true, min: 1, max: DELIVERY_VISIBILITY_MS_MAX }) ?? null;
      const part = this.partitions.partitionFor(queue);
      const consumer = this.#consumer(ctx, part);
      const sub: Subscription = { id: ++this.#subSeq, conn: ctx.conn, consumer, queue, part, prefetch, visibilityMs, outstanding: new Map(), busy: false, ending: false, onIdle: [], closed: false };
      this.#subs.set(sub.id, sub);
      consumer.subscriptions.add(sub);
      let set = this.#subsByQueue.get(queue);
      if (!set) this.#subsByQueue.set(queue, (set = new Set()));
      set.add(sub);
      // The reply goes out first; deliveries follow on the next turn.
      setImmediate(() => void this.#pump(sub));
      return { subscriptionId: sub.id, queue, prefetch, partition: part.partition, ...this.#leaderHint(part) };
    });
    router.register(Op.QUEUE_UNSUBSCRIBE, async (body): Promise<QueueUnsubscribeReply> => {
      const f = asFields(body, "QUEUE_UNSUBSCRIBE");
      const id = int(f, "subscriptionId", "QUEUE_UNSUBSCRIBE", { min: 1 });
      const sub = this.#subs.get(id);
      // Messages of a consume in flight reach the client before this reply, not after it.
      if (sub) await this.#endSub(sub, null);
      return { subscriptionId: id, closed: sub !== undefined };
    });
    router.register(Op.QUEUE_STATS, async (body): Promise<QueueStatsReply> => {
      const f = asFields(body, "QUEUE_STATS");
      const queue = queueName(f, "QUEUE_STATS");
      const part = this.partitions.partitionFor(queue);
      if (!bool(f, "stale", "QUEUE_STATS")) await this.proposer.readBarrier(part.group.group);
      const config = part.machine.config(queue);
      const dlq = part.machine.dlqOf(queue);
      return { queue, partition: part.partition, ...this.#leaderHint(part), stats: part.machine.stats(queue), dlq, dlqDepth: part.machine.peekDlq(dlq, CONSUME_MAX).length, config };
    });
    router.register(Op.QUEUE_CONFIGURE, async (body): Promise<QueueConfigureReply> => {
      const f = asFields(body, "QUEUE_CONFIGURE");
      const queue = queueName(f, "QUEUE_CONFIGURE");
      const pick = (k: string): unknown => (f[k] === undefined ? null : f[k]);
      const cmd = { op: "configure", queue, maxDeliveries: pick("maxDeliveries"), visibilityMs: pick("visibilityMs"), backoff: pick("backoff"), dlq: pick("dlq"), dedupWindowMs: pick("dedupWindowMs") } as UnstampedQueueCommand;
      const r = ok(await this.#submit(this.partitions.partitionFor(queue), cmd), "configured");
      return { queue, config: r.config };
    });
    router.register(Op.QUEUE_DLQ_LIST, async (body): Promise<QueueDlqListReply> => {
      const f = asFields(body, "QUEUE_DLQ_LIST");
      const queue = queueName(f, "QUEUE_DLQ_LIST");
      const max = int(f, "max", "QUEUE_DLQ_LIST", { optional: true, min: 1, max: CONSUME_MAX }) ?? 100;
      const part = this.partitions.partitionFor(queue);
      if (!bool(f, "stale", "QUEUE_DLQ_LIST")) await this.proposer.readBarrier(part.group.group);
      const dlq = part.machine.dlqOf(queue);
      return { queue, dlq, messages: part.machine.peekDlq(dlq, max) };
    });
    router.register(Op.QUEUE_DLQ_REDRIVE, async (body): Promise<QueueDlqRedriveReply> => {
      const f = asFields(body, "QUEUE_DLQ_REDRIVE");
      const queue = queueName(f, "QUEUE_DLQ_REDRIVE");
      const max = int(f, "max", "QUEUE_DLQ_REDRIVE", { optional: true, min: 1, max: 10_000 }) ?? 1000;
      const part = this.partitions.partitionFor(queue);
      const dlq = part.machine.dlqOf(queue);
      const r = ok(await this.#submit(part, { op: "dlq.redrive", queue: dlq, max }), "redriven");
      return { queue, dlq, ids: r.ids };
    });
    router.register(Op.QUEUE_PURGE, async (body): Promise<QueuePurgeReply> => {
      const f = asFields(body, "QUEUE_PURGE");
      const queue = queueName(f, "QUEUE_PURGE");
      const dlqToo = bool(f, "dlq", "QUEUE_PURGE");
      const part = this.partitions.partitionFor(queue);
      const target = dlqToo ? part.machine.dlqOf(queue) : queue;
      const r = ok(await this.#submit(part, { op: "purge", queue: target, dlq: dlqToo }), "purged");
      return { queue: target, purged: r.count };
    });
    router.register(Op.QUEUE_LIST, async (body): Promise<QueueListReply> => {
      const f = asFields(body, "QUEUE_LIST");
      const stale = bool(f, "stale", "QUEUE_LIST");
      const local = this.partitions.all().map((p) => p.partition);
      const views = [...(await this.#partitionViews(local, stale)), ...(await this.#remoteViews(new Set(local), stale))];
      return { layout: this.partitions.layout, partitions: views.sort((a, b) => a.partition - b.partition) };
    });
    peer(Op.QUEUE_LIST_PARTITIONS, async (_from, env) => {
      const f = asFields(env.body, "QUEUE_LIST_PARTITIONS");
      const ps = Array.isArray(f.partitions) ? f.partitions.filter((p): p is number => Number.isInteger(p)) : [];
      return { partitions: await this.#partitionViews(ps, bool(f, "stale", "QUEUE_LIST_PARTITIONS")) };
    });
  }

  /** Views of this node's replicas among `ps`, after a read barrier each unless `stale`. */
  async #partitionViews(ps: readonly number[], stale: boolean): Promise<QueuePartitionView[]> {
    const parts = ps.flatMap((p) => this.partitions.get(p) ?? []);
    if (!stale) await Promise.all(parts.map((p) => this.proposer.readBarrier(p.group.group)));
    return parts.map((p) => ({
      partition: p.partition,
      leader: p.group.leader,
      queues: p.machine.queues().map((queue) => ({ queue, ...p.machine.stats(queue) })),
      dlqs: p.machine.dlqs(),
    }));
  }

  /** The partitions this node does not hold, asked of a node that does (the preferred leader first). */
  async #remoteViews(held: ReadonlySet<number>, stale: boolean): Promise<QueuePartitionView[]> {
    const shards = this.partitions.shards;
    if (shards === null) return [];
    const byNode = new Map<string, number[]>();
    for (let p = 1; p <= shards.partitionCount; p++) {
      if (held.has(p)) continue;
      const at = this.partitions.reachableHolder(p);
      if (at === undefined) throw new UnavailableError(`no node holding queue partition ${p} (${shards.partition(p)!.replicas.join(", ")}) is reachable from this node`);
      byNode.set(at, [...(byNode.get(at) ?? []), p]);
    }
    const replies = await Promise.all([...byNode].map(([id, partitions]) => this.partitions.o.peers.request(id, Op.QUEUE_LIST_PARTITIONS, { partitions, stale }, LIST_PEER_TIMEOUT_MS)));
    return replies.flatMap((r) => (r as { partitions: QueuePartitionView[] }).partitions);
  }

  /** Where the partition is led: clients that send there skip the forwarding hop. */
  #leaderHint(part: Partition): LeaderHint {
    const leader = part.group.leader;
    return { leader, leaderAddr: this.leaderAddrOf(leader) };
  }

  // ---- proposing ----

  /**
   * Queues `cmd` into this turn's batch for its partition. The batch is proposed at the end of the
   * turn, unless all it holds is lingering acks (`linger`): then it waits up to `ackLingerMs` for
   * another command, which ends the wait at the end of its own turn.
   */
  #submit(part: Partition, cmd: UnstampedQueueCommand, linger = false): Promise<QueueResult> {
    return new Promise((resolve, reject) => {
      const bytes = cmd.op === "enqueue" ? cmd.messages.reduce((n, m) => n + m.payload.length, 0) : 64;
      let b = this.#batches.get(part.partition);
      if (b && (b.cmds.length + b.consumes.length >= BATCH_MAX || b.bytes + bytes > BATCH_BYTES_MAX)) {
        this.#takeBatch(part, b);
        b = undefined;
      }
      if (!b) {
        const fresh: PendingBatch = { cmds: [], waiters: [], consumes: [], consumeWaiters: [], bytes: 0, lingering: true, timer: null };
        this.#batches.set(part.partition, fresh);
        setImmediate(() => {
          if (fresh.lingering && this.ackLingerMs > 0) fresh.timer = setTimeout(() => this.#takeBatch(part, fresh), this.ackLingerMs);
          else this.#takeBatch(part, fresh);
        });
        b = fresh;
      }
      if (!linger && b.lingering) {
        b.lingering = false;
        const waiting = b;
        // Already past its first turn (lingering): this command's turn ends the wait.
        if (waiting.timer !== null) setImmediate(() => this.#takeBatch(part, waiting));
      }
      const consume = cmd.op === "consume";
      (consume ? b.consumes : b.cmds).push(cmd);
      (consume ? b.consumeWaiters : b.waiters).push({ resolve, reject });
      b.bytes += bytes;
    });
  }

  /** Proposes `b` unless it was already taken (by its timer, its turn, or a full batch). */
  #takeBatch(part: Partition, b: PendingBatch): void {
    if (this.#batches.get(part.partition) !== b) return;
    this.#batches.delete(part.partition);
    if (b.timer !== null) clearTimeout(b.timer);
    void this.#flush(part, b);
  }

  async #flush(part: Partition, b: PendingBatch): Promise<void> {
    const cmds = [...b.cmds, ...b.consumes];
    const waiters = [...b.waiters, ...b.consumeWaiters];
    this.#metrics.entry(cmds.length);
    try {
      const single = cmds.length === 1;
      const r = await this.#proposeRetrying(part, single ? cmds[0]! : { op: "batch", cmds });
      if (single) return waiters[0]!.resolve(r);
      if (!r.ok || r.kind !== "batch" || r.results.length !== waiters.length) {
        const err = new DsyncError(ErrorCode.INTERNAL, `queue partition ${part.partition} answered a batch with ${JSON.stringify(r).slice(0, 200)}`);
        for (const w of waiters) w.reject(err);
        return;
      }
      waiters.forEach((w, i) => w.resolve(r.results[i]!));
    } catch (err) {
      for (const w of waiters) w.reject(err as Error);
    }
  }

  /**
   * Proposes through the partition's leader. While the partition fails over, a write that
   * certainly was not applied (no leader, or the leader changed before it committed) is tried
   * again here, so clients see a slower reply instead of an error; an outcome that is unknown
   * (a timeout) is reported as such.
   */
  async #proposeRetrying(part: Partition, cmd: Record<string, unknown>): Promise<QueueResult> {
    const deadline = Date.now() + FAILOVER_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.proposer.proposeStamped(part.group.group, cmd)) as QueueResult;
      } catch (err) {
        if (!(err instanceof NotLeaderError || err instanceof UnavailableError) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(200, 20 * 2 ** attempt)));
      }
    }
  }

  // ---- consumers ----

  #consumer(ctx: RequestContext, part: Partition): Consumer {
    let c = this.#consumers.get(ctx.conn);
    if (!c) {
      const consumer: Consumer = { id: `${this.nodeId}/${this.#bootId}/${++this.#connSeq}`, partitions: new Set(), subscriptions: new Set() };
      this.#consumers.set(ctx.conn, consumer);
      ctx.onClose(() => this.#release(consumer));
      c = consumer;
    }
    c.partitions.add(part);
    return c;
  }

  /** The connection closed: its subscriptions end and its unacked messages are visible again at once. */
  #release(c: Consumer): void {
    for (const s of c.subscriptions) this.#closeSub(s);
    for (const part of c.partitions) {
      // A replica moved away since: its messages return when their visibility ends.
      if (this.partitions.get(part.partition) !== part) continue;
      this.#submit(part, { op: "release-consumer", consumerId: c.id }).catch((err: unknown) =>
        this.log.warn({ consumer: c.id, partition: part.partition, err: (err as Error).message }, "could not release a closed consumer's messages; they return when their visibility ends"),
      );
    }
  }

  /**
   * Ends a subscription once its consume in flight (if any) has been delivered, so no message
   * is left in flight to a subscription the client no longer has. `reason` null: no push (the
   * client asked).
   */
  async #endSub(s: Subscription, reason: EndReason | null): Promise<void> {
    s.ending = true;
    if (s.busy) await new Promise<void>((r) => s.onIdle.push(r));
    if (s.closed) return;
    this.#closeSub(s);
    if (reason !== null) s.conn.send({ type: Op.QUEUE_SUBSCRIPTION_ENDED, id: 0, body: { subscriptionId: s.id, queue: s.queue, reason, ...this.#leaderHint(s.part) } });
  }

  #closeSub(s: Subscription): void {
    s.closed = true;
    this.#subs.delete(s.id);
    s.consumer.subscriptions.delete(s);
    this.#subsByQueue.get(s.queue)?.delete(s);
    if (this.#subsByQueue.get(s.queue)?.size === 0) this.#subsByQueue.delete(s.queue);
    for (const r of s.outstanding.keys()) this.#receiptSub.delete(r);
  }

  /** Acks and nacks give a subscription its credit back. */
  #settled(receipts: readonly string[]): void {
    const touched = new Set<Subscription>();
    for (const r of receipts) {
      const s = this.#receiptSub.get(r);
      if (!s) continue;
      this.#receiptSub.delete(r);
      s.outstanding.delete(r);
      touched.add(s);
    }
    for (const s of touched) void this.#pump(s);
  }

  /**
   * Consumers waiting on `queue` here put their consume into the log entry of the enqueue just
   * submitted: the message meets a waiting consumer in one commit instead of two in a row. Long
   * polls are woken (their consume is submitted in a microtask, before the batch flushes) and idle
   * subscriptions of the partition pumped at once.
   */
  #joinEnqueue(part: Partition, queue: string, messages: number): void {
    const waiting = part.machine.depth(queue) + messages;
    this.#wakeLongPolls(queue, waiting);
    this.#pumpSubs(part, queue, waiting, true);
  }

  /**
   * Pumps idle subscriptions of `queue` until their credit covers `messages` (an upper bound of
   * what waits): one consume per batch of work instead of one per subscription, most of them
   * empty, in an entry every replica applies. Each one picked goes to the back of the line, so the
   * work goes round. A subscription whose consume comes back full pumps on by itself.
   */
  #pumpSubs(part: Partition, queue: string, messages: number, joined: boolean): void {
    const subs = this.#subsByQueue.get(queue);
    if (!subs) return;
    let left = messages;
    for (const s of [...subs]) {
      if (left <= 0) return;
      if (s.busy || s.ending || s.closed || s.part !== part) continue;
      const credit = s.prefetch - s.outstanding.size;
      if (credit <= 0) continue;
      left -= credit;
      subs.delete(s);
      subs.add(s);
      void this.#pump(s, joined);
    }
  }

  /**
   * Delivers to a subscription while it has credit and the queue has visible messages. `joined`:
   * an enqueue of its queue is in this turn's batch, so the first consume goes without looking.
   */
  async #pump(s: Subscription, joined = false): Promise<void> {
    if (s.busy || s.closed || s.ending) return;
    s.busy = true;
    try {
      for (let first = true; !s.closed && !s.ending && !s.conn.isClosed; first = false) {
        this.#forgetExpired(s);
        const credit = s.prefetch - s.outstanding.size;
        if (credit <= 0) return;
        // Nothing visible in this replica: no consume is proposed (an empty one costs a commit).
        // Whatever makes a message visible is an entry whose apply pumps again (onEvent); a
        // snapshot installed here is caught by the safety net.
        if (!(first && joined) && !s.part.machine.hasVisible(s.queue)) return;
        const gen = this.#gen.get(s.queue) ?? 0;
        const r = ok(await this.#submit(s.part, { op: "consume", queue: s.queue, consumerId: s.consumer.id, max: credit, visibilityMs: s.visibilityMs }), "messages");
        if (r.messages.length > 0) {
          const visibility = s.visibilityMs ?? s.part.machine.config(s.queue).visibilityMs;
          const until = Date.now() + visibility;
          for (const m of r.messages) {
            s.outstanding.set(m.receipt, until);
            this.#receiptSub.set(m.receipt, s);
          }
          this.#metrics.delivered(s.queue, r.messages);
          if (s.closed) {
            // Closed while the consume was in flight: the release on close makes these visible again.
            for (const m of r.messages) this.#receiptSub.delete(m.receipt);
            return;
          }
          s.conn.send({ type: Op.QUEUE_DELIVERY, id: 0, body: { subscriptionId: s.id, queue: s.queue, messages: r.messages } });
          continue;
        }
        if ((this.#gen.get(s.queue) ?? 0) === gen) return;
      }
    } catch (err) {
      this.log.debug({ subscription: s.id, queue: s.queue, err: (err as Error).message }, "subscription delivery failed; retrying");
    } finally {
      s.busy = false;
      for (const r of s.onIdle.splice(0)) r();
    }
  }

  /** A delivery whose visibility ended will be redelivered: it no longer holds credit. */
  #forgetExpired(s: Subscription): void {
    if (s.outstanding.size === 0) return;
    const now = Date.now();
    for (const [r, until] of s.outstanding) {
      if (until > now) continue;
      s.outstanding.delete(r);
      this.#receiptSub.delete(r);
    }
  }

  /**
   * Wakes the long polls waiting on `queue`, oldest first, until what they take covers `messages`
   * (an upper bound of what waits); each woken one consumes again. The others keep waiting.
   */
  #wakeLongPolls(queue: string, messages: number): void {
    const ws = this.#waiters.get(queue);
    if (!ws) return;
    let left = messages;
    for (const [wake, max] of ws) {
      if (left <= 0) break;
      left -= max;
      ws.delete(wake);
      wake();
    }
    if (ws.size === 0) this.#waiters.delete(queue);
  }

  /** Resolves when a long poll for up to `max` messages of `queue` is woken, or after `ms`. */
  #waitVisible(queue: string, ms: number, max: number): Promise<void> {
    return new Promise((resolve) => {
      let waiting = this.#waiters.get(queue);
      if (!waiting) this.#waiters.set(queue, (waiting = new Map()));
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const ws = this.#waiters.get(queue);
        ws?.delete(wake);
        if (ws?.size === 0) this.#waiters.delete(queue);
        resolve();
      }, ms);
      waiting.set(wake, max);
    });
  }
}

function queueName(f: Fields, what: string): string {
  const q = str(f, "queue", what, { maxBytes: NAME_BYTES_MAX });
  if (q.length === 0) throw new InvalidArgumentError(`${what}: field "queue" must not be empty`);
  return q;
}

function enqueueMessage(m: unknown, i: number): { payload: Uint8Array; delayMs: number | null; dedupId: string | null } {
  const f = asFields(m, `QUEUE_ENQUEUE messages[${i}]`);
  const payload = typeof f.payload === "string" ? new TextEncoder().encode(f.payload) : f.payload;
  if (!(payload instanceof Uint8Array)) throw new InvalidArgumentError(`QUEUE_ENQUEUE: messages[${i}].payload must be bytes (bin) or a string`);
  const delayMs = int(f, "delayMs", `QUEUE_ENQUEUE messages[${i}]`, { optional: true, min: 0, max: DURATION_MS_MAX }) ?? null;
  const dedupId = str(f, "dedupId", `QUEUE_ENQUEUE messages[${i}]`, { optional: true, maxBytes: NAME_BYTES_MAX }) ?? null;
  return { payload, delayMs, dedupId };
}

function receiptList(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > ACK_BATCH_MAX || !v.every((r) => typeof r === "string" && r.length <= RECEIPT_BYTES_MAX)) {
    throw new InvalidArgumentError(`QUEUE_ACK: field "receipts" must be an array of 1..${ACK_BATCH_MAX} receipt strings`);
  }
  return v as string[];
}

/** The result of the expected kind, or the refusal as its typed error. */
function ok<K extends Ok<string>["kind"]>(r: QueueResult, kind: K): Ok<K> {
  if (r.ok && r.kind === kind) return r as Ok<K>;
  if (!r.ok) {
    throw errorForCode(r.code, r.message);
  }
  throw new DsyncError(ErrorCode.INTERNAL, `queue partition answered ${r.kind} where ${kind} was expected`);
}

export type { DeliveredMessage };
