import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertPure, tsFiles } from "../helpers/purity.ts";
import fc from "fast-check";
import { QueueMachine, encodeQueueCommand } from "../../src/services/queue/machine/queue-machine.ts";
import { backoffDelay } from "../../src/services/queue/machine/backoff.ts";
import type { QueueCommand, QueueEvent, QueueResult } from "../../src/services/queue/machine/types.ts";

/** A random step; receipts are chosen from the ones seen so far (by position), fresh or stale. */
type Step =
  | { t: "enqueue"; q: number; n: number; delay: number; dedup: number }
  | { t: "consume"; q: number; c: number; max: number; vis: number }
  | { t: "ack"; q: number; picks: number[] }
  | { t: "nack"; q: number; pick: number; delay: number }
  | { t: "expire" }
  | { t: "release"; c: number }
  | { t: "redrive"; q: number; max: number }
  | { t: "purge"; q: number; dlq: boolean }
  | { t: "tick"; ms: number };

const QUEUES = ["a", "b"];
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.record({ t: fc.constant("enqueue" as const), q: fc.nat(1), n: fc.integer({ min: 1, max: 3 }), delay: fc.constantFrom(0, 0, 0, 50, 200), dedup: fc.integer({ min: -4, max: 3 }) }), weight: 5 },
  { arbitrary: fc.record({ t: fc.constant("consume" as const), q: fc.nat(1), c: fc.nat(2), max: fc.integer({ min: 1, max: 3 }), vis: fc.constantFrom(50, 100, 300) }), weight: 5 },
  { arbitrary: fc.record({ t: fc.constant("ack" as const), q: fc.nat(1), picks: fc.array(fc.nat(20), { maxLength: 3 }) }), weight: 4 },
  { arbitrary: fc.record({ t: fc.constant("nack" as const), q: fc.nat(1), pick: fc.nat(20), delay: fc.constantFrom(-1, 0, 30) }), weight: 2 },
  { arbitrary: fc.constant({ t: "expire" as const }), weight: 3 },
  { arbitrary: fc.record({ t: fc.constant("release" as const), c: fc.nat(2) }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant("redrive" as const), q: fc.nat(1), max: fc.integer({ min: 1, max: 3 }) }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant("purge" as const), q: fc.nat(1), dlq: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant("tick" as const), ms: fc.constantFrom(1, 20, 60, 150, 400) }), weight: 4 },
);
export const stepsArb = (n: number): fc.Arbitrary<Step[]> => fc.array(stepArb, { minLength: n >> 2, maxLength: n, size: "max" });

const BACKOFF = { baseMs: 20, factor: 2, capMs: 200, jitter: 0.3 };
const MAX_DELIVERIES = 3;
const DEDUP_MS = 500;

/** Turns steps into commands, tracking time and the receipts seen. */
export class Workload {
  now = 1000;
  index = 0;
  receipts: { queue: string; receipt: string }[] = [];
  seq = 0;

  next(s: Step): QueueCommand | null {
    const q = QUEUES[s.t === "expire" || s.t === "tick" || s.t === "release" ? 0 : s.q]!;
    // Mostly recent receipts (likely current), sometimes any (likely stale).
    const choose = (i: number) => {
      const n = this.receipts.length;
      if (n === 0) return { queue: q, receipt: "1:1" };
      return this.receipts[i % 3 === 0 ? i % n : n - 1 - (i % Math.min(n, 4))]!;
    };
    const pick = (i: number): string => choose(i).receipt;
    switch (s.t) {
      case "tick":
        this.now += s.ms;
        return null;
      case "enqueue":
        return {
          op: "enqueue",
          queue: q,
          messages: Array.from({ length: s.n }, () => ({
            payload: new Uint8Array([this.seq++ & 255]),
            delayMs: s.delay || undefined,
            dedupId: s.dedup < 0 ? undefined : `d${s.dedup}`,
          })),
          now: this.now,
        };
      case "consume":
        return { op: "consume", queue: q, consumerId: `c${s.c}`, max: s.max, visibilityMs: s.vis, now: this.now };
      case "ack":
        // The queue of the first receipt, unless s.q says otherwise (then maybe the wrong one).
        return { op: "ack", queue: s.picks.length > 0 && s.q === 0 ? choose(s.picks[0]!).queue : q, receipts: s.picks.map(pick), now: this.now };
      case "nack":
        return { op: "nack", queue: s.q === 0 ? choose(s.pick).queue : q, receipt: pick(s.pick), delayMs: s.delay < 0 ? undefined : s.delay, now: this.now };
      case "expire":
        return { op: "expire", now: this.now };
      case "release":
        return { op: "release-consumer", consumerId: `c${s.c}`, now: this.now };
      case "redrive":
        return { op: "dlq.redrive", queue: `${q}.dlq`, max: s.max, now: this.now };
      case "purge":
        return { op: "purge", queue: s.dlq ? `${q}.dlq` : q, dlq: s.dlq, now: this.now };
    }
  }

