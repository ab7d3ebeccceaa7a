/**
 * The simulated clients' commands: KV puts (unique values) and deletes on a few keys, lock
 * sessions (open / keep-alive / close) with acquires and releases on a few resources, and queue
 * enqueues, consumes, acks, nacks and DLQ purges on two queues. Every command carries `now`, the
 * proposing node's clock (as a leader stamps it in production).
 *
 * The clients learn what they need — session ids, fencing tokens, receipts — from the results of
 * their commands, as real clients do; ids may be stale by the time a command applies (a session
 * expired, a receipt was redelivered), which the machines must answer, not trip over.
 */
import type { KvResult } from "../../src/services/kv/machine/kv-machine.ts";
import type { LockCommand, LockEvent, LockResult } from "../../src/services/lock/machine/types.ts";
import type { QueueCommand, QueueResult } from "../../src/services/queue/machine/types.ts";
import type { Prng } from "./prng.ts";
import { Tag, type ApplyOutcome, type SimCommand } from "./services.ts";

/** Keys of the KV register (few, so reads often race writes of the same key). */
export const KV_KEYS = ["k0", "k1", "k2", "k3", "k4"] as const;
const RESOURCES = ["ra", "rb", "rc"] as const;
const QUEUES = ["q0", "q1"] as const;
/** The workload stops enqueueing while the queue holds this many messages. */
const QUEUE_LOAD_MAX = 16;
/** Client-side memory bounds (oldest forgotten first). */
const KNOWN_MAX = 8;

const encoder = new TextEncoder();

/** A hold a client knows it has. */
interface KnownHold {
  readonly sessionId: number;
  readonly resource: string;
  readonly token: number;
}

/** Generates commands from one PRNG stream; learns from apply outcomes. */
export class Workload {
  #next = 1;
  #seq = 1;
  readonly #sessions: number[] = [];
  readonly #holds: KnownHold[] = [];
  readonly #receipts: { queue: string; receipt: string }[] = [];

  constructor(readonly rng: Prng) {}

