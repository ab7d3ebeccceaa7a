import { test } from "node:test";
import assert from "node:assert/strict";
import { Prng } from "../sim/prng.ts";
import type { Outcome, RegisterOp } from "./history.ts";
import { checkLinearizable, formatLinearizable } from "./checkers/linearizable.ts";
import { checkLocks, formatLocks, type FencedWrite, type LockHistory, type LockHold } from "./checkers/locks.ts";
import { checkQueue, formatQueue, type AckRecord, type DeliveryRecord, type EnqueueRecord, type QueueHistory } from "./checkers/queue.ts";

// ---------------------------------------------------------------------------------------------
// Register history builders.

/** Hand-written histories: ids follow the call order of the builder. */
class Reg {
  readonly ops: RegisterOp[] = [];
  w(client: string, key: string, value: string, inv: number, comp: number, outcome: Outcome = "ok"): this {
    this.ops.push({ id: this.ops.length, client, f: "write", key, input: value, output: outcome === "ok" ? null : undefined, outcome, invokeMs: inv, completeMs: outcome === "unknown" ? Infinity : comp });
    return this;
  }
  d(client: string, key: string, inv: number, comp: number, outcome: Outcome = "ok"): this {
    this.ops.push({ id: this.ops.length, client, f: "delete", key, input: null, output: outcome === "ok" ? null : undefined, outcome, invokeMs: inv, completeMs: outcome === "unknown" ? Infinity : comp });
    return this;
  }
  r(client: string, key: string, value: string | null, inv: number, comp: number, outcome: Outcome = "ok"): this {
    this.ops.push({ id: this.ops.length, client, f: "read", key, input: null, output: outcome === "ok" ? value : undefined, outcome, invokeMs: inv, completeMs: outcome === "unknown" ? Infinity : comp });
    return this;
  }
  inv(client: string, key: string, inv: number, comp: number): this {
    this.ops.push({ id: this.ops.length, client, f: "invalidate", key, input: null, output: null, outcome: "ok", invokeMs: inv, completeMs: comp });
    return this;
  }
}

interface SimOptions {
  readonly seed: number;
  readonly ops: number;
  readonly keys: number;
  readonly clients: number;
  /** Share of writes / deletes / invalidates; the rest are reads. */
  readonly write: number;
  readonly del: number;
  readonly invalidate: number;
  /** Chance a write/delete/read ends unknown, or fails. */
  readonly unknown: number;
  readonly fail: number;
}

/**
 * A real register driven by concurrent clients: every op takes effect at a random point within
 * its window (an unknown one at any later time, or never), outputs come from applying the ops in
 * that order, so the history is linearizable by construction.
 */
function simulate(o: SimOptions): RegisterOp[] {
  const rng = new Prng(o.seed);
  type Draft = { client: string; f: RegisterOp["f"]; key: string; value: string | null; inv: number; comp: number; at: number | null; outcome: Outcome; out: string | null };
  const drafts: Draft[] = [];
  const perClient = Math.ceil(o.ops / o.clients);
  for (let c = 0; c < o.clients; c++) {
    let t = rng.float() * 5;
    let gen = 0;
    for (let k = 0; k < perClient && drafts.length < o.ops; k++) {
      const client = `c${c}.${gen}`;
      const p = rng.float();
      const f: RegisterOp["f"] = p < o.write ? "write" : p < o.write + o.del ? "delete" : p < o.write + o.del + o.invalidate ? "invalidate" : "read";
      const key = `k${rng.nextInt(o.keys)}`;
      const dur = 0.2 + rng.float() * 8;
      const inv = t;
      const comp = t + dur;
      const q = rng.float();
      const outcome: Outcome = f === "invalidate" ? "ok" : q < o.unknown ? "unknown" : q < o.unknown + o.fail ? "fail" : "ok";
      let at: number | null = inv + rng.float() * dur;
      if (outcome === "fail") at = null;
      if (outcome === "unknown") at = rng.chance(0.3) ? null : rng.chance(0.5) ? at : inv + rng.float() * 60;
      drafts.push({ client, f, key, value: f === "write" ? `${client}#${k}` : null, inv, comp, at, outcome, out: null });
      // After an unknown outcome the logical client is a new process, as in the workloads.
      if (outcome === "unknown") gen++;
      t = comp + rng.float() * 2;
    }
  }
  const reg = new Map<string, string | null>();
  for (const d of drafts.filter((x) => x.at !== null).sort((a, b) => a.at! - b.at!)) {
    if (d.f === "write") reg.set(d.key, d.value);
    else if (d.f === "delete") reg.set(d.key, null);
    else if (d.f === "read") d.out = reg.get(d.key) ?? null;
  }
  drafts.sort((a, b) => a.inv - b.inv);
  return drafts.map((d, id): RegisterOp => {
    const completeMs = d.outcome === "unknown" ? Infinity : d.comp;
    const base = { id, client: d.client, key: d.key, outcome: d.outcome, invokeMs: d.inv, completeMs };
    const ok = d.outcome === "ok";
    if (d.f === "write") return { ...base, f: "write", input: d.value!, output: ok ? null : undefined };
    if (d.f === "delete") return { ...base, f: "delete", input: null, output: ok ? null : undefined };
    if (d.f === "invalidate") return { ...base, f: "invalidate", input: null, output: null };
    return { ...base, f: "read", input: null, output: ok ? d.out : undefined };
  });
}

