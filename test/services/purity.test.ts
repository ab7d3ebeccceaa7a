/** Every service's machine/ folder is pure: the Raft host replays it from the log and the simulator from a seed. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { assertPure, tsFiles } from "../helpers/purity.ts";

const SERVICES = join(import.meta.dirname, "../../src/services");

test("services - purity: every src/services/<service>/machine reads no clock, no randomness, does no I/O and no async", () => {
  const machines = readdirSync(SERVICES, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(SERVICES, d.name, "machine")))
    .map((d) => d.name)
    .sort();
  assert.deepEqual(machines, ["cache", "cluster", "kv", "lock", "queue"], "each service keeps its deterministic part in machine/");
  for (const s of machines) {
    const files = tsFiles(join(SERVICES, s, "machine"));
    assert.ok(files.length > 0, `${s}/machine has files`);
    assertPure(files, [[/\bperformance\b|\bcrypto\b/, "performance/crypto"]]);
  }
});
