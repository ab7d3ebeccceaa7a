// Shared by the lock tests. Named *.test.ts only so that it lives among them; it registers no
// test of its own (a test here would run once per importing file).
import assert from "node:assert/strict";
import fc from "fast-check";
import { LockMachine, encodeLockCommand } from "../../src/services/lock/machine/lock-machine.ts";
import { LockInvariantChecker } from "../../src/services/lock/machine/invariants.ts";
import type { LockCommand, LockEvent, LockMachineOptions, LockMode, LockResult } from "../../src/services/lock/machine/types.ts";

/** Distributes Omit over the union so each command keeps its own fields. */
type WithoutNow<T> = T extends unknown ? Omit<T, "now"> & { now?: number } : never;

/**
 * Drives a LockMachine the way Raft does (encoded entries, increasing indices, the leader's
 * clock inside each command), records events and checks every invariant after every apply.
 */
export class Harness {
  readonly m: LockMachine;
  readonly events: LockEvent[] = [];
  readonly checker = new LockInvariantChecker();
  index = 0;
  now = 1_000_000;
  #seq = new Map<number, number>();

  constructor(opts: Omit<LockMachineOptions, "onEvent"> = {}) {
    this.m = new LockMachine({ ...opts, onEvent: (e) => this.events.push(e) });
  }

  /** Applies a command as the next log entry and checks the invariants. */
  apply(cmd: WithoutNow<LockCommand>): LockResult {
    const full = { ...cmd, now: cmd.now ?? this.now } as LockCommand;
    const r = this.m.apply({ index: ++this.index, term: 1, data: encodeLockCommand(full) });
    assert.ok(r !== null);
    this.checker.check(this.m);
    return r;
  }

  /** Takes the events recorded so far. */
  drain(): LockEvent[] {
    return this.events.splice(0);
  }

  open(clientId = "client", ttlMs = 10_000): number {
    const r = this.apply({ op: "session.open", clientId, ttlMs });
    assert.ok(r.ok && r.kind === "session", JSON.stringify(r));
    return r.sessionId;
  }

  nextSeq(sessionId: number): number {
    const s = (this.#seq.get(sessionId) ?? 0) + 1;
    this.#seq.set(sessionId, s);
    return s;
  }

  acquire(
    sessionId: number,
    resource: string,
    mode: LockMode = "exclusive",
    o: { waitMs?: number; ttlMs?: number | null; seq?: number } = {},
  ): LockResult {
    return this.apply({
      op: "acquire",
      sessionId,
      seq: o.seq ?? this.nextSeq(sessionId),
      resource,
      mode,
      ttlMs: o.ttlMs ?? null,
      waitMs: o.waitMs ?? -1,
    });
  }

  /** Acquires and asserts a grant; returns the token. */
  grant(sessionId: number, resource: string, mode: LockMode = "exclusive", o: { ttlMs?: number | null } = {}): number {
    const r = this.acquire(sessionId, resource, mode, { waitMs: 0, ...o });
    assert.ok(r.ok && r.kind === "granted", JSON.stringify(r));
    return r.token;
  }

  /** Acquires and asserts the request is queued; returns the waitId. */
  queue(sessionId: number, resource: string, mode: LockMode = "exclusive", o: { waitMs?: number; ttlMs?: number | null } = {}): number {
    const r = this.acquire(sessionId, resource, mode, o);
    assert.ok(r.ok && r.kind === "queued", JSON.stringify(r));
    return r.waitId;
  }

  release(sessionId: number, resource: string, token: number, seq?: number): LockResult {
    return this.apply({ op: "release", sessionId, seq: seq ?? this.nextSeq(sessionId), resource, token });
  }

  expire(now = this.now): LockResult {
    this.now = Math.max(this.now, now);
    return this.apply({ op: "expire", now });
  }

  keepalive(sessionId: number): LockResult {
    return this.apply({ op: "session.keepalive", sessionId });
  }

  holders(resource: string): number[] {
    return this.m.resource(resource)?.holders.map((h) => h.sessionId) ?? [];
  }

  waiters(resource: string): number[] {
    return this.m.resource(resource)?.waiters.map((w) => w.sessionId) ?? [];
  }
}

/** Asserts a refusal with the given code. */
export function assertRefused(r: LockResult, code: string): void {
  assert.equal(r.ok, false, JSON.stringify(r));
  if (!r.ok) assert.equal(r.code, code, r.message);
}

// ---- random workloads (shared by the determinism, snapshot and model tests) ----


/** A command in terms of "the k-th session opened so far", so it can be generated up front. */
export type AbstractOp =
  | { t: "open"; ttl: number }
  | { t: "keepalive"; slot: number }
  | { t: "close"; slot: number }
  | { t: "expire" }
  | { t: "acquire"; slot: number; res: number; mode: LockMode; waitMs: number; ttl: number | null; retry: boolean }
  | { t: "release"; slot: number; res: number; which: "held" | "wait" | "bogus"; retry: boolean };

/** A random log: long enough for queues, hand-offs, expiries and deadlocks to happen. */
export const stepsArb = (maxLength = 150): fc.Arbitrary<Step[]> => fc.array(stepArb, { minLength: 1, maxLength, size: "max" });

/** One step: the leader's clock moves by `dt` (sometimes backwards: a lagging new leader). */
export interface Step {
  dt: number;
  op: AbstractOp;
}

const slot = fc.nat({ max: 5 });
const res = fc.nat({ max: 2 });

export const stepArb: fc.Arbitrary<Step> = fc.record({
  dt: fc.constantFrom(0, 0, 0, 0, 50, 50, 200, 300, 800, 1500, 4000, -200),
  op: fc.oneof(
    { weight: 2, arbitrary: fc.record({ t: fc.constant("open" as const), ttl: fc.constantFrom(1000, 5000, 20_000, 20_000, 60_000) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant("keepalive" as const), slot }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("close" as const), slot }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant("expire" as const) }) },
    {
      weight: 8,
      arbitrary: fc.record({
        t: fc.constant("acquire" as const),
        slot,
        res,
        mode: fc.constantFrom<LockMode>("exclusive", "shared"),
        waitMs: fc.constantFrom(0, -1, -1, 500, 3000),
        ttl: fc.constantFrom<number | null>(null, null, 1000, 5000),
        retry: fc.constantFrom(false, false, false, true),
      }),
    },
    {
      weight: 5,
      arbitrary: fc.record({
        t: fc.constant("release" as const),
        slot,
        res,
        which: fc.constantFrom<"held" | "wait" | "bogus">("held", "held", "held", "wait", "bogus"),
        retry: fc.constantFrom(false, false, false, true),
      }),
    },
  ),
});

