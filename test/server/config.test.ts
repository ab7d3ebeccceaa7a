import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { ConfigError, configFromEnv, resolveConfig } from "../../src/config/node-config.ts";
import { ROOT } from "../helpers/daemon.ts";

test("config - the seeds' environment variables keep their meaning", () => {
  const c = resolveConfig(
    configFromEnv({ NODE_ID: "node_0", NODE_HOST: "127.0.0.1", API_PORT: "8080", NODE_PORT: "8180", PEER_NODES: "node_1:localhost:8181,node_2:127.0.0.2:8182", LOG_LEVEL: "WARNING", CACHE_CAPACITY: "250", REDIS_HOST: "127.0.0.1", REDIS_PORT: "6380" }),
  );
  assert.equal(c.nodeId, "node_0");
  assert.equal(c.clientPort, 8080);
  assert.equal(c.peerPort, 8180);
  assert.deepEqual(c.peers, [
    { id: "node_1", addr: "localhost:8181" },
    { id: "node_2", addr: "127.0.0.2:8182" },
  ]);
  assert.equal(c.logLevel, "warn");
  assert.equal(c.cacheCapacity, 250);
  assert.equal(c.redisUrl, "redis://127.0.0.1:6380");
  assert.equal(c.fsync, true, "fsync is on by default");
});

test("config - flags win over env, env over file", () => {
  const c = resolveConfig({ nodeId: "file", clientPort: 1111 }, { nodeId: "env", clientPort: "2222" }, { clientPort: "3333" });
  assert.equal(c.nodeId, "env");
  assert.equal(c.clientPort, 3333);
});

test("config - every problem is reported at once, in plain words", () => {
  let err: unknown;
  try {
    resolveConfig({ clientPort: "seventy", peerPort: 70000, peers: "node_1-no-port", logLevel: "LOUD", fsync: "maybe", electionTimeoutMs: 100, heartbeatIntervalMs: 80 });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  const text = err.problems.join("\n");
  for (const needle of ["NODE_ID", "API_PORT", "NODE_PORT", "PEER_NODES", "LOG_LEVEL", "FSYNC", "HEARTBEAT_INTERVAL_MS"]) {
    assert.match(text, new RegExp(needle), `a problem names ${needle}`);
  }
});

test("config - the idle beat defaults to 500 ms and may not be shorter than the heartbeat", () => {
  assert.equal(resolveConfig({ nodeId: "a" }).idleBeatIntervalMs, 500);
  assert.equal(resolveConfig({ nodeId: "a", idleBeatIntervalMs: "50" }).idleBeatIntervalMs, 50);
  assert.throws(() => resolveConfig({ nodeId: "a", idleBeatIntervalMs: "40" }), /IDLE_BEAT_INTERVAL_MS \(40\) must be at least HEARTBEAT_INTERVAL_MS \(50\)/);
});

test("config - a node listing itself as a peer or reusing a port is refused", () => {
  assert.throws(() => resolveConfig({ nodeId: "a", peers: "a:127.0.0.1:7100" }), /own id/);
  assert.throws(() => resolveConfig({ nodeId: "a", clientPort: 7000, peerPort: 7000 }), /must differ/);
});

test("config - dsyncd exits with status 2 and a clear message on invalid config", () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/dsyncd.ts"), "--client-port", "0"], {
    cwd: ROOT,
    env: { ...process.env, NODE_ID: "" },
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /invalid configuration/);
  assert.match(r.stderr, /NODE_ID \(--node-id\) is required/);
  assert.match(r.stderr, /API_PORT \(clientPort\) must be an integer in \[1, 65535\]/);
});
