import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Directory, coherenceViolations, type CopyView } from "../../src/services/cache/index.ts";

const NODES = ["n0", "n1", "n2", "n3"];
const KEYS = ["a", "b", "c"];

interface Copy {
  state: "M" | "E" | "S";
  value: number;
  gen: number;
}

/**
 * Drives the directory the way the node-side service does, one request at a time, with the
 * holders' copies and the backing store simulated: a sequential model of the protocol.
 */
class Sim {
  readonly dir = new Directory(1);
  readonly copies = new Map<string, Map<string, Copy>>(NODES.map((n) => [n, new Map()]));
  readonly store = new Map<string, number>();
  /** The value a read must return: the last write. */
  readonly latest = new Map<string, number>();

  read(node: string, key: string): number {
    const mine = this.copies.get(node)!.get(key);
    if (mine) return mine.value;
    const plan = this.dir.planRead(key, [node]);
    let value: number | undefined;
    let kept = false;
    if (plan.fetchFrom) {
      const c = this.copies.get(plan.fetchFrom.node)!.get(key);
      if (c) {
        if (c.state === "M") this.store.set(key, c.value);
        c.state = "S";
        value = c.value;
        kept = true;
      }
    }
    value ??= this.store.get(key) ?? 0;
    for (const g of this.dir.completeRead(key, [node], kept)) {
      assert.notEqual(g.state, "M");
      this.copies.get(g.node)!.set(key, { state: g.state as "E" | "S", value, gen: g.gen });
    }
    return value;
  }

  write(node: string, key: string, value: number): void {
    this.latest.set(key, value);
    const mine = this.copies.get(node)!.get(key);
    if (mine && mine.state !== "S") {
      mine.state = "M";
      mine.value = value;
      return;
    }
    const plan = this.dir.planWrite(key, node);
    for (const h of [...plan.invalidate, ...(plan.fetchFrom ? [plan.fetchFrom] : [])]) this.copies.get(h.node)!.delete(key);
    const g = this.dir.completeWrite(key, node);
    this.copies.get(node)!.set(key, { state: "M", value, gen: g.gen });
  }

  evict(node: string, key: string): void {
    const c = this.copies.get(node)!.get(key);
    if (!c) return;
    this.copies.get(node)!.delete(key);
    if (c.state === "M") {
      assert.ok(this.dir.isOwner(key, node, c.gen), "an M copy's write-back is accepted");
      this.store.set(key, c.value);
    }
    this.dir.removeHolder(key, node, c.gen);
  }

  drop(key: string): void {
    const plan = this.dir.planDrop(key);
    if (plan.fetchFrom) {
      const c = this.copies.get(plan.fetchFrom.node)!.get(key);
      if (c?.state === "M") this.store.set(key, c.value);
    }
    for (const n of NODES) this.copies.get(n)!.delete(key);
    this.dir.forget(key);
  }

  check(): void {
    for (const key of KEYS) {
      const copies: CopyView[] = NODES.flatMap((n) => {
        const c = this.copies.get(n)!.get(key);
        return c ? [{ node: n, state: c.state }] : [];
      });
      assert.deepEqual(coherenceViolations(key, copies, this.dir.holders(key)), []);
    }
  }
}

type Step = { op: "read" | "write" | "evict" | "drop"; node: string; key: string };
const step = fc.record({ op: fc.constantFrom("read", "read", "write", "evict", "drop"), node: fc.constantFrom(...NODES), key: fc.constantFrom(...KEYS) }) as fc.Arbitrary<Step>;

test("directory - random reads, writes, evictions and invalidations keep one writer and fresh reads", () => {
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 200 }), (steps) => {
      const sim = new Sim();
      let next = 1;
      for (const s of steps) {
        if (s.op === "read") assert.equal(sim.read(s.node, s.key), sim.latest.get(s.key) ?? 0, `read of ${s.key} on ${s.node} is the last write`);
        else if (s.op === "write") sim.write(s.node, s.key, next++);
        else if (s.op === "evict") sim.evict(s.node, s.key);
        else sim.drop(s.key);
        sim.check();
      }
    }),
    { numRuns: 300 },
  );
});

test("directory - a failed node leaves every entry; its exclusive keys are reported", () => {
  const d = new Directory(10);
  d.completeRead("a", ["n0"], false); // n0: E
  d.completeRead("b", ["n0", "n1"], false); // both S
  d.completeWrite("c", "n1");
  assert.deepEqual(d.removeNode("n0"), ["a"]);
  assert.deepEqual([...d.holders("b").keys()], ["n1"]);
  assert.equal(d.holders("a").size, 0);
  assert.deepEqual(d.removeNode("n1"), ["c"]);
  assert.equal(d.size, 0);
});

test("directory - a write-back or eviction notice of an older grant is ignored", () => {
  const d = new Directory(1);
  const g1 = d.completeWrite("k", "n0");
  d.completeRead("k", ["n1"], true); // n0 shared its copy: now S
  assert.equal(d.isOwner("k", "n0", g1.gen), false);
  const g2 = d.completeWrite("k", "n0");
  assert.equal(d.isOwner("k", "n0", g1.gen), false, "the write-back of the first grant is stale");
  assert.equal(d.isOwner("k", "n0", g2.gen), true);
  assert.equal(d.removeHolder("k", "n0", g1.gen), false);
  assert.equal(d.removeHolder("k", "n0", g2.gen), true);
  assert.equal(d.size, 0);
});

test("coherence check - flags two exclusive copies, an exclusive beside a shared one, and an unlisted copy", () => {
  assert.equal(coherenceViolations("k", [{ node: "a", state: "M" }, { node: "b", state: "E" }], null).length, 1);
  assert.equal(coherenceViolations("k", [{ node: "a", state: "E" }, { node: "b", state: "S" }], null).length, 1);
  assert.equal(coherenceViolations("k", [{ node: "a", state: "S" }], new Map()).length, 1);
  assert.deepEqual(coherenceViolations("k", [{ node: "a", state: "S" }, { node: "b", state: "S" }], new Map([["a", { state: "S", gen: 1 }], ["b", { state: "S", gen: 2 }], ["c", { state: "S", gen: 3 }]])), []);
});