  see(r: QueueResult): void {
    if (r.ok && r.kind === "messages") for (const m of r.messages) this.receipts.push({ queue: r.queue, receipt: m.receipt });
  }
}

export function setup(m: QueueMachine, w: Workload): void {
  for (const queue of QUEUES) {
    m.applyCommand({ op: "configure", queue, maxDeliveries: MAX_DELIVERIES, backoff: BACKOFF, dedupWindowMs: DEDUP_MS, now: w.now }, ++w.index);
  }
}

/** The naive model: arrays and full scans. */
interface MMsg {
  id: number;
  queue: string;
  state: "ready" | "inflight" | "dead";
  visibleAt: number;
  deadline: number;
  consumer: string;
  receipt: string;
  count: number;
  dlq: string;
}
class Model {
  msgs: MMsg[] = [];
  acked = new Set<number>();
  gone = new Set<number>(); // acked or purged
  dedup = new Map<string, { id: number; at: number }>();
  nextId = 1;
  now = 0;
  /** Per queue: (visibleAt at enqueue, id) of each first delivery, in delivery order. */
  firsts = new Map<string, [number, number][]>();
  firstKey = new Map<number, [number, number]>();

  apply(cmd: QueueCommand, machine: QueueResult): QueueResult {
    this.now = Math.max(this.now, cmd.now);
    const now = this.now;
    const end = (m: MMsg, delay: number | null): number | null => {
      if (m.count >= MAX_DELIVERIES) {
        m.state = "dead";
        m.dlq = `${m.queue}.dlq`;
        return null;
      }
      m.state = "ready";
      m.visibleAt = now + (delay ?? backoffDelay(BACKOFF, m.id, m.count));
      return m.visibleAt;
    };
    const live = (q: string, receipt: string) => this.msgs.find((m) => m.queue === q && m.state === "inflight" && m.receipt === receipt);
    switch (cmd.op) {
      case "enqueue": {
        for (const [k, v] of this.dedup) if (v.at + DEDUP_MS <= now) this.dedup.delete(k);
        const ids: number[] = [];
        const duplicates: boolean[] = [];
        for (const spec of cmd.messages) {
          const key = spec.dedupId ? `${cmd.queue}\u0000${spec.dedupId}` : null;
          const seen = key !== null ? this.dedup.get(key) : undefined;
          if (seen) {
            ids.push(seen.id);
            duplicates.push(true);
            continue;
          }
          const id = this.nextId++;
          const visibleAt = now + (spec.delayMs ?? 0);
          this.msgs.push({ id, queue: cmd.queue, state: "ready", visibleAt, deadline: 0, consumer: "", receipt: "", count: 0, dlq: "" });
          this.firstKey.set(id, [visibleAt, id]);
          if (key !== null) this.dedup.set(key, { id, at: now });
          ids.push(id);
          duplicates.push(false);
        }
        return { ok: true, kind: "enqueued", queue: cmd.queue, ids, duplicates };
      }
      case "consume": {
        const ready = this.msgs
          .filter((m) => m.queue === cmd.queue && m.state === "ready" && m.visibleAt <= now)
          .sort((a, b) => a.visibleAt - b.visibleAt || a.id - b.id)
          .slice(0, cmd.max);
        assert.ok(machine.ok && machine.kind === "messages");
        assert.equal(machine.messages.length, ready.length);
        ready.forEach((m, i) => {
          const got = machine.messages[i]!;
          assert.equal(got.id, m.id);
          m.state = "inflight";
          m.count++;
          m.deadline = now + cmd.visibilityMs!;
          m.consumer = cmd.consumerId;
          m.receipt = got.receipt; // the token's form is the machine's business; uniqueness is checked
          assert.equal(got.deliveryCount, m.count);
          if (m.count === 1 && !this.firstKey.has(-m.id)) {
            this.firstKey.set(-m.id, [0, 0]);
            const list = this.firsts.get(m.queue) ?? [];
            list.push(this.firstKey.get(m.id)!);
            this.firsts.set(m.queue, list);
          }
        });
        return machine;
      }
      case "ack": {
        let acked = 0;
        const outcomes = cmd.receipts.map((receipt) => {
          const m = live(cmd.queue, receipt);
          if (!m) return { receipt, ok: false as const, reason: "x" as "stale" };
          this.msgs.splice(this.msgs.indexOf(m), 1);
          this.acked.add(m.id);
          this.gone.add(m.id);
          acked++;
          return { receipt, ok: true as const, id: m.id };
        });
        // Refusal reasons are the machine's; that a receipt was refused is the model's.
        assert.ok(machine.ok && machine.kind === "acked");
        const mo = machine.outcomes.map((o) => (o.ok ? o : { receipt: o.receipt, ok: false as const, reason: "x" as "stale" }));
        assert.deepEqual(mo, outcomes);
        return { ...machine, acked };
      }
      case "nack": {
        const m = live(cmd.queue, cmd.receipt);
        if (!m) return { ok: false, code: "STALE_RECEIPT", message: (machine as { message: string }).message };
        const at = end(m, cmd.delayMs ?? null);
        return { ok: true, kind: "nacked", queue: cmd.queue, id: m.id, visibleAt: at, deadLettered: at === null };
      }
      case "expire": {
        let redelivered = 0;
        let deadLettered = 0;
        const due = this.msgs.filter((m) => m.state === "inflight" && m.deadline <= now).sort((a, b) => a.deadline - b.deadline || a.id - b.id);
        for (const m of due) if (end(m, null) === null) deadLettered++;
        else redelivered++;
        return { ok: true, kind: "expired", redelivered, deadLettered, more: false };
      }
      case "release-consumer": {
        let redelivered = 0;
        let deadLettered = 0;
        for (const m of this.msgs.filter((x) => x.state === "inflight" && x.consumer === cmd.consumerId)) {
          if (end(m, 0) === null) deadLettered++;
          else redelivered++;
        }
        return { ok: true, kind: "released", consumerId: cmd.consumerId, redelivered, deadLettered };
      }
      case "dlq.redrive": {
        const dead = this.msgs.filter((m) => m.state === "dead" && m.dlq === cmd.queue);
        // DLQ order is death order, which the model does not track: take the machine's choice
        // and check it is legal (dead in that DLQ, distinct, as many as possible).
        assert.ok(machine.ok && machine.kind === "redriven");
        assert.equal(machine.ids.length, Math.min(cmd.max, dead.length));
        for (const id of machine.ids) {
          const m = dead.find((x) => x.id === id);
          assert.ok(m, `redrive of ${id}, which is not dead in ${cmd.queue}`);
          m.state = "ready";
          m.count = 0;
          m.visibleAt = now;
        }
        return machine;
      }
      case "purge": {
        const doomed = this.msgs.filter((m) => (cmd.dlq ? m.state === "dead" && m.dlq === cmd.queue : m.state === "ready" && m.queue === cmd.queue));
        for (const m of doomed) {
          this.msgs.splice(this.msgs.indexOf(m), 1);
          this.gone.add(m.id);
        }
        return { ok: true, kind: "purged", queue: cmd.queue, count: doomed.length };
      }
      case "configure":
        return machine;
      case "batch":
        throw new Error("the model feeds single commands; batches are checked in queue.test.ts");
    }
  }

