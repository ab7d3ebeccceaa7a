import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { DeliveredMessage } from "./machine/index.ts";
import type { Partition } from "./partitions.ts";

const GAUGE_KEYS = ["depth", "inFlight", "delivered", "acked", "redelivered", "deadLettered"] as const;
type GaugeKey = (typeof GAUGE_KEYS)[number];

/**
 * Per-queue metrics. Depth, in-flight and the delivery counters are replicated state (the same on
 * every node, read from this node's replica at scrape time); enqueue-to-delivery latency and the
 * batching counters are what this node itself did.
 */
export class QueueMetrics {
  readonly #gauges: Record<GaugeKey, Gauge<"queue">>;
  readonly #latency: Histogram<"queue">;
  readonly #enqueued: Counter<"queue">;
  readonly #entries: Counter;
  readonly #commands: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    const g = (name: string, help: string): Gauge<"queue"> => new Gauge({ name, help, labelNames: ["queue"] as const, registers });
    this.#gauges = {
      depth: g("dsync_queue_depth", "Messages waiting: visible now or delayed (replicated)."),
      inFlight: g("dsync_queue_in_flight", "Messages delivered and not yet acked (replicated)."),
      delivered: g("dsync_queue_delivered", "Deliveries since the queue began, redeliveries included (replicated count)."),
      acked: g("dsync_queue_acked", "Messages acked since the queue began (replicated count)."),
      redelivered: g("dsync_queue_redelivered", "Deliveries after the first (timeouts, nacks, released consumers) (replicated count)."),
      deadLettered: g("dsync_queue_dead_lettered", "Messages moved to the dead-letter queue (replicated count)."),
    };
    this.#latency = new Histogram({
      name: "dsync_queue_delivery_latency_seconds",
      help: "From enqueue (leader clock) to first delivery by this node.",
      labelNames: ["queue"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.#enqueued = new Counter({ name: "dsync_queue_enqueued_total", help: "Messages enqueued through this node (duplicates by dedupId not counted).", labelNames: ["queue"] as const, registers });
    this.#entries = new Counter({ name: "dsync_queue_log_entries_total", help: "Queue log entries this node proposed or forwarded (one per batch).", registers });
    this.#commands = new Counter({ name: "dsync_queue_commands_total", help: "Queue commands carried by those entries (commands / entries = the batching factor).", registers });
  }

  refresh(parts: readonly Partition[]): void {
    for (const p of parts) {
      for (const q of p.machine.queues()) {
        const s = p.machine.stats(q);
        for (const k of GAUGE_KEYS) this.#gauges[k].labels(q).set(s[k]);
      }
    }
  }

  enqueued(queue: string, n: number): void {
    if (n > 0) this.#enqueued.labels(queue).inc(n);
  }

  delivered(queue: string, messages: readonly DeliveredMessage[]): void {
    const now = Date.now();
    for (const m of messages) if (m.deliveryCount === 1) this.#latency.labels(queue).observe(Math.max(0, now - m.enqueuedAt) / 1000);
  }

  entry(commands: number): void {
    this.#entries.inc();
    this.#commands.inc(commands);
  }
}
