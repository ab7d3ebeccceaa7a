/**
 * The systemd unit starts the compiled daemon. `systemd-run` needs systemd running as PID 1 (a
 * booted system); the CI and development containers have none, so this test does what the unit
 * tells systemd to do: an install laid out like /opt/dsync (bin/, a compiled dist/, no sources),
 * the unit's ExecStart run from its WorkingDirectory with only the variables of its
 * Environment= lines and of an EnvironmentFile in the example's format, then ExecReload's SIGHUP
 * and the stop's SIGTERM. `systemd-analyze verify` of the unit runs in observability.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ROOT, freePort, startServingProcess } from "../helpers/daemon.ts";

const run = promisify(execFile);

/** `Key=value` lines of one section of a unit file (later lines of a repeated key come after). */
function directives(unit: string): [string, string][] {
  return unit
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("[") && l.includes("="))
    .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]);
}

/** An EnvironmentFile: `KEY=value` lines, comments and blank lines ignored. */
function envFile(text: string): Record<string, string> {
  return Object.fromEntries(directives(text));
}

test("systemd unit - its ExecStart runs the compiled daemon as one process that serves, reloads on SIGHUP and stops cleanly on SIGTERM", async () => {
  await mkdir(path.join(ROOT, ".data"), { recursive: true });
  // Inside the checkout, so the install's node_modules link resolves as /opt/dsync's would.
  const opt = await mkdtemp(path.join(ROOT, ".data", "opt-dsync-"));
  const data = await mkdtemp(path.join(os.tmpdir(), "dsync-unit-data-"));
  let node: Awaited<ReturnType<typeof startServingProcess>> | null = null;
  try {
    const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
    await run(process.execPath, [tsc, "-p", path.join(ROOT, "tsconfig.build.json"), "--outDir", path.join(opt, "dist")], { cwd: ROOT });
    await writeFile(path.join(opt, "dist", ".built"), "");
    await cp(path.join(ROOT, "bin"), path.join(opt, "bin"), { recursive: true });
    await cp(path.join(ROOT, "package.json"), path.join(opt, "package.json"));
    await symlink(path.join(ROOT, "node_modules"), path.join(opt, "node_modules"));

    const unit = directives((await readFile(path.join(ROOT, "systemd/dsyncd@.service"), "utf8")).replaceAll("/opt/dsync", opt).replaceAll("%i", "node_0"));
    const one = (key: string): string => {
      const v = unit.filter(([k]) => k === key).map(([, v]) => v);
      assert.equal(v.length, 1, `the unit has one ${key}`);
      return v[0]!;
    };
    const execStart = one("ExecStart");
    assert.equal(execStart, path.join(opt, "bin/dsyncd"), "ExecStart runs the installed bin/dsyncd");
    const fromUnit = Object.fromEntries(unit.filter(([k]) => k === "Environment").map(([, v]) => [v.slice(0, v.indexOf("=")), v.slice(v.indexOf("=") + 1)]));
    // The example env file, pointed at loopback ports and a temporary data dir, one node.
    const [client, peer, http] = [await freePort(), await freePort(), await freePort()];
    const example = envFile(await readFile(path.join(ROOT, "systemd/node_0.env.example"), "utf8"));
    assert.equal(example.NODE_ID, "node_0");
    const settings = { ...example, NODE_HOST: "127.0.0.1", API_PORT: String(client), NODE_PORT: String(peer), HTTP_PORT: String(http), PEER_NODES: "", DATA_DIR: data, LOG_LEVEL: "warn" };
    // systemd passes no environment of its own beyond these (and a PATH).
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...fromUnit, ...settings };
    node = await startServingProcess(execStart, [], env, http, one("WorkingDirectory"));
    const pid = node.child.pid!;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
    assert.deepEqual(cmdline.slice(1), [path.join(opt, "dist/src/cli/dsyncd.js")], "the PID systemd watches is the compiled daemon itself (no shell, no tsx)");

    // ExecReload: SIGHUP re-reads settings files; the node goes on serving.
    assert.equal(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    process.kill(pid, "SIGHUP");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await fetch(`http://127.0.0.1:${http}/health`)).status, 200);

    // KillSignal=SIGTERM within TimeoutStopSec: a clean exit (status 0), not a kill.
    assert.equal(one("KillSignal"), "SIGTERM");
    const stopSec = Number(one("TimeoutStopSec"));
    const exited = new Promise<number | null>((r) => node!.child.once("exit", (code) => r(code)));
    const t0 = performance.now();
    process.kill(pid, "SIGTERM");
    assert.equal(await exited, 0);
    assert.ok(performance.now() - t0 < stopSec * 1000, `stopped within TimeoutStopSec=${stopSec}`);
  } finally {
    await node?.stop();
    await rm(opt, { recursive: true, force: true });
    await rm(data, { recursive: true, force: true });
  }
});
