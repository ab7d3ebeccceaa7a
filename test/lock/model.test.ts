import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { LockMachine, encodeLockCommand } from "../../src/services/lock/machine/lock-machine.ts";
import { LockInvariantChecker } from "../../src/services/lock/machine/invariants.ts";
import type { LockCommand, LockEvent, LockMode, LockResult } from "../../src/services/lock/machine/types.ts";
import { Workload, stepsArb, type Step } from "./harness.test.ts";

/**
 * A naive model of the lock service: arrays, full scans, a full wait-for relation and a plain
 * DFS. It decides everything itself except which session a deadlock refuses — there it takes
 * the machine's choice and checks that it is legal: the refused session must be the youngest
 * of some cycle through the requester.
 */
interface MHold {
  sessionId: number;
  token: number;
  mode: LockMode;
  expiresAt: number | null;
}
interface MWait {
  sessionId: number;
  waitId: number;
  mode: LockMode;
  deadline: number | null;
  ttl: number | null;
}
interface MRes {
  holders: MHold[];
  waiters: MWait[];
}
interface MSession {
  id: number;
  clientId: string;
  ttlMs: number;
  expiresAt: number;
  lastSeq: number;
  lastResult: LockResult | null;
}

type Bare<T> = T extends { message: string } ? Omit<T, "message"> : T;
const bare = <T extends object>(x: T): Bare<T> => {
  const { message: _m, ...rest } = x as T & { message?: string };
  return rest as Bare<T>;
};

class Model {
  sessions = new Map<number, MSession>();
  res = new Map<string, MRes>();
  events: LockEvent[] = [];
  grants = 0;
  deadlocks = 0;
  expiries = 0;
  index = 0;
  now = 0;

  apply(cmd: LockCommand, index: number, machine: { result: LockResult; events: LockEvent[] }): LockResult {
    this.index = index;
    this.now = cmd.now;
    this.events = [];
    switch (cmd.op) {
      case "session.open": {
        const ttl = Math.min(Math.max(cmd.ttlMs, 1000), 300_000);
        this.sessions.set(index, { id: index, clientId: cmd.clientId, ttlMs: ttl, expiresAt: cmd.now + ttl, lastSeq: -1, lastResult: null });
        return { ok: true, kind: "session", sessionId: index, expiresAt: cmd.now + ttl };
      }
      case "session.keepalive": {
        const s = this.#live(cmd.sessionId);
        if (!s) return { ok: false, code: "SESSION_EXPIRED", message: "" };
        s.expiresAt = Math.max(s.expiresAt, cmd.now + s.ttlMs);
        return { ok: true, kind: "session", sessionId: s.id, expiresAt: s.expiresAt };
      }
      case "session.close": {
        const s = this.sessions.get(cmd.sessionId);
        if (!s) return { ok: false, code: "SESSION_EXPIRED", message: "" };
        for (const n of this.#end(s, false)) this.#promote(n);
        return { ok: true, kind: "session", sessionId: s.id, expiresAt: cmd.now };
      }
      case "expire":
        return this.#expire();
      case "acquire":
      case "release": {
        const s = this.#live(cmd.sessionId);
        if (!s) return { ok: false, code: "SESSION_EXPIRED", message: "" };
        if (cmd.seq <= s.lastSeq) {
          return cmd.seq === s.lastSeq ? s.lastResult! : { ok: false, code: "INVALID_ARGUMENT", message: "" };
        }
        const r = cmd.op === "acquire" ? this.#acquire(s, cmd, machine) : this.#release(s, cmd);
        s.lastSeq = cmd.seq;
        s.lastResult = r;
        return r;
      }
    }
  }

  #live(id: number): MSession | undefined {
    const s = this.sessions.get(id);
    return s !== undefined && this.now < s.expiresAt ? s : undefined;
  }

