/**
 * Queue accounting: loss, phantoms, FIFO of first deliveries per producer, redelivery after a
 * confirmed ack; duplicates are counted (at-least-once delivery allows them), not failed.
 * Messages are identified by (queue, body): bodies are unique per producer and sequence number.
 *
 * Pure: no I/O, no timers.
 */
import type { Outcome } from "../history.ts";

export interface EnqueueRecord {
  queue: string;
  producer: string;
  seq: number;
  body: string;
  outcome: Outcome;
  invokeMs: number;
  completeMs: number;
}

export interface DeliveryRecord {
  queue: string;
  consumer: string;
  body: string;
  deliveryCount: number;
  consumeInvokeMs: number;
  receivedMs: number;
}

export interface AckRecord {
  queue: string;
  body: string;
  outcome: Outcome;
  /** The server said this receipt was acked (not stale). */
  acked: boolean;
  invokeMs: number;
  completeMs: number;
}

export interface QueueHistory {
  enqueues: EnqueueRecord[];
  deliveries: DeliveryRecord[];
  acks: AckRecord[];
  deadLettered: { queue: string; body: string }[];
}

export type QueueViolationKind = "lost" | "phantom" | "fifo" | "redelivered-after-ack";

export interface QueueViolation {
  readonly kind: QueueViolationKind;
  readonly message: string;
  readonly ops: (EnqueueRecord | DeliveryRecord | AckRecord | { queue: string; body: string })[];
}

export interface QueueStats {
  enqueues: Record<Outcome, number>;
  /** Distinct (queue, body) delivered at least once. */
  distinctDelivered: number;
  deliveries: number;
  /** Deliveries beyond each message's first. */
  duplicateDeliveries: number;
  /** Deliveries the server itself counted as redeliveries (deliveryCount > 1). */
  redeliveries: number;
  unknownDelivered: number;
  unknownNotDelivered: number;
  deadLettered: number;
  lost: number;
  phantoms: number;
}

export interface QueueResult {
  readonly ok: boolean;
  readonly violations: QueueViolation[];
  readonly stats: QueueStats;
}

const id = (queue: string, body: string): string => `${queue}\u0000${body}`;

/** Checks a queue history; O(n log n). */
export function checkQueue(history: QueueHistory): QueueResult {
  const violations: QueueViolation[] = [];
  const enqueues: Record<Outcome, number> = { ok: 0, fail: 0, unknown: 0 };
  // A body may be recorded more than once only by a workload bug; the most hopeful outcome wins.
  const enq = new Map<string, EnqueueRecord>();
  const rank: Record<Outcome, number> = { ok: 2, unknown: 1, fail: 0 };
  for (const e of history.enqueues) {
    enqueues[e.outcome]++;
    const k = id(e.queue, e.body);
    const prev = enq.get(k);
    if (!prev || rank[e.outcome] > rank[prev.outcome]) enq.set(k, e);
  }
  // First delivery per message: the earliest received (ties: earliest consume).
  const first = new Map<string, DeliveryRecord>();
  let redeliveries = 0;
  for (const d of history.deliveries) {
    if (d.deliveryCount > 1) redeliveries++;
    const k = id(d.queue, d.body);
    const f = first.get(k);
    if (!f || d.receivedMs < f.receivedMs || (d.receivedMs === f.receivedMs && d.consumeInvokeMs < f.consumeInvokeMs)) first.set(k, d);
  }
  const dead = new Set(history.deadLettered.map((d) => id(d.queue, d.body)));

  // (a) No acknowledged enqueue lost; unknown ones are counted either way.
  let lost = 0;
  let unknownDelivered = 0;
  let unknownNotDelivered = 0;
  for (const [k, e] of enq) {
    const seen = first.has(k) || dead.has(k);
    if (e.outcome === "unknown") {
      if (seen) unknownDelivered++;
      else unknownNotDelivered++;
    } else if (e.outcome === "ok" && !seen) {
      lost++;
      violations.push({ kind: "lost", message: `${e.queue}: ${e.body} (${e.producer} #${e.seq}) was acknowledged at ${ms(e.completeMs)} but never delivered nor dead-lettered`, ops: [e] });
    }
  }

  // (b) No phantom: whatever was delivered or dead-lettered was enqueued, and not certainly failed.
  let phantoms = 0;
  const phantom = (k: string, queue: string, body: string, what: DeliveryRecord | { queue: string; body: string }, how: string): void => {
    const e = enq.get(k);
    if (e && e.outcome !== "fail") return;
    phantoms++;
    violations.push({ kind: "phantom", message: `${queue}: ${body} was ${how} but ${e ? `its enqueue certainly failed (${ms(e.completeMs)})` : "never enqueued"}`, ops: e ? [e, what] : [what] });
  };
  for (const [k, d] of first) phantom(k, d.queue, d.body, d, `delivered to ${d.consumer} at ${ms(d.receivedMs)}`);
  for (const d of history.deadLettered) {
    const k = id(d.queue, d.body);
    if (!first.has(k)) phantom(k, d.queue, d.body, d, "dead-lettered");
  }

  checkFifo(enq, first, violations);
  checkAcks(history, violations);

  const stats: QueueStats = {
    enqueues,
    distinctDelivered: first.size,
    deliveries: history.deliveries.length,
    duplicateDeliveries: history.deliveries.length - first.size,
    redeliveries,
    unknownDelivered,
    unknownNotDelivered,
    deadLettered: history.deadLettered.length,
    lost,
    phantoms,
  };
  return { ok: violations.length === 0, violations, stats };
}

