import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { connect } from "../../src/client/index.ts";
import { TestCluster, waitFor } from "../helpers/daemon.ts";

function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

interface Family {
  name: string;
  type: string;
  metrics: { labels?: Record<string, string>; value?: string; buckets?: Record<string, string> }[];
}

test("observability - /health and /metrics answer, and the metrics parse", { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(1);
  const node = cluster.nodes[0]!;
  try {
    const client = await connect({ nodes: [node.clientAddr] });
    for (let i = 0; i < 20; i++) await client.ping();
    await client.status();
    await client.close();

    // A single node serves once it has elected itself.
    const health = await waitFor(async () => {
      const r = await fetch(`${node.httpUrl}/health`);
      return r.status === 200 ? r : null;
    }, "the node to serve");
    const h = (await health.json()) as Record<string, unknown>;
    assert.equal(h.status, "serving");
    assert.equal(h.nodeId, "node_0");
    for (const k of ["role", "term", "leader", "uptimeMs"]) assert.ok(k in h, `health has ${k}`);

    const res = await fetch(`${node.httpUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
    const text = await res.text();
    const families = parsePrometheusTextFormat(text) as Family[];
    const byName = new Map(families.map((f) => [f.name, f]));
    for (const name of ["dsync_client_connections", "dsync_frames_total", "dsync_bytes_total", "dsync_request_duration_seconds", "dsync_errors_total", "nodejs_eventloop_lag_seconds", "dsync_raft_term", "dsync_raft_commit_index", "dsync_wal_fsyncs", "dsync_wal_batches", "dsync_wal_inline_batches"]) {
      assert.ok(byName.has(name), `metric ${name} is exported`);
    }
    const latency = byName.get("dsync_request_duration_seconds")!;
    assert.equal(latency.type, "HISTOGRAM");
    assert.ok(latency.metrics.length > 0);
    // The parser keeps a histogram's buckets but drops its labels, so read the count directly.
    assert.match(text, /^dsync_request_duration_seconds_count\{node="node_0",op="ping"\} 20$/m, "a latency histogram for ping counted 20 pings");
    const framesIn = byName.get("dsync_frames_total")!.metrics.find((m) => m.labels?.direction === "in" && m.labels?.port === "client");
    assert.ok(Number(framesIn?.value) >= 22, "frames in counted (HELLO + 20 PING + STATUS)");

    assert.match(text, /^dsync_raft_is_leader\{group="0",node="node_0"\} 1$/m, "the single node leads group 0");
    assert.equal((await fetch(`${node.httpUrl}/`)).status, 404, "nothing else is served over HTTP");
    assert.equal((await fetch(`${node.httpUrl}/health`, { method: "POST" })).status, 405);

    if (hasCommand("promtool")) {
      const dir = mkdtempSync(path.join(os.tmpdir(), "dsync-metrics-"));
      try {
        const file = path.join(dir, "metrics.txt");
        writeFileSync(file, text);
        const r = spawnSync("sh", ["-c", `promtool check metrics < ${file}`], { encoding: "utf8" });
        const complaints = `${r.stdout}${r.stderr}`.split("\n").filter(Boolean);
        // prom-client's own default gauges (nodejs_active_handles_total …) break a naming lint;
        // everything else — parse errors and any complaint about dsync_* — fails the test.
        const ours = complaints.filter((l) => !/^nodejs_\w+_total non-counter metrics should not have "_total" suffix$/.test(l));
        assert.deepEqual(ours, [], `promtool check metrics failed:\n${complaints.join("\n")}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } else {
      assert.ok(process.env.CI !== "true", "promtool is missing under CI=true: .ci/run installs Debian's prometheus package");
    }
  } finally {
    await cluster.destroy();
  }
});

test("observability - the systemd unit passes systemd-analyze verify", () => {
  if (!hasCommand("systemd-analyze")) {
    assert.ok(process.env.CI !== "true", "systemd-analyze is missing under CI=true: .ci/run installs Debian's systemd package");
    return;
  }
  const root = path.resolve(import.meta.dirname, "../..");
  const dir = mkdtempSync(path.join(os.tmpdir(), "dsync-unit-"));
  try {
    // verify checks that ExecStart exists, so point the install path at this checkout.
    const unit = spawnSync("sed", [`s#/opt/dsync#${root}#g`, path.join(root, "systemd/dsyncd@.service")], { encoding: "utf8" }).stdout;
    assert.match(unit, /EnvironmentFile=/);
    assert.match(unit, /Restart=on-failure/);
    assert.match(unit, /NoNewPrivileges=yes/);
    const file = path.join(dir, "dsyncd@node_0.service");
    writeFileSync(file, unit);
    const r = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8", cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), "", `systemd-analyze printed warnings:\n${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