  #emit(e: LockEvent): void {
    if ((e.kind === "granted" || e.kind === "refused") && e.waitId === this.index) return;
    this.events.push(e);
  }

  #waitOf(sid: number, name: string): MWait | undefined {
    return this.res.get(name)?.waiters.find((w) => w.sessionId === sid);
  }

  #removeWait(name: string, sid: number): MWait {
    const r = this.res.get(name)!;
    const i = r.waiters.findIndex((w) => w.sessionId === sid);
    assert.ok(i >= 0);
    return r.waiters.splice(i, 1)[0]!;
  }

  #grant(name: string, sid: number, mode: LockMode, ttl: number | null, waitId: number | null): MHold {
    const r = this.res.get(name)!;
    const h = { sessionId: sid, token: this.index, mode, expiresAt: ttl === null ? null : this.now + ttl };
    r.holders.push(h);
    this.grants++;
    if (waitId !== null) this.#emit({ kind: "granted", sessionId: sid, waitId, resource: name, mode, token: this.index });
    return h;
  }

  #promote(name: string): void {
    const r = this.res.get(name);
    if (!r) return;
    while (r.waiters.length > 0) {
      const w = r.waiters[0]!;
      if (w.deadline !== null && w.deadline <= this.now) {
        r.waiters.shift();
        this.#emit({ kind: "refused", sessionId: w.sessionId, waitId: w.waitId, resource: name, code: "LOCK_WAIT_TIMEOUT", message: "" });
        continue;
      }
      const ok = r.holders.length === 0 || (w.mode === "shared" && r.holders.every((h) => h.mode === "shared"));
      if (!ok) break;
      r.waiters.shift();
      this.#grant(name, w.sessionId, w.mode, w.ttl, w.waitId);
      if (w.mode === "exclusive") break;
    }
    if (r.holders.length === 0 && r.waiters.length === 0) this.res.delete(name);
  }

  #end(s: MSession, expired: boolean): string[] {
    const names = [...this.res.keys()].filter((n) => {
      const r = this.res.get(n)!;
      return r.holders.some((h) => h.sessionId === s.id) || r.waiters.some((w) => w.sessionId === s.id);
    });
    names.sort();
    for (const n of names) {
      const r = this.res.get(n)!;
      const h = r.holders.find((x) => x.sessionId === s.id);
      if (h) {
        r.holders = r.holders.filter((x) => x !== h);
        if (expired) this.#emit({ kind: "lost", sessionId: s.id, resource: n, token: h.token, reason: "session-expired" });
      }
      const w = r.waiters.find((x) => x.sessionId === s.id);
      if (w) {
        r.waiters = r.waiters.filter((x) => x !== w);
        if (expired) this.#emit({ kind: "refused", sessionId: s.id, waitId: w.waitId, resource: n, code: "SESSION_EXPIRED", message: "" });
      }
    }
    this.sessions.delete(s.id);
    if (expired) {
      this.expiries++;
      this.#emit({ kind: "session-expired", sessionId: s.id });
    }
    return names;
  }

  #expire(): LockResult {
    const now = this.now;
    const affected = new Set<string>();
    const due = [...this.sessions.values()].filter((s) => s.expiresAt <= now).sort((a, b) => a.expiresAt - b.expiresAt || a.id - b.id);
    for (const s of due) for (const n of this.#end(s, true)) affected.add(n);
    const holds: [string, MHold][] = [];
    for (const [n, r] of this.res) for (const h of r.holders) if (h.expiresAt !== null && h.expiresAt <= now) holds.push([n, h]);
    holds.sort(([na, a], [nb, b]) => a.expiresAt! - b.expiresAt! || (na < nb ? -1 : na > nb ? 1 : 0) || a.sessionId - b.sessionId);
    for (const [n, h] of holds) {
      const r = this.res.get(n)!;
      r.holders = r.holders.filter((x) => x !== h);
      this.#emit({ kind: "lost", sessionId: h.sessionId, resource: n, token: h.token, reason: "ttl" });
      affected.add(n);
    }
    const waits: [string, MWait][] = [];
    for (const [n, r] of this.res) for (const w of r.waiters) if (w.deadline !== null && w.deadline <= now) waits.push([n, w]);
    waits.sort(([, a], [, b]) => a.deadline! - b.deadline! || a.waitId - b.waitId);
    for (const [n, w] of waits) {
      this.#removeWait(n, w.sessionId);
      this.#emit({ kind: "refused", sessionId: w.sessionId, waitId: w.waitId, resource: n, code: "LOCK_WAIT_TIMEOUT", message: "" });
      affected.add(n);
    }
    for (const n of [...affected].sort()) this.#promote(n);
    return { ok: true, kind: "expired", sessions: due.map((s) => s.id).sort((a, b) => a - b) };
  }

  /** The full wait-for relation: holders, and conflicting waiters ahead. */
  #edges(): Map<number, Set<number>> {
    const out = new Map<number, Set<number>>();
    for (const r of this.res.values()) {
      r.waiters.forEach((w, i) => {
        const set = out.get(w.sessionId) ?? new Set<number>();
        out.set(w.sessionId, set);
        for (const h of r.holders) if (h.sessionId !== w.sessionId) set.add(h.sessionId);
        for (const a of r.waiters.slice(0, i)) if (a.mode === "exclusive" || w.mode === "exclusive") set.add(a.sessionId);
      });
    }
    return out;
  }

  /** Whether `to` is reachable from `from` using only sessions with id <= maxId. */
  #reaches(edges: Map<number, Set<number>>, from: number, to: number, maxId: number): boolean {
    const seen = new Set<number>();
    const stack = [...(edges.get(from) ?? [])];
    while (stack.length > 0) {
      const v = stack.pop()!;
      if (v > maxId || seen.has(v)) continue;
      if (v === to) return true;
      seen.add(v);
      stack.push(...(edges.get(v) ?? []));
    }
    return false;
  }

  #acquire(s: MSession, cmd: Extract<LockCommand, { op: "acquire" }>, machine: { result: LockResult; events: LockEvent[] }): LockResult {
    const name = cmd.resource;
    const r = this.res.get(name);
    const held = r?.holders.find((h) => h.sessionId === s.id);
    if (held) {
      if (held.mode === cmd.mode) return { ok: true, kind: "granted", resource: name, mode: held.mode, token: held.token, sessionId: s.id };
      return { ok: false, code: "UPGRADE_REFUSED", message: "" };
    }
    const pending = this.#waitOf(s.id, name);
    if (pending) {
      if (pending.mode === cmd.mode) return { ok: true, kind: "queued", resource: name, position: r!.waiters.indexOf(pending), waitId: pending.waitId };
      return { ok: false, code: "INVALID_ARGUMENT", message: "" };
    }
    const ttl = cmd.ttlMs === null || cmd.ttlMs === 0 ? null : cmd.ttlMs;
    const free = !r || (r.waiters.length === 0 && (r.holders.length === 0 || (cmd.mode === "shared" && r.holders.every((h) => h.mode === "shared"))));
    if (free) {
      if (!r) this.res.set(name, { holders: [], waiters: [] });
      const h = this.#grant(name, s.id, cmd.mode, ttl, null);
      return { ok: true, kind: "granted", resource: name, mode: h.mode, token: h.token, sessionId: s.id };
    }
    if (cmd.waitMs === 0) return { ok: false, code: "LOCK_HELD", message: "" };
    r!.waiters.push({ sessionId: s.id, waitId: this.index, mode: cmd.mode, deadline: cmd.waitMs < 0 ? null : this.now + cmd.waitMs, ttl });
    const victims = machine.events.filter((e) => e.kind === "refused" && e.code === "DEADLOCK");
    for (;;) {
      if (!this.#waitOf(s.id, name)) break;
      const edges = this.#edges();
      if (!this.#reaches(edges, s.id, s.id, Infinity)) break;
      this.deadlocks++;
      const v = victims.shift();
      if (v === undefined || v.kind !== "refused") {
        // The machine refused the requester: it must be the youngest of some cycle.
        assert.ok(this.#reaches(edges, s.id, s.id, s.id), `requester ${s.id} is not the youngest of any cycle`);
        assert.ok(!machine.result.ok && machine.result.code === "DEADLOCK", "machine missed a deadlock");
        this.#removeWait(name, s.id);
        return { ok: false, code: "DEADLOCK", message: "" };
      }
      // The machine refused another session's wait: it must be on a cycle through the requester
      // whose members are all older (lower ids), and that wait must be an edge of it.
      assert.ok(v.sessionId > s.id, "refused a session older than the requester");
      assert.ok(this.#reaches(edges, s.id, v.sessionId, v.sessionId) && this.#reaches(edges, v.sessionId, s.id, v.sessionId), `victim ${v.sessionId} is not the youngest of a cycle through ${s.id}`);
      const w = this.#removeWait(v.resource, v.sessionId);
      assert.equal(w.waitId, v.waitId);
      this.#emit({ kind: "refused", sessionId: v.sessionId, waitId: v.waitId, resource: v.resource, code: "DEADLOCK", message: "" });
      this.#promote(v.resource);
    }
    assert.equal(victims.length, 0, "machine refused more sessions than needed");
    const r2 = this.res.get(name)!;
    const h = r2.holders.find((x) => x.sessionId === s.id);
    if (h) return { ok: true, kind: "granted", resource: name, mode: h.mode, token: h.token, sessionId: s.id };
    return { ok: true, kind: "queued", resource: name, position: r2.waiters.findIndex((w) => w.sessionId === s.id), waitId: this.index };
  }

  #release(s: MSession, cmd: Extract<LockCommand, { op: "release" }>): LockResult {
    const name = cmd.resource;
    const r = this.res.get(name);
    const h = r?.holders.find((x) => x.sessionId === s.id && x.token === cmd.token);
    if (r && h) {
      r.holders = r.holders.filter((x) => x !== h);
      this.#promote(name);
      return { ok: true, kind: "released", resource: name };
    }
    const w = this.#waitOf(s.id, name);
    if (r && w && w.waitId === cmd.token) {
      this.#removeWait(name, s.id);
      this.#promote(name);
      return { ok: true, kind: "released", resource: name };
    }
    return { ok: false, code: "NOT_HELD", message: "" };
  }

  view(name: string) {
    const r = this.res.get(name);
    if (!r) return null;
    return {
      mode: r.holders[0]?.mode ?? null,
      holders: r.holders.map((h) => ({ sessionId: h.sessionId, token: h.token, mode: h.mode, expiresAt: h.expiresAt })),
      waiters: r.waiters.map((w) => ({ sessionId: w.sessionId, waitId: w.waitId, mode: w.mode, deadline: w.deadline })),
    };
  }
}

test("lock - model: random commands agree with a naive model, invariants hold after every command", () => {
  const seen = new Map<string, number>();
  fc.assert(
    fc.property(stepsArb(150), (steps: Step[]) => {
      const events: LockEvent[] = [];
      const m = new LockMachine({ onEvent: (e) => events.push(e) });
      const model = new Model();
      const checker = new LockInvariantChecker();
      const w = new Workload();
      for (const step of steps) {
        const { cmd, index } = w.next(step, m);
        events.length = 0;
        const result = m.apply({ index, term: 1, data: encodeLockCommand(cmd) })!;
        checker.check(m);
        const expected = model.apply(cmd, index, { result, events: [...events] });
        const ctx = `at ${index}: ${JSON.stringify(cmd)}`;
        assert.deepEqual(bare(result), bare(expected), ctx);
        assert.deepEqual(events.map(bare), model.events.map(bare), ctx);
        const names = [...model.res.keys()].sort();
        assert.deepEqual(m.resources(), names, ctx);
        for (const n of names) assert.deepEqual(m.resource(n), model.view(n), `${ctx} (${n})`);
        for (const s of model.sessions.values()) assert.equal(m.session(s.id)?.expiresAt, s.expiresAt, ctx);
        const st = m.stats();
        assert.deepEqual(
          [st.sessions, st.grants, st.deadlocks, st.sessionExpiries],
          [model.sessions.size, model.grants, model.deadlocks, model.expiries],
          ctx,
        );
        const key = result.ok ? result.kind : result.code;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        for (const e of events) {
          const ek = `event:${e.kind}${e.kind === "refused" ? `:${e.code}` : ""}`;
          seen.set(ek, (seen.get(ek) ?? 0) + 1);
        }
      }
    }),
    { numRuns: Number(process.env.LOCK_MODEL_RUNS ?? 300) },
  );
  if (process.env.LOCK_MODEL_STATS) console.log(JSON.stringify([...seen].sort()));
  // The generator must actually reach the interesting paths.
  for (const k of ["granted", "queued", "released", "LOCK_HELD", "NOT_HELD", "DEADLOCK", "SESSION_EXPIRED", "UPGRADE_REFUSED", "event:granted", "event:lost", "event:refused:DEADLOCK", "event:refused:LOCK_WAIT_TIMEOUT", "event:session-expired"]) {
    assert.ok((seen.get(k) ?? 0) > 0, `the random workload never produced ${k}: ${JSON.stringify([...seen])}`);
  }
});
