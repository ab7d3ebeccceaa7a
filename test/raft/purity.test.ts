import { test } from "node:test";
import assert from "node:assert/strict";
import { assertPure, tsFiles } from "../helpers/purity.ts";
import { join } from "node:path";

const dir = join(import.meta.dirname, "../../src/raft");

test("purity - src/raft does no I/O, reads no clock and imports only itself", () => {
  const files = tsFiles(dir);
  assert.ok(files.length > 5);
  for (const [f, src] of assertPure(files, [[/\brequire\(/, "require"]])) {
    for (const m of src.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)["']([^"']+)["']/gm)) {
      assert.ok(m[1]!.startsWith("./"), `${f}: imports ${m[1]} from outside src/raft`);
    }
  }
});