/**
 * (c) FIFO per producer per queue: if enqueue i completed before enqueue j was invoked, j's first
 * delivery must not arrive before the consume that first delivered i was even sent.
 * For each j, the witness is the i (completed before j's invoke) whose first-delivering consume
 * was invoked latest: a sweep over i by completion and j by invocation.
 * An i whose first recorded delivery already had deliveryCount > 1 is left out: an earlier
 * delivery of it went unrecorded (a consume whose reply was lost), so its real first delivery
 * time is unknown. An i never delivered is a loss, reported by (a).
 */
function checkFifo(enq: ReadonlyMap<string, EnqueueRecord>, first: ReadonlyMap<string, DeliveryRecord>, out: QueueViolation[]): void {
  const groups = new Map<string, EnqueueRecord[]>();
  for (const e of enq.values()) {
    if (e.outcome === "fail") continue;
    const g = id(e.queue, e.producer);
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    list.push(e);
  }
  for (const list of groups.values()) {
    const byComplete = list.filter((e) => e.completeMs !== Infinity).sort((a, b) => a.completeMs - b.completeMs);
    const byInvoke = [...list].sort((a, b) => a.invokeMs - b.invokeMs);
    let c = 0;
    let witness: { e: EnqueueRecord; d: DeliveryRecord } | null = null;
    for (const j of byInvoke) {
      while (c < byComplete.length && byComplete[c]!.completeMs < j.invokeMs) {
        const i = byComplete[c++]!;
        const d = first.get(id(i.queue, i.body));
        if (d && d.deliveryCount <= 1 && (!witness || d.consumeInvokeMs > witness.d.consumeInvokeMs)) witness = { e: i, d };
      }
      const dj = first.get(id(j.queue, j.body));
      if (!witness || !dj || !(dj.receivedMs < witness.d.consumeInvokeMs)) continue;
      const { e: i, d: di } = witness;
      out.push({
        kind: "fifo",
        message: `${j.queue}: ${j.body} (${j.producer} #${j.seq}, sent ${ms(j.invokeMs)}) was first delivered at ${ms(dj.receivedMs)}, before the consume that first delivered the earlier ${i.body} (#${i.seq}, acknowledged ${ms(i.completeMs)}) was sent at ${ms(di.consumeInvokeMs)}`,
        ops: [i, j, di, dj],
      });
    }
  }
}

/** (d) After an ack confirmed (ok, acked) completes, no consume invoked later may receive the body. */
function checkAcks(history: QueueHistory, out: QueueViolation[]): void {
  const acked = new Map<string, AckRecord>();
  for (const a of history.acks) {
    if (a.outcome !== "ok" || !a.acked) continue;
    const k = id(a.queue, a.body);
    const prev = acked.get(k);
    if (!prev || a.completeMs < prev.completeMs) acked.set(k, a);
  }
  for (const d of history.deliveries) {
    const a = acked.get(id(d.queue, d.body));
    if (!a || !(d.consumeInvokeMs > a.completeMs)) continue;
    out.push({
      kind: "redelivered-after-ack",
      message: `${d.queue}: ${d.body} was delivered again to ${d.consumer} (consume sent ${ms(d.consumeInvokeMs)}, deliveryCount ${d.deliveryCount}) after its ack was confirmed at ${ms(a.completeMs)}`,
      ops: [a, d],
    });
  }
}

function ms(t: number): string {
  return t === Infinity ? "?" : `${t.toFixed(1)}ms`;
}

/** A few report lines: counts, then the first violations with their records. */
export function formatQueue(r: QueueResult, maxViolations = 10): string[] {
  const s = r.stats;
  const lines = [
    `queue: ${r.ok ? "OK" : `VIOLATED (${r.violations.length})`}; enqueues ok ${s.enqueues.ok}, fail ${s.enqueues.fail}, unknown ${s.enqueues.unknown} (${s.unknownDelivered} delivered, ${s.unknownNotDelivered} not)`,
    `  ${s.deliveries} deliveries of ${s.distinctDelivered} messages: ${s.duplicateDeliveries} duplicates, ${s.redeliveries} with deliveryCount > 1; ${s.deadLettered} dead-lettered; lost ${s.lost}, phantoms ${s.phantoms}`,
  ];
  for (const v of r.violations.slice(0, maxViolations)) {
    lines.push(`  ${v.kind}: ${v.message}`);
    // Infinity (an unknown completion) would print as null.
    for (const op of v.ops) lines.push(`    ${JSON.stringify(op, (_, x: unknown) => (x === Infinity ? "∞" : x))}`);
  }
  if (r.violations.length > maxViolations) lines.push(`  … ${r.violations.length - maxViolations} more violations`);
  return lines;
}