  /**
   * The next client command, stamped `now`. `isLiveSession(id)` is the proposing node's view of
   * a session (a client whose session expired opens another). `queueSize` limits the load.
   */
  next(now: number, isLiveSession: (id: number) => boolean, queueSize: number): SimCommand {
    const r = this.rng;
    const id = this.#next++;
    const x = r.float();
    if (x < 0.45) {
      const key = r.pick(KV_KEYS);
      if (r.chance(0.15)) return { tag: Tag.Cluster, cmd: { op: "delete", key } };
      // A unique value, padded to a random size (so byte limits split appends).
      return { tag: Tag.Cluster, cmd: { op: "put", key, value: encoder.encode(`v${id}${"-".repeat(r.nextInt(24))}`) } };
    }
    if (x < 0.75) {
      return { tag: Tag.Cluster, cmd: this.#lock(id, now, isLiveSession) };
    }
    return { tag: Tag.Queue, cmd: this.#queue(id, now, queueSize) };
  }

  #lock(id: number, now: number, isLiveSession: (id: number) => boolean): LockCommand {
    const r = this.rng;
    // Forget sessions the proposer knows are gone (and their holds).
    for (let i = this.#sessions.length - 1; i >= 0; i--) {
      const s = this.#sessions[i]!;
      if (!isLiveSession(s)) {
        this.#sessions.splice(i, 1);
        for (let k = this.#holds.length - 1; k >= 0; k--) if (this.#holds[k]!.sessionId === s) this.#holds.splice(k, 1);
      }
    }
    if (this.#sessions.length === 0 || (this.#sessions.length < 4 && r.chance(0.1))) {
      return { op: "session.open", clientId: `client${id}`, ttlMs: r.pick([2000, 8000, 30000]), now };
    }
    const y = r.float();
    if (y < 0.25) return { op: "session.keepalive", sessionId: r.pick(this.#sessions), now };
    if (y < 0.3) return { op: "session.close", sessionId: r.pick(this.#sessions), now };
    if (y < 0.45 && this.#holds.length > 0) {
      const i = r.nextInt(this.#holds.length);
      const h = this.#holds[i]!;
      this.#holds.splice(i, 1);
      return { op: "release", sessionId: h.sessionId, seq: this.#seq++, resource: h.resource, token: h.token, now };
    }
    return {
      op: "acquire",
      sessionId: r.pick(this.#sessions),
      seq: this.#seq++,
      resource: r.pick(RESOURCES),
      mode: r.chance(0.65) ? "exclusive" : "shared",
      ttlMs: r.chance(0.7) ? null : r.pick([500, 3000]),
      waitMs: r.pick([0, 0, 300, 2000, -1]),
      now,
    };
  }

  #queue(id: number, now: number, queueSize: number): QueueCommand {
    const r = this.rng;
    const queue = r.pick(QUEUES);
    const y = r.float();
    if (y < 0.35 && queueSize < QUEUE_LOAD_MAX) {
      const n = r.between(1, 3);
      return {
        op: "enqueue",
        queue,
        messages: Array.from({ length: n }, (_, i) => ({ payload: encoder.encode(`m${id}.${i}`), delayMs: r.chance(0.2) ? r.pick([50, 400]) : null })),
        now,
      };
    }
    if (y < 0.65 || this.#receipts.length === 0) {
      return { op: "consume", queue, consumerId: `w${r.nextInt(3)}`, max: r.between(1, 3), visibilityMs: r.chance(0.5) ? null : r.pick([150, 1500]), now };
    }
    if (y < 0.9) {
      const picked = this.#takeReceipts(r.between(1, 2));
      return { op: "ack", queue: picked[0]!.queue, receipts: picked.map((p) => p.receipt), now };
    }
    if (y < 0.96) {
      const [p] = this.#takeReceipts(1);
      return { op: "nack", queue: p!.queue, receipt: p!.receipt, delayMs: r.chance(0.5) ? null : r.pick([0, 200]), now };
    }
    return { op: "purge", queue: `${queue}.dlq`, dlq: true, now };
  }

  /** Up to `n` known receipts of one queue, removed from memory (mostly recent ones). */
  #takeReceipts(n: number): { queue: string; receipt: string }[] {
    const r = this.rng;
    const first = this.#receipts.splice(r.chance(0.7) ? this.#receipts.length - 1 : r.nextInt(this.#receipts.length), 1)[0]!;
    const out = [first];
    for (let i = this.#receipts.length - 1; i >= 0 && out.length < n; i--) {
      if (this.#receipts[i]!.queue === first.queue) out.push(...this.#receipts.splice(i, 1));
    }
    return out;
  }

  /** Learn from the outcome of a command (the first time its entry is applied anywhere). */
  learn(o: ApplyOutcome): void {
    if (o.tag === Tag.Cluster) {
      const res = o.result as LockResult | KvResult | null;
      if (res !== null && "ok" in res && res.ok) {
        if (res.kind === "session" && !this.#sessions.includes(res.sessionId)) remember(this.#sessions, res.sessionId);
        else if (res.kind === "granted") remember(this.#holds, { sessionId: res.sessionId, resource: res.resource, token: res.token });
      }
      for (const e of o.events) this.#learnEvent(e);
    } else if (o.tag === Tag.Queue) {
      const res = o.result as QueueResult;
      if (res.ok && res.kind === "messages") for (const m of res.messages) remember(this.#receipts, { queue: res.queue, receipt: m.receipt });
    }
  }

  #learnEvent(e: LockEvent): void {
    if (e.kind === "granted") remember(this.#holds, { sessionId: e.sessionId, resource: e.resource, token: e.token });
    else if (e.kind === "lost") {
      const i = this.#holds.findIndex((h) => h.sessionId === e.sessionId && h.resource === e.resource);
      if (i >= 0) this.#holds.splice(i, 1);
    }
  }
}

function remember<T>(list: T[], item: T): void {
  list.push(item);
  if (list.length > KNOWN_MAX) list.shift();
}
