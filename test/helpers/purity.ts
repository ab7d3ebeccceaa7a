/** The purity scan shared by the Raft core's and the state machines' tests. */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** What deterministic code must not use: I/O, clocks, randomness, timers, async, the process. */
export const IMPURE: readonly [RegExp, string][] = [
  [/from\s+["']node:/, "node:* import"],
  [/\bDate\b/, "Date"],
  [/Math\.random/, "Math.random"],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, "timer"],
  [/\basync\b|\bawait\b/, "async/await"],
  [/\bprocess\b/, "process"],
];

/** Strips comments so that prose (e.g. "not async") does not trip the checks. */
export function code(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
}

/** The .ts files directly in `dir`, as full paths. */
export function tsFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".ts"))
    .map((f) => join(dir, f));
}

/** Asserts that no file uses anything in {@link IMPURE} or `extra`; returns each file's code. */
export function assertPure(files: readonly string[], extra: readonly [RegExp, string][] = []): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of files) {
    const src = code(readFileSync(f, "utf8"));
    for (const [re, what] of [...IMPURE, ...extra]) assert.doesNotMatch(src, re, `${f}: ${what}`);
    out.set(f, src);
  }
  return out;
}
