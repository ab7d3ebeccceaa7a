/**
 * Queues: producers enqueue numbered messages (each with a dedupId, resent after an unknown
 * outcome), consumers long-poll and ack (now and then they leave one unacked, so visibility
 * timeouts redeliver it), subscribers take pushed deliveries (now and then a handler fails, so the
 * message is nacked and retried; a subscription follows its partition's leader); after the heal a
 * final drain takes what is left. Checked: no
 * acknowledged enqueue lost, no phantom, FIFO first deliveries, no redelivery after a confirmed
 * ack, duplicates counted.
 */
import { QueueClient, type DsyncClient, type Subscription } from "../../../src/client/index.ts";
import { checkQueue, formatQueue, type AckRecord, type DeliveryRecord, type EnqueueRecord } from "../checkers/queue.ts";
import { outcomeOf, type Outcome } from "../history.ts";
import { loop, nodeClient, sleep, type CheckReport, type Workload, type WorkloadContext } from "./workload.ts";

const text = new TextDecoder();

export interface QueueWorkloadOptions {
  readonly producers: number;
  readonly consumers: number;
  /** Push subscriptions, spread over the queues. */
  readonly subscribers: number;
  readonly queues: number;
  /** Attempts per message before it is recorded with its last outcome. */
  readonly sendAttempts: number;
}

export class QueueWorkload implements Workload {
  readonly name = "queue";
  readonly #enqueues: EnqueueRecord[] = [];
  readonly #deliveries: DeliveryRecord[] = [];
  readonly #acks: AckRecord[] = [];
  readonly #dead: { queue: string; body: string }[] = [];
  readonly #okTimes: number[] = [];
  readonly #counts: Record<Outcome, number> = { ok: 0, fail: 0, unknown: 0 };
  readonly #conns: DsyncClient[] = [];
  readonly #loops: Promise<void>[] = [];
  #stopped = false;
  #checked: CheckReport | null = null;

  constructor(readonly o: QueueWorkloadOptions) {}