/**
 * Makes one ok read certainly stale: it now returns v, whose (ok) write completed before another
 * ok write or delete of the key began, which itself completed before the read began.
 */
function corruptStale(ops: RegisterOp[], rng: Prng): RegisterOp | null {
  const mutators = ops.filter((o) => (o.f === "write" || o.f === "delete") && o.outcome === "ok");
  const candidates: { read: RegisterOp; value: string }[] = [];
  for (const read of ops) {
    if (read.f !== "read" || read.outcome !== "ok") continue;
    for (const w of mutators) {
      if (w.f !== "write" || w.key !== read.key || w.input === read.output || !(w.completeMs < read.invokeMs)) continue;
      if (mutators.some((m) => m.key === read.key && m !== w && m.invokeMs > w.completeMs && m.completeMs < read.invokeMs)) candidates.push({ read, value: w.input });
    }
    if (candidates.length > 200) break;
  }
  if (candidates.length === 0) return null;
  const c = rng.pick(candidates);
  c.read.output = c.value;
  return c.read;
}

/**
 * An independent brute force for tiny histories: tries every order of the ops that respects
 * real time (an unknown write or delete may also never happen).
 */
function bruteForce(history: readonly RegisterOp[]): boolean {
  const byKey = new Map<string, RegisterOp[]>();
  for (const o of history) {
    if (o.outcome === "fail" || o.f === "invalidate" || (o.f === "read" && o.outcome !== "ok")) continue;
    byKey.set(o.key, [...(byKey.get(o.key) ?? []), o]);
  }
  for (const ops of byKey.values()) {
    const placed = new Array<boolean>(ops.length).fill(false);
    const go = (state: string | null, left: number): boolean => {
      if (ops.every((o, i) => placed[i] || o.completeMs === Infinity)) return true;
      if (left === 0) return false;
      for (let i = 0; i < ops.length; i++) {
        const x = ops[i]!;
        if (placed[i] || ops.some((y, j) => !placed[j] && j !== i && y.completeMs < x.invokeMs)) continue;
        if (x.f === "read" && (x.output ?? null) !== state) continue;
        placed[i] = true;
        const ok = go(x.f === "write" ? x.input : x.f === "delete" ? null : state, left - 1);
        placed[i] = false;
        if (ok) return true;
      }
      return false;
    };
    if (!go(null, ops.length)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

test("chaos checkers - behaviour: linearizable register histories pass", () => {
  // Sequential.
  const seq = new Reg().r("a", "x", null, 0, 1).w("a", "x", "v1", 2, 3).r("b", "x", "v1", 4, 5).d("a", "x", 6, 7).r("b", "x", null, 8, 9).inv("c", "x", 9, 10).r("c", "x", null, 11, 12);
  assert.equal(checkLinearizable(seq.ops).ok, true);
  // Concurrent ops linearizable in some order: v2's write overlaps v1's; reads see v2 then v1.
  const conc = new Reg().w("a", "x", "v1", 0, 100).w("b", "x", "v2", 10, 90).r("c", "x", "v2", 20, 30).r("c", "x", "v1", 95, 110).r("d", "x", "v1", 105, 120);
  assert.equal(checkLinearizable(conc.ops).ok, true);
  // A read concurrent with a write may see either value.
  const either = new Reg().w("a", "x", "v1", 0, 1).w("a", "x", "v2", 10, 20).r("b", "x", "v1", 12, 14).r("c", "x", "v2", 13, 15).r("d", "x", "v2", 21, 22);
  assert.equal(checkLinearizable(either.ops).ok, true);
  // Failed ops did not happen; unknown reads observe nothing; other keys are independent.
  const failed = new Reg().w("a", "x", "v1", 0, 1).w("a", "x", "v2", 2, 3, "fail").r("b", "x", "v1", 4, 5).r("b", "x", null, 4, 5, "unknown").w("c", "y", "u1", 0, 1).r("c", "y", "u1", 6, 7);
  const r = checkLinearizable(failed.ops);
  assert.equal(r.ok, true);
  assert.equal(r.keys, 2);
});

test("chaos checkers - behaviour: unknown writes may take effect late or never", () => {
  // Late: read v1, then (long after the unknown write was sent) its value, twice.
  const late = new Reg().w("a", "x", "v1", 0, 10).w("b", "x", "vU", 5, 0, "unknown").r("c", "x", "v1", 20, 30).r("c", "x", "vU", 40, 50).r("d", "x", "vU", 60, 70);
  assert.equal(checkLinearizable(late.ops).ok, true);
  // Never: every later read still returns v1.
  const never = new Reg().w("a", "x", "v1", 0, 10).w("b", "x", "vU", 5, 0, "unknown").r("c", "x", "v1", 20, 30).r("c", "x", "v1", 40, 50);
  assert.equal(checkLinearizable(never.ops).ok, true);
  // An unknown delete, late or never.
  const delLate = new Reg().w("a", "x", "v1", 0, 10).d("b", "x", 5, 0, "unknown").r("c", "x", "v1", 20, 30).r("c", "x", null, 40, 50);
  assert.equal(checkLinearizable(delLate.ops).ok, true);
  const delNever = new Reg().w("a", "x", "v1", 0, 10).d("b", "x", 5, 0, "unknown").r("c", "x", "v1", 20, 30);
  assert.equal(checkLinearizable(delNever.ops).ok, true);
  // But once seen, it cannot be undone by the older value: vU came after v1 (v1 completed at 10
  // and the read of vU began later, so vU's effect was after v1's).
  const flip = new Reg().w("a", "x", "v1", 0, 10).w("b", "x", "vU", 5, 0, "unknown").r("c", "x", "vU", 20, 30).r("c", "x", "v1", 40, 50);
  const r = checkLinearizable(flip.ops);
  assert.equal(r.ok, false);
  assert.equal(r.violations[0]!.kind, "read-inversion");
  assert.deepEqual(r.violations[0]!.ops.map((o) => o.id), [0, 1, 2, 3]);
});

test("chaos checkers - behaviour: a stale follower read is caught and explained", () => {
  const h = new Reg().w("a", "x", "v17", 1500, 1510.4).w("b", "x", "v18", 1511, 1520.1).r("c3", "x", "v17", 1523.2, 1524).r("d", "x", "v18", 1525, 1526);
  for (const fastPath of [true, false]) {
    const r = checkLinearizable(h.ops, { fastPath });
    assert.equal(r.ok, false);
    assert.equal(r.violations.length, 1);
    const v = r.violations[0]!;
    assert.equal(v.kind, "stale-read");
    assert.equal(v.key, "x");
    assert.deepEqual(v.ops.map((o) => o.id), [0, 1, 2]);
    assert.match(v.message, /read by c3 at 1523\.2ms returned v17 but write v18 .* completed at 1520\.1ms before the read began/);
    assert.ok(formatLinearizable(r).some((l) => l.includes("stale-read")));
  }
  // A read of null after a completed write with no delete in reach; a read from the future;
  // values nobody wrote, that a failed write wrote, or that belong to another key.
  const nul = checkLinearizable(new Reg().w("a", "x", "v1", 0, 1).r("b", "x", null, 2, 3).ops);
  assert.equal(nul.violations[0]?.kind, "null-read");
  const fut = checkLinearizable(new Reg().r("b", "x", "v1", 0, 1).w("a", "x", "v1", 2, 3).ops);
  assert.equal(fut.violations[0]?.kind, "future-read");
  for (const h2 of [new Reg().r("b", "x", "nope", 0, 1), new Reg().w("a", "x", "v1", 0, 1, "fail").r("b", "x", "v1", 2, 3), new Reg().w("a", "y", "v1", 0, 1).r("b", "x", "v1", 2, 3)]) {
    const r = checkLinearizable(h2.ops);
    assert.equal(r.ok, false);
    assert.equal(r.violations[0]!.kind, "unknown-value");
  }
});

test("chaos checkers - behaviour: violations no pattern shows are found by both engines and shrunk", () => {
  // Read inversion: b then a, though a's write completed before the first read began.
  const h = new Reg()
    .w("w1", "x", "a", 0, 5)
    .w("w2", "x", "b", 1, 50)
    .r("r1", "x", "b", 10, 12)
    .r("r2", "x", "a", 14, 16)
    // Noise the shrinker should drop: another key, and later ops on x.
    .w("n", "y", "y1", 0, 3)
    .r("n", "y", "y1", 4, 6)
    .w("w3", "x", "c", 60, 61)
    .r("r3", "x", "c", 62, 63);
  for (const engine of ["auto", "search"] as const) {
    const r = checkLinearizable(h.ops, { engine });
    assert.equal(r.ok, false);
    assert.deepEqual(r.violations.map((v) => v.key), ["x"]);
    const v = r.violations[0]!;
    assert.equal(v.kind, "read-inversion");
    assert.deepEqual(v.ops.map((o) => o.id), [0, 1, 2, 3]);
  }
  // Null reads and deletes: the null read r1 has a delete to read from (d, concurrent with write
  // a), but then d comes after write a, and r2 reading a after r1 needs write a after d. Only the
  // choice of where a null read's value came from shows it; the noise is shrunk away.
  const nulls = new Reg().w("w", "x", "a", 0, 10).d("d", "x", 0, 10).r("r1", "x", null, 11, 12).r("r2", "x", "a", 13, 14).r("r3", "x", null, 15, 16).w("w2", "x", "b", 17, 18).r("r4", "x", "b", 19, 20);
  for (const engine of ["auto", "search"] as const) {
    const r = checkLinearizable(nulls.ops, { engine });
    assert.equal(r.ok, false, `engine ${engine}`);
    const v = r.violations[0]!;
    assert.deepEqual(v.ops.map((o) => o.id), [0, 1, 2, 3]);
    assert.match(v.message, /read by r1 at 11\.0ms returned null, but no delete or initial value can explain it: if it read from delete by d, that and write a would each have to come before the other/);
  }
  // Two deletes either null read could come from, on either side of a write: the first guess
  // (the later delete for the first read) fails, the other assignment works.
  const two = new Reg().d("d1", "x", 0, 10).w("w", "x", "a", 0, 30).d("d2", "x", 5, 30).r("r1", "x", null, 11, 12).r("r2", "x", "a", 21, 22).r("r3", "x", null, 31, 32);
  assert.equal(checkLinearizable(two.ops).ok, true);
  assert.equal(checkLinearizable(two.ops, { engine: "search" }).ok, true);
  // Without d2 there is nothing for r3 to read.
  const one = two.ops.filter((o) => o.client !== "d2");
  assert.equal(checkLinearizable(one).ok, false);
  assert.equal(checkLinearizable(one, { engine: "search" }).ok, false);
  // A budget too small to decide is reported, never taken for a pass or a violation.
  const t = checkLinearizable(new Reg().w("a", "x", "v1", 0, 10).w("b", "x", "v2", 1, 11).r("c", "x", "v2", 2, 12).r("c", "x", "v1", 13, 14).ops, { maxStepsPerKey: 2, fastPath: false, engine: "search" });
  assert.deepEqual(t.timedOut, ["x"]);
  assert.equal(t.ok, false);
  assert.equal(t.violations.length, 0);
  assert.equal(t.perKey[0]!.verdict, "timeout");
});

test("chaos checkers - behaviour: both engines agree with a brute force on 1,500 small random histories", () => {
  const rng = new Prng(7);
  const N = 1_500;
  let bad = 0;
  for (let n = 0; n < N; n++) {
    const h = new Reg();
    const written: string[] = [];
    const clients = 2 + rng.nextInt(3);
    for (let c = 0; c < clients; c++) {
      let t = rng.nextInt(3);
      for (let k = 0; k < 2 + rng.nextInt(2); k++) {
        const inv = t;
        const comp = t + 1 + rng.nextInt(6);
        const p = rng.float();
        const outcome: Outcome = rng.chance(0.15) ? "unknown" : rng.chance(0.1) ? "fail" : "ok";
        if (p < 0.45) {
          const v = `v${n}.${written.length}`;
          written.push(v);
          h.w(`c${c}`, "x", v, inv, comp, outcome);
        } else if (p < 0.55) h.d(`c${c}`, "x", inv, comp, outcome);
        else h.r(`c${c}`, "x", rng.chance(0.25) || written.length === 0 ? null : rng.pick(written), inv, comp, outcome === "fail" ? "ok" : outcome);
        t = comp + rng.nextInt(3);
        if (outcome === "unknown") break;
      }
    }
    const want = bruteForce(h.ops);
    if (!want) bad++;
    for (const [fastPath, engine] of [[true, "auto"], [false, "auto"], [false, "search"]] as const) {
      const got = checkLinearizable(h.ops, { fastPath, engine });
      assert.equal(got.ok, want, `history ${n} (fastPath ${fastPath}, ${engine}): ${JSON.stringify(h.ops)}\n${formatLinearizable(got).join("\n")}`);
      // The explaining set of a violation is itself non-linearizable.
      for (const v of got.violations) assert.equal(bruteForce(v.ops), false, `history ${n}: explaining set passes: ${JSON.stringify(h.ops)}\n${formatLinearizable(got).join("\n")}`);
    }
  }
  // Both verdicts must be well represented for the comparison to mean anything.
  assert.ok(bad > N / 10 && bad < (N * 9) / 10, `non-linearizable: ${bad} of ${N}`);
});

test("chaos checkers - behaviour: random linearizable histories pass; one certainly stale read is caught", () => {
  let corrupted = 0;
  for (let seed = 1; seed <= 40; seed++) {
    // Up to 8 clients; from few deletes to many (null reads then have several possible sources).
    const o: SimOptions = { seed, ops: 300, keys: 1 + (seed % 3), clients: 2 + (seed % 7), write: 0.4, del: 0.05 + (seed % 4) * 0.08, invalidate: 0.05, unknown: 0.05, fail: 0.03 };
    const ops = simulate(o);
    for (const [fastPath, engine] of [[true, "auto"], [false, "auto"], [false, "search"]] as const) {
      const r = checkLinearizable(ops, { fastPath, engine });
      assert.equal(r.ok, true, `seed ${seed} fastPath ${fastPath} ${engine}:\n${formatLinearizable(r).join("\n")}`);
    }
    const read = corruptStale(ops, new Prng(seed * 31));
    if (!read) continue;
    corrupted++;
    for (const [fastPath, engine] of [[true, "auto"], [false, "auto"], [false, "search"]] as const) {
      const r = checkLinearizable(ops, { fastPath, engine });
      assert.equal(r.ok, false, `seed ${seed} fastPath ${fastPath} ${engine}: stale read #${read.id} not caught`);
      assert.equal(r.violations.length, 1);
      const v = r.violations[0]!;
      assert.equal(v.key, read.key);
      // Everything else is linearizable, so any failing subset must contain the corrupted read.
      assert.ok(v.ops.includes(read), `seed ${seed}: explaining set lacks #${read.id}: ${v.message}`);
      assert.ok(v.ops.length <= 6, `seed ${seed}: explaining set of ${v.ops.length} ops`);
    }
  }
  assert.ok(corrupted >= 30, `only ${corrupted} histories could be corrupted`);
});

test("chaos checkers - behaviour: 5,000 ops over 8 keys and 16 clients check quickly", (t) => {
  const o: SimOptions = { seed: 2024, ops: 5_000, keys: 8, clients: 16, write: 0.4, del: 0.05, invalidate: 0.05, unknown: 0.03, fail: 0.02 };
  const ops = simulate(o);
  let t0 = performance.now();
  const r = checkLinearizable(ops);
  const fast = performance.now() - t0;
  assert.deepEqual(r.timedOut, []);
  assert.equal(r.ok, true);
  t0 = performance.now();
  const s = checkLinearizable(ops, { fastPath: false, engine: "search" });
  const searchOnly = performance.now() - t0;
  assert.deepEqual(s.timedOut, []);
  assert.equal(s.ok, true);
  // One key with 4,000 ops and 16 concurrent clients.
  const one = simulate({ ...o, seed: 99, ops: 4_000, keys: 1 });
  t0 = performance.now();
  const u = checkLinearizable(one, { fastPath: false });
  const oneKey = performance.now() - t0;
  assert.deepEqual(u.timedOut, []);
  assert.equal(u.ok, true);
  // And a violation in it, found by the search alone and shrunk.
  const read = corruptStale(one, new Prng(5));
  assert.ok(read);
  t0 = performance.now();
  const v = checkLinearizable(one, { fastPath: false });
  const shrinkMs = performance.now() - t0;
  assert.deepEqual(v.timedOut, []);
  assert.equal(v.ok, false);
  assert.ok(v.violations[0]!.ops.includes(read));
  const line = `5,000 ops/8 keys/16 clients: ${fast.toFixed(0)} ms (Wing–Gong search alone: ${searchOnly.toFixed(0)} ms, ${s.stats.steps} steps); 4,000 ops/1 key/16 clients: ${oneKey.toFixed(0)} ms; the same with one stale read, no pattern checks, decided and shrunk to ${v.violations[0]!.ops.length} ops: ${shrinkMs.toFixed(0)} ms`;
  t.diagnostic(line);
  console.log(`# ${line}`);
});

// ---------------------------------------------------------------------------------------------
// Locks.

function hold(client: string, token: number, acquireInvokeMs: number, grantMs: number, releaseSendMs: number | null, releaseConfirmed = true, resource = "r"): LockHold {
  return { client, resource, token, acquireInvokeMs, grantMs, releaseSendMs, releaseConfirmed };
}

function fenced(client: string, token: number, atMs: number, accepted: boolean, duringConfirmedHold: boolean, resource = "r"): FencedWrite {
  return { client, resource, token, atMs, accepted, duringConfirmedHold };
}

test("chaos checkers - behaviour: lock histories", () => {
  // Valid: queued acquires, increasing tokens; c lost its lock (pause), d took it, c's late write
  // was refused by the fenced resource; another resource is independent.
  const good: LockHistory = {
    holds: [
      hold("a", 1, 0, 1, 10),
      hold("b", 2, 5, 11, 20),
      hold("c", 3, 15, 21, null, false),
      hold("d", 4, 22, 40, 50),
      hold("e", 1, 0, 2, 30, true, "s"),
    ],
    writes: [fenced("a", 1, 2, true, true), fenced("b", 2, 12, true, true), fenced("c", 3, 22, true, false), fenced("d", 4, 41, true, true), fenced("c", 3, 45, false, false), fenced("e", 1, 3, true, true, "s")],
    acquires: { ok: 5, fail: 1, unknown: 0 },
  };
  const r = checkLocks(good);
  assert.equal(r.ok, true, formatLocks(r).join("\n"));
  assert.equal(r.stats.holds, 5);
  assert.equal(r.stats.confirmedHolds, 4);
  assert.equal(r.stats.refusedStaleWrites, 1);
  assert.equal(r.stats.maxConcurrentConfirmed, 1);
  assert.equal(r.stats.resources, 2);
  assert.equal(formatLocks(r).length, 2);

  // A grant without waiting for commit: two confirmed holds overlap.
  const overlap = checkLocks({ ...good, holds: [hold("a", 1, 0, 1, 10), hold("b", 2, 0, 5, 15)] });
  assert.equal(overlap.ok, false);
  assert.deepEqual(overlap.violations.map((v) => v.kind), ["overlap"]);
  assert.equal(overlap.stats.maxOverlapMs, 5);
  assert.equal(overlap.stats.maxConcurrentConfirmed, 2);
  // A token going backwards in real time (no overlap: b asked after a was granted).
  const back = checkLocks({ ...good, holds: [hold("a", 7, 0, 1, 10), hold("b", 6, 5, 11, 20)] });
  assert.deepEqual(back.violations.map((v) => v.kind), ["token-order"]);
  assert.deepEqual(back.violations[0]!.ops.map((h) => h.client), ["a", "b"]);
  // The same token to two concurrent requests.
  const reused = checkLocks({ ...good, holds: [hold("a", 3, 0, 2, null, false), hold("b", 3, 1, 4, null, false)] });
  assert.deepEqual(reused.violations.map((v) => v.kind), ["token-reused"]);
  // A write under a certainly held lock refused: a higher token was out while it was held.
  const refused = checkLocks({ ...good, writes: [fenced("x", 9, 1, true, false), fenced("a", 1, 2, false, true)] });
  assert.deepEqual(refused.violations.map((v) => v.kind), ["refused-under-hold"]);
  // A fenced resource that let a lower token in after a higher one.
  const order = checkLocks({ ...good, writes: [fenced("b", 2, 12, true, false), fenced("a", 1, 13, true, false)] });
  assert.deepEqual(order.violations.map((v) => v.kind), ["fenced-order"]);
  assert.ok(formatLocks(order).some((l) => l.includes("fenced-order")));
});

test("chaos checkers - behaviour: lock exclusion check is O(n log n) on 100,000 holds", () => {
  const holds: LockHold[] = [];
  for (let i = 0; i < 100_000; i++) holds.push(hold(`c${i % 7}`, i + 1, i * 10 - 5, i * 10, i * 10 + 8, i % 5 !== 0, `r${i % 3}`));
  const t0 = performance.now();
  const r = checkLocks({ holds, writes: [], acquires: { ok: holds.length, fail: 0, unknown: 0 } });
  assert.equal(r.ok, true, formatLocks(r).join("\n"));
  assert.ok(performance.now() - t0 < 5_000);
});

// ---------------------------------------------------------------------------------------------
// Queues.

function enq(producer: string, seq: number, invokeMs: number, completeMs: number, outcome: Outcome = "ok", queue = "q"): EnqueueRecord {
  return { queue, producer, seq, body: `${producer}-${seq}`, outcome, invokeMs, completeMs: outcome === "unknown" ? Infinity : completeMs };
}

function dlv(body: string, consumeInvokeMs: number, receivedMs: number, deliveryCount = 1, consumer = "c1", queue = "q"): DeliveryRecord {
  return { queue, consumer, body, deliveryCount, consumeInvokeMs, receivedMs };
}

function ack(body: string, invokeMs: number, completeMs: number, acked = true, outcome: Outcome = "ok", queue = "q"): AckRecord {
  return { queue, body, outcome, acked, invokeMs, completeMs };
}

test("chaos checkers - behaviour: queue histories", () => {
  const good: QueueHistory = {
    enqueues: [enq("p", 0, 0, 1), enq("p", 1, 2, 3), enq("p", 2, 4, 5), enq("p", 3, 6, 0, "unknown"), enq("p", 4, 7, 8, "fail"), enq("p", 5, 9, 0, "unknown"), enq("o", 0, 0, 2)],
    deliveries: [
      dlv("p-0", 10, 11),
      dlv("o-0", 10, 11),
      dlv("p-1", 12, 13),
      // p-2's first consume "crashed" before acking; a redelivery came after the visibility timeout.
      dlv("p-2", 14, 15),
      dlv("p-3", 14, 15),
      dlv("p-2", 40, 41, 2, "c2"),
    ],
    // An ack of p-1 while a redelivery raced it: the consume began before the ack completed.
    acks: [ack("p-0", 12, 13), ack("o-0", 12, 13), ack("p-1", 14, 16), ack("p-2", 16, 17, false), ack("p-2", 42, 43)],
    deadLettered: [{ queue: "q", body: "p-5" }],
  };
  good.deliveries.push(dlv("p-1", 15, 18, 2, "c3"));
  const r = checkQueue(good);
  assert.equal(r.ok, true, formatQueue(r).join("\n"));
  assert.deepEqual(r.stats.enqueues, { ok: 4, fail: 1, unknown: 2 });
  assert.equal(r.stats.distinctDelivered, 5);
  assert.equal(r.stats.deliveries, 7);
  assert.equal(r.stats.duplicateDeliveries, 2);
  assert.equal(r.stats.redeliveries, 2);
  assert.equal(r.stats.unknownDelivered, 2);
  assert.equal(r.stats.unknownNotDelivered, 0);
  assert.equal(r.stats.deadLettered, 1);

  // A lost acknowledged enqueue.
  const lost = checkQueue({ ...good, deliveries: good.deliveries.filter((d) => d.body !== "o-0") });
  assert.deepEqual(lost.violations.map((v) => v.kind), ["lost"]);
  assert.equal(lost.stats.lost, 1);
  // Phantoms: a body never enqueued, and one whose enqueue certainly failed.
  const phantom = checkQueue({ ...good, deliveries: [...good.deliveries, dlv("ghost", 50, 51), dlv("p-4", 50, 51)] });
  assert.deepEqual(phantom.violations.map((v) => v.kind), ["phantom", "phantom"]);
  assert.equal(phantom.stats.phantoms, 2);
  // Out of order: p-1 (enqueued after p-0 was acknowledged) was delivered before the consume
  // that first delivered p-0 was even sent.
  const noAck0 = good.acks.filter((a) => a.body !== "p-0");
  const fifo = checkQueue({ ...good, acks: noAck0, deliveries: good.deliveries.map((d) => (d.body === "p-0" ? dlv("p-0", 13.5, 14) : d)) });
  assert.deepEqual(fifo.violations.map((v) => v.kind), ["fifo"]);
  assert.deepEqual(fifo.violations[0]!.ops.slice(0, 2).map((e) => e.body), ["p-0", "p-1"]);
  // But not when p-0's first recorded delivery was already a redelivery (an earlier one went unrecorded).
  const unseen = checkQueue({ ...good, acks: noAck0, deliveries: good.deliveries.map((d) => (d.body === "p-0" ? dlv("p-0", 13.5, 14, 2) : d)) });
  assert.equal(unseen.ok, true, formatQueue(unseen).join("\n"));
  // A redelivery from a consume sent after an ack was confirmed.
  const again = checkQueue({ ...good, deliveries: [...good.deliveries, dlv("p-0", 20, 21, 2)] });
  assert.deepEqual(again.violations.map((v) => v.kind), ["redelivered-after-ack"]);
  assert.ok(formatQueue(again).some((l) => l.includes("redelivered-after-ack")));
  // An ack that was stale or whose outcome is unknown confirms nothing.
  const unsure = checkQueue({ ...good, acks: [ack("p-0", 12, 13, false), ack("o-0", 12, Infinity, false, "unknown")], deliveries: [...good.deliveries, dlv("p-0", 20, 21, 2), dlv("o-0", 20, 21, 2)] });
  assert.equal(unsure.ok, true, formatQueue(unsure).join("\n"));
});
