import { test } from "node:test";
import assert from "node:assert/strict";
import { QueueMachine, encodeQueueCommand } from "../../src/services/queue/machine/queue-machine.ts";
import type { DeliveredMessage, QueueCommand, QueueEvent, QueueMachineOptions, QueueResult } from "../../src/services/queue/machine/types.ts";

/** Distributes Omit over a union. */
type DOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A machine fed through encoded log entries, with a clock and an event log. */
export class Harness {
  readonly events: QueueEvent[] = [];
  m: QueueMachine;
  now = 1_000_000;
  index = 0;

  constructor(opts: QueueMachineOptions = {}) {
    this.m = new QueueMachine({ ...opts, onEvent: (e) => this.events.push(e) });
  }

  run(cmd: DOmit<QueueCommand, "now">): QueueResult {
    const full = { ...cmd, now: this.now } as QueueCommand;
    const r = this.m.apply({ index: ++this.index, term: 1, data: encodeQueueCommand(full) });
    assert.ok(r !== null);
    this.m.checkInvariants();
    return r;
  }

  enqueue(queue: string, payloads: (string | { p: string; delayMs?: number; dedupId?: string })[]): number[] {
    const messages = payloads.map((x) => (typeof x === "string" ? { payload: bytes(x) } : { payload: bytes(x.p), delayMs: x.delayMs, dedupId: x.dedupId }));
    const r = this.run({ op: "enqueue", queue, messages });
    assert.equal(r.ok, true, JSON.stringify(r));
    return (r as Extract<QueueResult, { kind: "enqueued" }>).ids;
  }

  consume(queue: string, max = 10, consumerId = "c1", visibilityMs?: number): DeliveredMessage[] {
    const r = this.run({ op: "consume", queue, consumerId, max, visibilityMs });
    assert.equal(r.ok, true, JSON.stringify(r));
    return (r as Extract<QueueResult, { kind: "messages" }>).messages;
  }

  /** Payloads of a consume, as strings. */
  take(queue: string, max = 10, consumerId = "c1", visibilityMs?: number): string[] {
    return this.consume(queue, max, consumerId, visibilityMs).map((m) => text(m.payload));
  }

  ack(queue: string, receipts: string[]): Extract<QueueResult, { kind: "acked" }> {
    const r = this.run({ op: "ack", queue, receipts });
    assert.equal(r.ok, true);
    return r as Extract<QueueResult, { kind: "acked" }>;
  }

  expire(): Extract<QueueResult, { kind: "expired" }> {
    const r = this.run({ op: "expire" });
    assert.equal(r.ok, true);
    return r as Extract<QueueResult, { kind: "expired" }>;
  }

  drain(): QueueEvent[] {
    return this.events.splice(0);
  }
}

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

test("queue - harness: an empty entry is a no-op and indices must increase", () => {
  const h = new Harness();
  assert.equal(h.m.apply({ index: 1, term: 1, data: new Uint8Array() }), null);
  assert.throws(() => h.m.apply({ index: 1, term: 1, data: new Uint8Array() }), /invariant/);
});
