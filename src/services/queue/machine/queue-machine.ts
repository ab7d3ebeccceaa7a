import { decodeCommand } from "../../command-codec.ts";
import type { AppliedEntry, StateMachine } from "../../../host/state-machine.ts";
import { backoffDelay } from "./backoff.ts";
import { MinHeap } from "../../shared/min-heap.ts";
import { BATCH_MAX, isBatch, parseReceipt, receiptOf } from "./commands.ts";
import { findDuplicates, pruneDedup } from "./dedup.ts";
import { isCurrent, rebuildIndexes, track, untrack, type ConsumerIndex } from "./indexes.ts";
import { checkState } from "./invariants.ts";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.ts";
import { compareTimers, dlqName, invariant, newMessage, newQueue, type Message, type Queue, type QueueState, type Timer } from "./store.ts";
import type {
  AckOutcome,
  DeadMessageView,
  DeliveredMessage,
  DeliveryOutcome,
  QueueCommand,
  QueueConfig,
  QueueErrorCode,
  QueueEvent,
  QueueMachineOptions,
  QueueResult,
  QueueStats,
} from "./types.ts";
import { absent, ACK_BATCH_MAX, badEnqueueMessages, badName, CONSUME_MAX, DEFAULT_CONFIG, HISTORY_MAX, isDuration, isInt, isTime, mergeConfig, REDRIVE_MAX } from "./validate.ts";
import { deadMessageViews, placementsOf, statsOf, type Placement } from "./views.ts";

export { BATCH_MAX, decodeQueueCommand, encodeQueueCommand, receiptOf } from "./commands.ts";

const MAX_MESSAGES_DEFAULT = 1_000_000;
const EXPIRE_BATCH_MAX_DEFAULT = 10_000;

type Cmd<K extends QueueCommand["op"]> = Extract<QueueCommand, { op: K }>;

function fail(code: QueueErrorCode, message: string): QueueResult {
  return { ok: false, code, message };
}

function invalid(message: string): QueueResult {
  return fail("INVALID_ARGUMENT", message);
}

/**
 * One partition's queue state machine: many named queues, each FIFO for first deliveries, with
 * delayed messages, visibility timeouts, ack / nack, exponential retry backoff with deterministic
 * jitter, dead-lettering after maxDeliveries (with each delivery's history), redrive, purge,
 * enqueue dedup within a window, and consumer release.
 *
 * Pure and deterministic: no clock (time is the leader's `now` inside each command, made
 * monotonic), no randomness, no I/O. Every order that can influence a decision is a total order
 * on the state (heaps on (time, id)) or an insertion order the snapshot preserves, so the same
 * log gives the same state, results, events and snapshot bytes on every replica.
 *
 * Message ids are a partition counter (monotonic, so "lower id" = "enqueued earlier"). A receipt
 * is `${id}:${seq}` with `seq` a partition-wide delivery counter, unique forever: a receipt from a
 * delivery that has since timed out, been nacked, released, or dead-lettered and re-driven (which
 * resets deliveryCount, so `${id}:${deliveryCount}` would repeat) is refused as stale.
 *
 * Dead-letter queues are a separate namespace: the DLQ `orders.dlq` holds dead messages and is
 * read with {@link peekDlq}, `dlq.redrive` and `purge {dlq: true}`; enqueueing to a queue called
 * `orders.dlq` makes an ordinary queue beside it.
 */
export class QueueMachine implements StateMachine {
  readonly #onEvent: ((e: QueueEvent) => void) | undefined;
  readonly #maxMessages: number;
  /** Sum of the held messages' payload lengths, kept as they come and go. */
  #bytes = 0;
  readonly #expireBatchMax: number;
  readonly #defaults: QueueConfig;

  #st: QueueState = QueueMachine.#empty();
  /** Derived: every pending timer (lazy deletion). */
  #timers = new MinHeap<Timer>(compareTimers);
  /** Derived: consumer → ids of its in-flight messages. */
  #consumers: ConsumerIndex = new Map();

  // Context of the entry being applied.
  #now = 0;
  #visible = new Map<string, number>();