  /** Compares the machine's placements and gauges with the model's. */
  check(m: QueueMachine): void {
    m.checkInvariants();
    const place = m.placements();
    assert.equal(place.size, this.msgs.length, "every message is in exactly one place");
    for (const x of this.msgs) {
      const p = place.get(x.id);
      assert.ok(p, `message ${x.id} lost`);
      assert.equal(p.state, x.state, `message ${x.id}`);
      assert.equal(p.deliveryCount, x.count);
      if (x.state === "ready") assert.equal(p.visibleAt, x.visibleAt);
    }
    for (const id of this.gone) assert.ok(!place.has(id), `acked/purged message ${id} reappeared`);
    for (const q of QUEUES) {
      const s = m.stats(q);
      assert.equal(s.depth, this.msgs.filter((x) => x.queue === q && x.state === "ready").length);
      assert.equal(s.inFlight, this.msgs.filter((x) => x.queue === q && x.state === "inflight").length);
      assert.equal(m.peekDlq(`${q}.dlq`, 1e6).length, this.msgs.filter((x) => x.state === "dead" && x.dlq === `${q}.dlq`).length);
      // FIFO of first deliveries: in (visibility time at enqueue, id) order.
      const f = this.firsts.get(q) ?? [];
      for (let i = 1; i < f.length; i++) {
        const [a, b] = [f[i - 1]!, f[i]!];
        assert.ok(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]), `first deliveries of ${q} out of order: ${a} before ${b}`);
      }
    }
  }
}

