/**
 * The checkers on histories recorded from a real campaign run (test/chaos/testdata: 3 nodes, a
 * leader SIGKILLed mid-run): as recorded they pass; sabotaged the way a broken node would break
 * them, they fail. JSON has no Infinity: an unknown outcome's open end is stored as null.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { checkLinearizable } from "./checkers/linearizable.ts";
import { checkLocks, type LockHistory } from "./checkers/locks.ts";
import type { RegisterOp } from "./history.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const load = <T>(name: string): T => JSON.parse(readFileSync(path.join(here, "testdata", name), "utf8")) as T;

function kvHistory(): RegisterOp[] {
  return load<RegisterOp[]>("kv-history.json").map((o) => ({ ...o, completeMs: o.completeMs ?? Infinity }) as RegisterOp);
}

test("chaos recorded - a real KV history is linearizable", () => {
  const ops = kvHistory();
  const r = checkLinearizable(ops);
  assert.ok(ops.length > 1000);
  assert.equal(r.ok, true, JSON.stringify(r.violations.slice(0, 2)));
});

test("chaos recorded - the same history with one read served from a stale copy is caught", () => {
  const ops = kvHistory();
  const ok = (o: RegisterOp): boolean => o.outcome === "ok";
  // Find a read r and writes old → newer on its key, where newer began after old completed and
  // completed before r began: r returning old's value is certainly stale.
  let sabotaged: { read: RegisterOp; value: string } | null = null;
  for (const read of ops) {
    if (read.f !== "read" || !ok(read)) continue;
    const writes = ops.filter((w) => w.f === "write" && ok(w) && w.key === read.key && w.completeMs < read.invokeMs);
    const newer = writes.find((n) => writes.some((o) => o.completeMs < n.invokeMs && o.input !== read.output));
    const old = newer && writes.find((o) => o.completeMs < newer.invokeMs && o.input !== read.output);
    if (old && old.f === "write") {
      sabotaged = { read, value: old.input };
      break;
    }
  }
  assert.ok(sabotaged, "the recorded history has a read to sabotage");
  (sabotaged.read as { output: string | null }).output = sabotaged.value;
  const r = checkLinearizable(ops);
  assert.equal(r.ok, false);
  assert.ok(r.violations.some((v) => v.ops.some((o) => o.id === sabotaged.read.id)), "the explanation names the stale read");
});

test("chaos recorded - a real lock history holds; a grant that did not wait for the previous release is caught", () => {
  const h = load<LockHistory>("locks-history.json");
  for (const x of h.holds) (x as { releaseSendMs: number | null }).releaseSendMs ??= null;
  assert.equal(checkLocks(h).ok, true);
  // A node that grants without waiting for the commit of the previous holder's release: the
  // next confirmed hold starts in the middle of the previous one.
  const confirmed = h.holds.filter((x) => x.releaseConfirmed && x.resource === h.holds[0]!.resource).sort((a, b) => a.grantMs - b.grantMs);
  const [a, b] = [confirmed[3]!, confirmed[4]!];
  const broken: LockHistory = { ...h, holds: h.holds.map((x) => (x === b ? { ...x, grantMs: (a.grantMs + a.releaseSendMs!) / 2 } : x)) };
  const r = checkLocks(broken);
  assert.equal(r.ok, false);
  assert.ok(r.violations.some((v) => v.kind === "overlap"));
});
