import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertPure, tsFiles } from "../helpers/purity.ts";
import fc from "fast-check";
import { LockMachine, encodeLockCommand } from "../../src/services/lock/machine/lock-machine.ts";
import { LockInvariantChecker } from "../../src/services/lock/machine/invariants.ts";
import type { LockEvent, LockResult } from "../../src/services/lock/machine/types.ts";
import { Harness, Workload, stepsArb, type Step } from "./harness.test.ts";

interface Run {
  m: LockMachine;
  events: LockEvent[];
}

function machine(): Run {
  const events: LockEvent[] = [];
  return { m: new LockMachine({ onEvent: (e) => events.push(e) }), events };
}

test("lock - determinism: two machines fed the same log give identical results, events and snapshots", () => {
  fc.assert(
    fc.property(stepsArb(120), (steps: Step[]) => {
      const a = machine();
      const b = machine();
      const checker = new LockInvariantChecker();
      const w = new Workload();
      for (const step of steps) {
        const { cmd, index } = w.next(step, a.m);
        const data = encodeLockCommand(cmd);
        const ra = a.m.apply({ index, term: 1, data });
        const rb = b.m.apply({ index, term: 1, data: data.slice() });
        assert.deepEqual(rb, ra);
        checker.check(a.m);
      }
      assert.deepEqual(b.events, a.events);
      assert.deepEqual(Buffer.from(b.m.snapshot()), Buffer.from(a.m.snapshot()));
      assert.equal(b.m.nextDeadline(), a.m.nextDeadline());
    }),
    { numRuns: 150 },
  );
});

test("lock - snapshot/restore at any point gives identical subsequent behaviour and bytes", () => {
  fc.assert(
    fc.property(stepsArb(120).filter((s) => s.length >= 2), fc.nat(), (steps: Step[], cut: number) => {
      const k = cut % steps.length;
      const a = machine();
      const w = new Workload();
      const feed = (runs: Run[], part: Step[]) => {
        for (const step of part) {
          const { cmd, index } = w.next(step, runs[0]!.m);
          const data = encodeLockCommand(cmd);
          const results: (LockResult | null)[] = runs.map((r) => r.m.apply({ index, term: 1, data }));
          for (const r of results.slice(1)) assert.deepEqual(r, results[0]);
        }
      };
      feed([a], steps.slice(0, k));
      const image = a.m.snapshot();
      const b = machine();
      b.m.restore(image);
      assert.deepEqual(Buffer.from(b.m.snapshot()), Buffer.from(image), "restore then snapshot is the identity");
      assert.deepEqual(b.m.stats(), a.m.stats());
      assert.equal(b.m.nextDeadline(), a.m.nextDeadline());
      a.events.length = 0;
      feed([a, b], steps.slice(k));
      assert.deepEqual(b.events, a.events);
      assert.deepEqual(Buffer.from(b.m.snapshot()), Buffer.from(a.m.snapshot()));
    }),
    { numRuns: 150 },
  );
});

test("lock - snapshot/restore mid-queue: the restored replica hands off exactly like the original", () => {
  const h = new Harness();
  const [a, b, c, d] = [h.open("a"), h.open("b"), h.open("c"), h.open("d")];
  const ta = h.grant(a, "r", "exclusive", { ttlMs: 4000 });
  h.queue(b, "r", "shared", { waitMs: 2000 });
  h.queue(c, "r", "shared");
  h.queue(d, "r", "exclusive", { ttlMs: 1000 });
  const copy = new Harness();
  copy.m.restore(h.m.snapshot());
  copy.index = h.index;
  copy.now = h.now;
  assert.deepEqual(copy.m.resource("r"), h.m.resource("r"));
  const script = (x: Harness) => {
    const out: unknown[] = [];
    x.now += 1000;
    out.push(x.expire());
    x.now += 1500; // b's wait deadline passes
    out.push(x.expire());
    out.push(x.release(a, "r", ta, 10));
    x.now += 5000;
    out.push(x.expire());
    out.push(x.m.resource("r"), x.drain(), x.m.stats());
    return out;
  };
  h.drain();
  assert.deepEqual(script(copy), script(h));
  assert.deepEqual(Buffer.from(copy.m.snapshot()), Buffer.from(h.m.snapshot()));
});

test("lock - purity: src/services/lock/machine reads no clock, no randomness, does no I/O and no async", () => {
  const dir = join(import.meta.dirname, "../../src/services/lock/machine");
  const files = tsFiles(dir);
  assert.ok(files.length >= 6);
  assertPure(files);
});