  #queueNames(): string[] {
    return Array.from({ length: this.o.queues }, (_, i) => `chaos-q${i}`);
  }

  #client(ctx: WorkloadContext, i: number, name: string): QueueClient {
    const conn = nodeClient(ctx, i, name);
    this.#conns.push(conn);
    // Half the clients go through whatever node they are on (forwarding), half to the leader.
    return new QueueClient(conn, { routeToLeader: i % 2 === 0 });
  }

  #count(outcome: Outcome): void {
    this.#counts[outcome]++;
    if (outcome === "ok") this.#okTimes.push(performance.now());
  }

  /** A client the nemesis asks where partition leaders are. */
  #probe: QueueClient | null = null;

  async start(ctx: WorkloadContext): Promise<void> {
    const queues = this.#queueNames();
    this.#probe = this.#client(ctx, 0, "queue-probe");
    for (let p = 0; p < this.o.producers; p++) {
      const q = this.#client(ctx, p, `queue-producer-${p}`);
      const rng = ctx.rng.fork();
      let seq = 0;
      this.#loops.push(
        loop(
          () => this.#stopped,
          async () => {
            const queue = queues[rng.nextInt(queues.length)]!;
            const body = `p${p}-${seq}`;
            const rec: EnqueueRecord = { queue, producer: `p${p}`, seq: seq++, body, outcome: "unknown", invokeMs: performance.now(), completeMs: Infinity };
            this.#enqueues.push(rec);
            let sent = false;
            let sawUnknown = false;
            for (let a = 0; a < this.o.sendAttempts && !sent; a++) {
              try {
                await q.enqueue(queue, body, { dedupId: body });
                sent = true;
                rec.completeMs = performance.now();
              } catch (err) {
                // The dedupId makes a resend safe: the message is added at most once.
                if (outcomeOf(err) === "unknown") sawUnknown = true;
                if (this.#stopped) break;
                await sleep(50 + rng.nextInt(100));
              }
            }
            const last: Outcome = sent ? "ok" : sawUnknown ? "unknown" : "fail";
            rec.outcome = last;
            if (last === "fail") rec.completeMs = performance.now();
            this.#count(last);
            await sleep(rng.nextInt(10));
          },
        ),
      );
    }
    for (let c = 0; c < this.o.consumers; c++) {
      const q = this.#client(ctx, c + 1, `queue-consumer-${c}`);
      const rng = ctx.rng.fork();
      let turn = c;
      this.#loops.push(
        loop(
          () => this.#stopped,
          async () => {
            const queue = queues[turn++ % queues.length]!;
            await this.#consumeOnce(q, queue, `c${c}`, { max: 8, waitMs: 500, visibilityMs: 3000 }, rng.float() < 0.05);
          },
        ),
      );
    }
    for (let s = 0; s < this.o.subscribers; s++) {
      const q = this.#client(ctx, this.o.consumers + 1 + s, `queue-subscriber-${s}`);
      this.#loops.push(this.#subscriber(q, queues[s % queues.length]!, `s${s}`, ctx.rng.fork()));
    }
  }

  /**
   * A push subscription held until the workload stops. Its deliveries count from when it was
   * first asked for (the consume behind a push is made by the node, at a time the client does not
   * see), and its acks, sent by the subscription itself, are not recorded.
   */
  async #subscriber(q: QueueClient, queue: string, consumer: string, rng: WorkloadContext["rng"]): Promise<void> {
    const sinceMs = performance.now();
    let sub: Subscription | null = null;
    while (!this.#stopped && sub === null) {
      try {
        sub = await q.subscribe(queue, { prefetch: 8, visibilityMs: 3000 }, (m) => {
          this.#deliveries.push({ queue, consumer, body: text.decode(m.payload), deliveryCount: m.deliveryCount, consumeInvokeMs: sinceMs, receivedMs: performance.now() });
          this.#count("ok");
          // Now and then a handler fails: the message is nacked and comes back after its backoff.
          if (rng.float() < 0.05) throw new Error("chaos: the handler failed");
        });
        sub.on("error", () => {}); // failed acks and nacks: visibility timeouts bring those messages back
      } catch (err) {
        this.#count(outcomeOf(err));
        await sleep(200);
      }
    }
    while (!this.#stopped) await sleep(100);
    await sub?.close().catch(() => {});
  }

  /** One consume and the acks of what it got; returns how many messages came. */
  async #consumeOnce(q: QueueClient, queue: string, consumer: string, opts: { max: number; waitMs: number; visibilityMs: number }, skipAck: boolean): Promise<number> {
    const consumeInvokeMs = performance.now();
    let got;
    try {
      got = await q.consume(queue, opts);
    } catch (err) {
      this.#count(outcomeOf(err));
      await sleep(50);
      return 0;
    }
    const receivedMs = performance.now();
    this.#count("ok");
    for (const m of got) this.#deliveries.push({ queue, consumer, body: text.decode(m.payload), deliveryCount: m.deliveryCount, consumeInvokeMs, receivedMs });
    // Now and then a consumer "crashes" before acking: visibility timeouts bring these back.
    if (got.length === 0 || skipAck) return got.length;
    const bodies = new Map(got.map((m) => [m.receipt, text.decode(m.payload)]));
    const invokeMs = performance.now();
    try {
      const r = await q.ack(queue, [...bodies.keys()]);
      const completeMs = performance.now();
      this.#count("ok");
      for (const out of r.outcomes) this.#acks.push({ queue, body: bodies.get(out.receipt)!, outcome: "ok", acked: out.ok, invokeMs, completeMs });
    } catch (err) {
      const outcome = outcomeOf(err);
      this.#count(outcome);
      for (const body of bodies.values()) this.#acks.push({ queue, body, outcome, acked: false, invokeMs, completeMs: outcome === "fail" ? performance.now() : Infinity });
    }
    return got.length;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.race([Promise.all(this.#loops), sleep(20_000)]);
  }

  /**
   * Drains every queue (in-flight messages of "crashed" consumers come back after their 3 s
   * visibility), then reads the dead-letter queues. Bounded to 60 s.
   */
  async final(ctx: WorkloadContext): Promise<void> {
    const q = this.#client(ctx, 0, "queue-drain");
    const deadline = performance.now() + 60_000;
    for (const queue of this.#queueNames()) {
      let empty = 0;
      while (performance.now() < deadline) {
        const n = await this.#consumeOnce(q, queue, "drain", { max: 100, waitMs: 1000, visibilityMs: 60_000 }, false);
        if (n > 0) {
          empty = 0;
          continue;
        }
        const s = await q.stats(queue).catch(() => null);
        if (s && s.stats.depth === 0 && s.stats.inFlight === 0 && ++empty >= 2) break;
      }
      const dlq = await q.dlqList(queue, { max: 1000 }).catch(() => null);
      for (const m of dlq?.messages ?? []) this.#dead.push({ queue, body: text.decode(m.payload) });
    }
  }

  async targets(): Promise<{ role: string; node: string }[]> {
    const q = this.#probe;
    if (!q) return [];
    const out: { role: string; node: string }[] = [];
    for (const queue of this.#queueNames()) {
      const s = await q.stats(queue).catch(() => null);
      if (s?.leader) out.push({ role: `leader of ${queue}'s partition ${s.partition}`, node: s.leader });
    }
    return out;
  }

  async close(): Promise<void> {
    for (const c of this.#conns) await c.close().catch(() => {});
  }

  outcomes(): Record<Outcome, number> {
    return { ...this.#counts };
  }

  okTimes(): number[] {
    return this.#okTimes;
  }

  check(): CheckReport {
    if (this.#checked) return this.#checked;
    const r = checkQueue({ enqueues: this.#enqueues, deliveries: this.#deliveries, acks: this.#acks, deadLettered: this.#dead });
    this.#checked = { ok: r.ok, violations: r.violations.length, lines: formatQueue(r) };
    return this.#checked;
  }

  history(): unknown {
    return { enqueues: this.#enqueues, deliveries: this.#deliveries, acks: this.#acks, deadLettered: this.#dead };
  }
}

export function queueWorkload(): QueueWorkload {
  return new QueueWorkload({ producers: 3, consumers: 3, subscribers: 2, queues: 2, sendAttempts: 5 });
}