const NAMES = ["a", "b", "c"];

/** What the workload reads to pick arguments (a LockMachine fits). */
export interface WorkloadView {
  resource(name: string): { holders: { sessionId: number; token: number }[]; waiters: { sessionId: number; waitId: number }[] } | null;
  session(id: number): { expiresAt: number } | null;
}

/**
 * Turns abstract steps into concrete commands. Tokens to release are looked up in `view` (any
 * machine or model with the same state), so the commands depend only on the log so far.
 */
export class Workload {
  now = 1_000_000;
  index = 0;
  readonly sessions: number[] = [];
  readonly #seq = new Map<number, number>();
  readonly #last = new Map<number, LockCommand>();

  next(step: Step, view: WorkloadView): { cmd: LockCommand; index: number } {
    this.now = Math.max(0, this.now + step.dt);
    const index = ++this.index;
    const now = this.now;
    const op = step.op;
    // Mostly live sessions (so the commands do something), slot 5 any session, dead ones too.
    const live = this.sessions.filter((id) => (view.session(id)?.expiresAt ?? 0) > now);
    const sid = (k: number) =>
      k < 5 && live.length > 0 ? live[k % live.length]! : this.sessions.length === 0 ? 424242 : this.sessions[k % this.sessions.length]!;
    let cmd: LockCommand;
    switch (op.t) {
      case "open":
        this.sessions.push(index);
        cmd = { op: "session.open", clientId: `c${index}`, ttlMs: op.ttl, now };
        break;
      case "keepalive":
        cmd = { op: "session.keepalive", sessionId: sid(op.slot), now };
        break;
      case "close":
        cmd = { op: "session.close", sessionId: sid(op.slot), now };
        break;
      case "expire":
        cmd = { op: "expire", now };
        break;
      case "acquire":
      case "release": {
        const s = sid(op.slot);
        const last = this.#last.get(s);
        if (op.retry && last !== undefined) {
          cmd = { ...last, now } as LockCommand;
          break;
        }
        const seq = (this.#seq.get(s) ?? 0) + 1;
        this.#seq.set(s, seq);
        const resource = NAMES[op.res]!;
        if (op.t === "acquire") {
          cmd = { op: "acquire", sessionId: s, seq, resource, mode: op.mode, ttlMs: op.ttl, waitMs: op.waitMs, now };
        } else {
          const r = view.resource(resource);
          const token =
            op.which === "held"
              ? (r?.holders.find((x) => x.sessionId === s)?.token ?? 7)
              : op.which === "wait"
                ? (r?.waiters.find((x) => x.sessionId === s)?.waitId ?? 8)
                : (r?.holders[0]?.token ?? 9);
          cmd = { op: "release", sessionId: s, seq, resource, token, now };
        }
        this.#last.set(s, cmd);
        break;
      }
    }
    return { cmd, index };
  }
}