  constructor(opts: QueueMachineOptions = {}) {
    this.#onEvent = opts.onEvent;
    this.#maxMessages = opts.maxMessages ?? MAX_MESSAGES_DEFAULT;
    this.#expireBatchMax = opts.expireBatchMax ?? EXPIRE_BATCH_MAX_DEFAULT;
    const d = mergeConfig(DEFAULT_CONFIG, opts.defaults ?? {}, null);
    if (typeof d === "string") throw new Error(`QueueMachine: bad defaults: ${d}`);
    if (d.dlq !== null) throw new Error("QueueMachine: a default dlq name would be shared by every queue");
    this.#defaults = d;
  }

  static #empty(): QueueState {
    return { lastIndex: 0, clock: 0, nextId: 1, nextSeq: 1, queues: new Map(), messages: new Map(), dlqs: new Map() };
  }

  /** Applies a committed entry; an empty entry (a leader's no-op) returns null. */
  apply(entry: AppliedEntry): QueueResult | null {
    if (entry.data.length === 0) {
      this.#advance(entry.index);
      return null;
    }
    let cmd: unknown;
    try {
      cmd = decodeCommand(entry.data);
    } catch {
      cmd = undefined; // Undecodable bytes are bad input: answered, not thrown.
    }
    return this.applyCommand(cmd as QueueCommand, entry.index);
  }

  /**
   * Applies one command as the entry at log `index` (indices must increase: anything else is a
   * caller bug and throws). Bad commands never throw: they get INVALID_ARGUMENT. Events are
   * delivered after the state change is complete.
   */
  applyCommand(cmd: QueueCommand, index: number): QueueResult {
    this.#advance(index);
    this.#visible = new Map();
    const result = isBatch(cmd) ? this.#batch(cmd) : this.#dispatch(cmd as unknown);
    const visible = this.#visible;
    this.#visible = new Map();
    if (this.#onEvent !== undefined) for (const [queue, count] of visible) this.#onEvent({ kind: "visible", queue, count });
    return result;
  }

  snapshot(): Uint8Array {
    return encodeSnapshot(this.#st);
  }

  restore(data: Uint8Array): void {
    const st = decodeSnapshot(data);
    this.#st = st;
    rebuildIndexes(st, this.#timers, this.#consumers);
    this.#bytes = 0;
    for (const m of st.messages.values()) this.#bytes += m.payload.length;
  }

  /** Payload bytes of every message the partition holds (waiting, in flight, dead-lettered). */
  get payloadBytes(): number {
    return this.#bytes;
  }

  // ---- read-only views ----

  /**
   * The earliest pending visibility timeout or delayed-message wake-up, or null: the leader
   * proposes `expire` once its clock reaches it. (Drops stale timers: no logical change.)
   */
  nextDeadline(): number | null {
    for (;;) {
      const t = this.#timers.peek();
      if (t === undefined) return null;
      if (isCurrent(this.#st, t)) return t.at;
      this.#timers.pop();
    }
  }

  /** Names of the queues the partition knows (enqueued to or configured), sorted. */
  queues(): string[] {
    return [...this.#st.queues.keys()].sort();
  }

  /** Names of the non-empty dead-letter queues, sorted. */
  dlqs(): string[] {
    return [...this.#st.dlqs.keys()].sort();
  }

  /**
   * Whether a consume applied now would find a message of `queue`: one is ready and visible by the
   * partition clock. A message whose delay ends later is not counted: its wake-up applies as an
   * entry and raises a `visible` event then.
   */
  hasVisible(queue: string): boolean {
    const m = this.#st.queues.get(queue)?.ready.peek();
    return m !== undefined && m.visibleAt <= this.#st.clock;
  }

  /** Messages of `queue` waiting: visible now or delayed (the stats' depth, without building them). */
  depth(queue: string): number {
    return this.#st.queues.get(queue)?.ready.size ?? 0;
  }

  stats(queue: string): QueueStats {
    return statsOf(this.#st.queues.get(queue));
  }

  /** A queue's configuration (the defaults for a queue never seen). */
  config(queue: string): QueueConfig {
    const c = this.#st.queues.get(queue)?.config ?? this.#defaults;
    return { ...c, backoff: { ...c.backoff } };
  }

  /** The name of `queue`'s dead-letter queue (configured, or `<queue>.dlq`). */
  dlqOf(queue: string): string {
    const q = this.#st.queues.get(queue);
    return q !== undefined ? dlqName(q) : (this.#defaults.dlq ?? `${queue}.dlq`);
  }

  /** Up to `max` messages of the DLQ `dlq`, oldest death first (this is `dlq.list`). */
  peekDlq(dlq: string, max: number): DeadMessageView[] {
    return deadMessageViews(this.#st.dlqs.get(dlq), max);
  }

  /** The clock of the partition: the highest `now` applied so far. */
  get clock(): number {
    return this.#st.clock;
  }

  /** The highest log index applied. */
  get lastIndex(): number {
    return this.#st.lastIndex;
  }

  /** Where each message is: for tests and the simulator (O(messages)). */
  placements(): Map<number, Placement> {
    return placementsOf(this.#st.messages);
  }

  /** A full structural check of the state, O(state); throws on the first violation. */
  checkInvariants(): void {
    checkState(this.#st, this.#consumers, this.#timers.items());
    let bytes = 0;
    for (const m of this.#st.messages.values()) bytes += m.payload.length;
    invariant(bytes === this.#bytes, `payloadBytes ${this.#bytes}, counted ${bytes}`);
  }

  // ---- commands ----

  #advance(index: number): void {
    // Invariant: entries are applied once, in log order.
    invariant(Number.isSafeInteger(index) && index > this.#st.lastIndex, `entry ${index} applied after ${this.#st.lastIndex}`);
    this.#st.lastIndex = index;
  }

  #dispatch(c: unknown): QueueResult {
    if (c === null || typeof c !== "object" || Array.isArray(c)) return invalid("a queue command must be a map");
    const cmd = c as { op?: unknown; now?: unknown };
    if (!isTime(cmd.now)) return invalid("now must be a finite number >= 0");
    // Partition time never runs backwards (a new leader's clock may lag the old one's).
    if (cmd.now > this.#st.clock) this.#st.clock = cmd.now;
    this.#now = this.#st.clock;
    switch (cmd.op) {
      case "enqueue":
        return this.#enqueue(c as Cmd<"enqueue">);
      case "consume":
        return this.#consume(c as Cmd<"consume">);
      case "ack":
        return this.#ack(c as Cmd<"ack">);
      case "nack":
        return this.#nack(c as Cmd<"nack">);
      case "expire":
        return this.#expire();
      case "release-consumer":
        return this.#release(c as Cmd<"release-consumer">);
      case "configure":
        return this.#configure(c as Cmd<"configure">);
      case "dlq.redrive":
        return this.#redrive(c as Cmd<"dlq.redrive">);
      case "purge":
        return this.#purge(c as Cmd<"purge">);
      default:
        return invalid(`unknown queue op ${JSON.stringify(String(cmd.op)).slice(0, 80)}`);
    }
  }

  /**
   * Commands from many clients that one node gathered in one event-loop turn: one log entry and
   * one fsync for all of them. Each gets the batch's `now` and its own result; a bad one fails
   * alone.
   */
  #batch(b: { cmds?: unknown; now?: unknown }): QueueResult {
    if (!Array.isArray(b.cmds) || b.cmds.length < 1 || b.cmds.length > BATCH_MAX) return invalid(`a batch holds 1..${BATCH_MAX} commands`);
    const results: QueueResult[] = [];
    for (const c of b.cmds) {
      if (c === null || typeof c !== "object" || Array.isArray(c) || isBatch(c)) results.push(invalid("a batch entry must be a queue command map (not a batch)"));
      else results.push(this.#dispatch({ ...(c as object), now: b.now }));
    }
    return { ok: true, kind: "batch", results };
  }

  #queue(name: string): Queue {
    let q = this.#st.queues.get(name);
    if (q === undefined) {
      q = newQueue(name, this.#defaults);
      this.#st.queues.set(name, q);
    }
    return q;
  }

  #enqueue(cmd: Cmd<"enqueue">): QueueResult {
    const bad = badName(cmd.queue, "queue");
    if (bad !== null) return invalid(bad);
    const badM = badEnqueueMessages(cmd.messages);
    if (badM !== null) return invalid(badM);
    const now = this.#now;
    const existing = this.#st.queues.get(cmd.queue);
    const window = (existing?.config ?? this.#defaults).dedupWindowMs;
    if (existing !== undefined) pruneDedup(existing, now);
    const { dupOf, fresh } = findDuplicates(cmd.messages, existing, window);
    if (this.#st.messages.size + fresh > this.#maxMessages) {
      return fail("QUEUE_FULL", `the partition holds ${this.#st.messages.size} messages; ${fresh} more would pass the cap of ${this.#maxMessages}`);
    }
    const q = this.#queue(cmd.queue);
    const ids: number[] = [];
    const duplicates: boolean[] = [];
    for (let i = 0; i < cmd.messages.length; i++) {
      const dup = dupOf[i]!;
      if (dup !== null) {
        ids.push(dup >= 0 ? dup : ids[-1 - dup]!);
        duplicates.push(true);
        continue;
      }
      const spec = cmd.messages[i]!;
      const delay = absent(spec.delayMs) ? 0 : spec.delayMs;
      const dedupId = absent(spec.dedupId) || window === 0 ? null : spec.dedupId;
      const m = newMessage(this.#st.nextId++, q.name, spec.payload, now, now + delay, dedupId);
      this.#st.messages.set(m.id, m);
      this.#bytes += m.payload.length;
      if (dedupId !== null) q.dedup.set(dedupId, { id: m.id, at: now });
      this.#makeReady(q, m, m.visibleAt);
      ids.push(m.id);
      duplicates.push(false);
    }
    return { ok: true, kind: "enqueued", queue: q.name, ids, duplicates };
  }

  #consume(cmd: Cmd<"consume">): QueueResult {
    const bad = badName(cmd.queue, "queue") ?? badName(cmd.consumerId, "consumerId");
    if (bad !== null) return invalid(bad);
    if (!isInt(cmd.max, 1, CONSUME_MAX)) return invalid(`max must be an integer in [1, ${CONSUME_MAX}]`);
    if (!absent(cmd.visibilityMs) && !isDuration(cmd.visibilityMs, 1)) return invalid("visibilityMs must be a duration >= 1 ms");
    const q = this.#st.queues.get(cmd.queue);
    const messages: DeliveredMessage[] = [];
    if (q === undefined) return { ok: true, kind: "messages", queue: cmd.queue, messages };
    const now = this.#now;
    const deadline = now + (absent(cmd.visibilityMs) ? q.config.visibilityMs : cmd.visibilityMs);
    for (let m = q.ready.peek(); m !== undefined && m.visibleAt <= now && messages.length < cmd.max; m = q.ready.peek()) {
      q.ready.pop();
      invariant(m.state === "ready", `message ${m.id} in the ready heap is ${m.state}`);
      m.state = "inflight";
      m.wakePending = false;
      m.deadline = deadline;
      m.consumerId = cmd.consumerId;
      m.seq = this.#st.nextSeq++;
      m.deliveryCount++;
      if (m.firstDeliveredAt === null) m.firstDeliveredAt = now;
      m.history.push({ at: now, consumerId: cmd.consumerId, outcome: "in-flight", endedAt: null });
      if (m.history.length > HISTORY_MAX) m.history.shift();
      q.inFlight++;
      q.counters.delivered++;
      if (m.deliveryCount > 1) q.counters.redelivered++;
      track(this.#consumers, m);
      this.#timers.push({ at: deadline, kind: "inflight", id: m.id, seq: m.seq });
      messages.push({
        id: m.id,
        payload: m.payload,
        deliveryCount: m.deliveryCount,
        receipt: receiptOf(m.id, m.seq),
        enqueuedAt: m.enqueuedAt,
        firstDeliveredAt: m.firstDeliveredAt,
      });
    }
    return { ok: true, kind: "messages", queue: q.name, messages };
  }

  /** The in-flight message of `queue` a receipt names, or why there is none. */
  #lookup(queue: string, receipt: unknown): Message | "stale" | "unknown" | "malformed" {
    const r = parseReceipt(receipt);
    if (r === null) return "malformed";
    const m = this.#st.messages.get(r.id);
    // An id this partition issued whose message is gone was acked (or purged, or dead-lettered):
    // its delivery ended, which is what "stale" says. "unknown" is for ids never issued here.
    if (m === undefined) return r.id < this.#st.nextId ? "stale" : "unknown";
    if (m.queue !== queue) return "unknown";
    if (m.state !== "inflight" || m.seq !== r.seq) return "stale";
    return m;
  }

  #ack(cmd: Cmd<"ack">): QueueResult {
    const bad = badName(cmd.queue, "queue");
    if (bad !== null) return invalid(bad);
    if (!Array.isArray(cmd.receipts) || cmd.receipts.length > ACK_BATCH_MAX) return invalid(`receipts must be an array of at most ${ACK_BATCH_MAX}`);
    const q = this.#st.queues.get(cmd.queue);
    const outcomes: AckOutcome[] = [];
    let acked = 0;
    for (const receipt of cmd.receipts) {
      const m = q === undefined ? "unknown" : this.#lookup(q.name, receipt);
      if (typeof m === "string") {
        outcomes.push({ receipt: String(receipt).slice(0, 80), ok: false, reason: m });
        continue;
      }
      untrack(this.#consumers, m);
      q!.inFlight--;
      q!.counters.acked++;
      this.#st.messages.delete(m.id);
      this.#bytes -= m.payload.length;
      outcomes.push({ receipt, ok: true, id: m.id });
      acked++;
    }
    return { ok: true, kind: "acked", queue: cmd.queue, acked, outcomes };
  }

  #nack(cmd: Cmd<"nack">): QueueResult {
    const bad = badName(cmd.queue, "queue");
    if (bad !== null) return invalid(bad);
    if (!absent(cmd.delayMs) && !isDuration(cmd.delayMs)) return invalid("delayMs must be a duration in ms");
    const q = this.#st.queues.get(cmd.queue);
    const m = q === undefined ? "unknown" : this.#lookup(q.name, cmd.receipt);
    if (typeof m === "string") return fail("STALE_RECEIPT", `receipt ${String(cmd.receipt).slice(0, 80)} is ${m}`);
    const visibleAt = this.#endDelivery(q!, m, "nacked", absent(cmd.delayMs) ? null : cmd.delayMs);
    return { ok: true, kind: "nacked", queue: q!.name, id: m.id, visibleAt, deadLettered: visibleAt === null };
  }

  /**
   * Ends an in-flight delivery that was not acked: the message dead-letters if it has had
   * maxDeliveries, else becomes ready after `delay` (null = the queue's backoff). Returns when it
   * becomes visible, or null when it was dead-lettered.
   */
  #endDelivery(q: Queue, m: Message, outcome: DeliveryOutcome, delay: number | null): number | null {
    invariant(m.state === "inflight", `ending delivery of ${m.id}, which is ${m.state}`);
    const h = m.history[m.history.length - 1];
    invariant(h !== undefined && h.outcome === "in-flight", `message ${m.id} in flight without an open delivery`);
    h.outcome = outcome;
    h.endedAt = this.#now;
    untrack(this.#consumers, m);
    q.inFlight--;
    m.consumerId = null;
    if (m.deliveryCount >= q.config.maxDeliveries) {
      const name = dlqName(q);
      m.state = "dead";
      m.dlq = name;
      m.deadAt = this.#now;
      let store = this.#st.dlqs.get(name);
      if (store === undefined) {
        store = new Map();
        this.#st.dlqs.set(name, store);
      }
      store.set(m.id, m);
      q.counters.deadLettered++;
      return null;
    }
    const at = this.#now + (delay ?? backoffDelay(q.config.backoff, m.id, m.deliveryCount));
    this.#makeReady(q, m, at);
    return at;
  }

  /** Puts `m` in its queue's ready heap at `at`: counted visible now, or woken later. */
  #makeReady(q: Queue, m: Message, at: number): void {
    m.state = "ready";
    m.visibleAt = at;
    q.ready.push(m);
    if (at <= this.#now) {
      m.wakePending = false;
      this.#noteVisible(q.name, 1);
    } else {
      m.wakePending = true;
      this.#timers.push({ at, kind: "wake", id: m.id, seq: m.seq });
    }
  }

  #noteVisible(queue: string, n: number): void {
    this.#visible.set(queue, (this.#visible.get(queue) ?? 0) + n);
  }

  /**
   * Settles what is due at `now`, in timer order ((time, kind, id): a total order, so every
   * replica settles the same ones): visibility timeouts go back with backoff or dead-letter;
   * delayed messages whose time came are announced. At most expireBatchMax per command; `more`
   * says the leader should propose another `expire` at once.
   */
  #expire(): QueueResult {
    const now = this.#now;
    let redelivered = 0;
    let deadLettered = 0;
    let done = 0;
    for (let t = this.#timers.peek(); t !== undefined && t.at <= now; t = this.#timers.peek()) {
      if (!isCurrent(this.#st, t)) {
        this.#timers.pop();
        continue;
      }
      if (done >= this.#expireBatchMax) break;
      this.#timers.pop();
      done++;
      const m = this.#st.messages.get(t.id)!;
      const q = this.#st.queues.get(m.queue)!;
      if (t.kind === "wake") {
        m.wakePending = false;
        this.#noteVisible(q.name, 1);
      } else if (this.#endDelivery(q, m, "timeout", null) === null) deadLettered++;
      else redelivered++;
    }
    const next = this.nextDeadline();
    return { ok: true, kind: "expired", redelivered, deadLettered, more: next !== null && next <= now };
  }

  #release(cmd: Cmd<"release-consumer">): QueueResult {
    const bad = badName(cmd.consumerId, "consumerId");
    if (bad !== null) return invalid(bad);
    const ids = [...(this.#consumers.get(cmd.consumerId) ?? [])].sort((a, b) => a - b);
    let redelivered = 0;
    let deadLettered = 0;
    for (const id of ids) {
      const m = this.#st.messages.get(id)!;
      if (this.#endDelivery(this.#st.queues.get(m.queue)!, m, "released", 0) === null) deadLettered++;
      else redelivered++;
    }
    return { ok: true, kind: "released", consumerId: cmd.consumerId, redelivered, deadLettered };
  }

  #configure(cmd: Cmd<"configure">): QueueResult {
    const bad = badName(cmd.queue, "queue");
    if (bad !== null) return invalid(bad);
    const base = this.#st.queues.get(cmd.queue)?.config ?? this.#defaults;
    const config = mergeConfig(base, cmd, cmd.queue);
    if (typeof config === "string") return invalid(config);
    const q = this.#queue(cmd.queue);
    q.config = config;
    pruneDedup(q, this.#now);
    return { ok: true, kind: "configured", queue: q.name, config: { ...config, backoff: { ...config.backoff } } };
  }

  #redrive(cmd: Cmd<"dlq.redrive">): QueueResult {
    const bad = badName(cmd.queue, "queue");
    if (bad !== null) return invalid(bad);
    if (!isInt(cmd.max, 1, REDRIVE_MAX)) return invalid(`max must be an integer in [1, ${REDRIVE_MAX}]`);
    const store = this.#st.dlqs.get(cmd.queue);
    const ids: number[] = [];
    if (store === undefined) return { ok: true, kind: "redriven", queue: cmd.queue, ids };
    for (const m of store.values()) {
      if (ids.length >= cmd.max) break;
      ids.push(m.id);
    }
    for (const id of ids) {
      const m = store.get(id)!;
      store.delete(id);
      m.dlq = null;
      m.deadAt = null;
      m.deliveryCount = 0;
      this.#makeReady(this.#queue(m.queue), m, this.#now);
    }
    if (store.size === 0) this.#st.dlqs.delete(cmd.queue);
    return { ok: true, kind: "redriven", queue: cmd.queue, ids };
  }

  #purge(cmd: Cmd<"purge">): QueueResult {
    const bad = badName(cmd.queue, "queue");
    if (bad !== null) return invalid(bad);
    if (!absent(cmd.dlq) && typeof cmd.dlq !== "boolean") return invalid("dlq must be a boolean");
    let count = 0;
    if (cmd.dlq === true) {
      const store = this.#st.dlqs.get(cmd.queue);
      if (store !== undefined) {
        for (const id of store.keys()) {
          this.#bytes -= this.#st.messages.get(id)?.payload.length ?? 0;
          this.#st.messages.delete(id);
        }
        count = store.size;
        this.#st.dlqs.delete(cmd.queue);
      }
    } else {
      const q = this.#st.queues.get(cmd.queue);
      if (q !== undefined) {
        for (const m of q.ready.items()) {
          this.#bytes -= m.payload.length;
          this.#st.messages.delete(m.id);
        }
        count = q.ready.size;
        q.ready.clear(); // their wake timers are now stale
      }
    }
    return { ok: true, kind: "purged", queue: cmd.queue, count };
  }
}
