/**
 * The compiled build (`npm run build`): the daemon and CLI run as plain JavaScript, one process,
 * no dev dependency (no tsx) involved.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ROOT, freePort, startServingProcess } from "../helpers/daemon.ts";

const run = promisify(execFile);

test("compiled build - tsc emits runnable JavaScript: a node from dist/ serves, and the CLI from dist/ talks to it", async () => {
  // Inside the checkout, so the emitted files resolve node_modules like dist/ does.
  await mkdir(path.join(ROOT, ".data"), { recursive: true });
  const out = await mkdtemp(path.join(ROOT, ".data", "build-test-"));
  const data = await mkdtemp(path.join(os.tmpdir(), "dsync-build-test-"));
  const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
  let node: { stop: () => Promise<void> } | null = null;
  const env = { ...process.env, NODE_OPTIONS: "" };
  try {
    await run(process.execPath, [tsc, "-p", path.join(ROOT, "tsconfig.build.json"), "--outDir", out], { cwd: ROOT });
    const daemon = path.join(out, "src", "cli", "dsyncd.js");
    assert.doesNotMatch(await readFile(daemon, "utf8"), /\.ts["']/, "relative imports are rewritten to .js");
    const [client, peer, http] = [await freePort(), await freePort(), await freePort()];
    const started = await startServingProcess(process.execPath, [daemon], { ...env, NODE_ID: "b0", API_PORT: String(client), NODE_PORT: String(peer), HTTP_PORT: String(http), DATA_DIR: data, LOG_LEVEL: "warn" }, http);
    node = started;
    const child = started.child;
    // One process: the daemon itself, with no loader flags (so nothing of tsx).
    const cmdline = (await readFile(`/proc/${child.pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
    assert.deepEqual(cmdline, [process.execPath, daemon]);
    const cli = path.join(out, "src", "cli", "dsync.js");
    const nodes = `127.0.0.1:${client}`;
    await run(process.execPath, [cli, "--nodes", nodes, "kv", "put", "built", "yes"], { env });
    const got = await run(process.execPath, [cli, "--nodes", nodes, "kv", "get", "built"], { env });
    assert.match(got.stdout, /yes/);
  } finally {
    await node?.stop();
    await rm(out, { recursive: true, force: true });
    await rm(data, { recursive: true, force: true });
  }
});