const strip = (r: QueueResult): QueueResult => (r.ok ? r : { ...r, message: "" });

test("queue - model: random workloads match a naive model, with invariants after every command", () => {
  fc.assert(
    fc.property(stepsArb(150), (steps) => {
      const m = new QueueMachine();
      const w = new Workload();
      setup(m, w);
      const model = new Model();
      const receipts = new Set<string>();
      for (const s of steps) {
        const cmd = w.next(s);
        if (cmd === null) continue;
        const r = m.apply({ index: ++w.index, term: 1, data: encodeQueueCommand(cmd) })!;
        w.see(r);
        if (r.ok && r.kind === "messages") for (const x of r.messages) {
          assert.ok(!receipts.has(x.receipt), "receipts are unique");
          receipts.add(x.receipt);
        }
        const expected = model.apply(cmd, r);
        assert.deepEqual(strip(r), strip(expected), JSON.stringify(cmd, (_k, v) => (v instanceof Uint8Array ? [...v] : v)));
        model.check(m);
      }
    }),
    { numRuns: 200 },
  );
});

interface Run {
  m: QueueMachine;
  events: QueueEvent[];
  results: QueueResult[];
}
const machine = (): Run => {
  const events: QueueEvent[] = [];
  return { m: new QueueMachine({ onEvent: (e) => events.push(e) }), events, results: [] };
};

test("queue - determinism: two machines fed the same log give identical results, events and snapshots", () => {
  fc.assert(
    fc.property(stepsArb(150), (steps) => {
      const [a, b] = [machine(), machine()];
      const w = new Workload();
      setup(a.m, w);
      w.index = 0;
      setup(b.m, w);
      for (const s of steps) {
        const cmd = w.next(s);
        if (cmd === null) continue;
        const data = encodeQueueCommand(cmd);
        const index = ++w.index;
        const ra = a.m.apply({ index, term: 1, data })!;
        const rb = b.m.apply({ index, term: 1, data: data.slice() })!;
        w.see(ra);
        assert.deepEqual(rb, ra);
      }
      assert.deepEqual(b.events, a.events);
      assert.deepEqual(Buffer.from(b.m.snapshot()), Buffer.from(a.m.snapshot()));
      assert.equal(b.m.nextDeadline(), a.m.nextDeadline());
    }),
    { numRuns: 100 },
  );
});

test("queue - snapshot/restore mid-flight gives identical subsequent behaviour and bytes", () => {
  fc.assert(
    fc.property(stepsArb(150).filter((s) => s.length >= 2), fc.nat(), (steps, cut) => {
      const k = cut % steps.length;
      const a = machine();
      const w = new Workload();
      setup(a.m, w);
      const feed = (runs: Run[], part: Step[]) => {
        for (const s of part) {
          const cmd = w.next(s);
          if (cmd === null) continue;
          const data = encodeQueueCommand(cmd);
          const index = ++w.index;
          const rs = runs.map((r) => r.m.apply({ index, term: 1, data })!);
          for (const r of rs.slice(1)) assert.deepEqual(r, rs[0]);
          w.see(rs[0]!);
          for (const r of runs) assert.equal(r.m.nextDeadline(), runs[0]!.m.nextDeadline());
        }
      };
      feed([a], steps.slice(0, k));
      const image = a.m.snapshot();
      const b = machine();
      b.m.restore(image);
      b.m.checkInvariants();
      assert.deepEqual(Buffer.from(b.m.snapshot()), Buffer.from(image), "restore then snapshot is byte-identical");
      a.events.length = 0;
      feed([a, b], steps.slice(k));
      assert.deepEqual(b.events, a.events);
      assert.deepEqual(Buffer.from(b.m.snapshot()), Buffer.from(a.m.snapshot()));
      b.m.checkInvariants();
    }),
    { numRuns: 150 },
  );
});

test("queue - purity: src/services/queue/machine reads no clock, no randomness, does no I/O and no async", () => {
  const dir = join(import.meta.dirname, "../../src/services/queue/machine");
  const files = tsFiles(dir);
  assert.ok(files.length >= 7);
  // The helpers the queue and lock machines share must be just as pure.
  assertPure([...files, ...tsFiles(join(dir, "../../shared"))], [[/\bperformance\b|\bcrypto\b/, "performance/crypto"]]);
});
