import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const dir = join(import.meta.dirname, "../../src/raft");

/** Strips comments so that prose (e.g. "not async") does not trip the checks. */
function code(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
}

const banned: [RegExp, string][] = [
  [/from\s+["']node:/, "node:* import"],
  [/\bDate\b/, "Date"],
  [/Math\.random/, "Math.random"],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, "timer"],
  [/\basync\b|\bawait\b/, "async/await"],
  [/\bprocess\b/, "process"],
  [/\brequire\(/, "require"],
];

test("purity - src/raft does no I/O, reads no clock and imports only itself", () => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));
  assert.ok(files.length > 5);
  for (const f of files) {
    const src = code(readFileSync(join(dir, f), "utf8"));
    for (const [re, what] of banned) assert.doesNotMatch(src, re, `${f}: ${what}`);
    for (const m of src.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)["']([^"']+)["']/gm)) {
      assert.ok(m[1]!.startsWith("./"), `${f}: imports ${m[1]} from outside src/raft`);
    }
  }
});
