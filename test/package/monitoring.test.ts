/** The shipped Prometheus rules and Grafana dashboard: valid, and only about metrics the node exports. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { ROOT } from "../helpers/daemon.ts";

const run = promisify(execFile);
const dir = path.join(ROOT, "monitoring");

/** Every metric name the node's sources declare (`name: "dsync_…"`), histograms' series included. */
async function declaredMetrics(): Promise<Set<string>> {
  const names = new Set<string>(["up"]);
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith(".ts")) {
        const text = await readFile(p, "utf8");
        for (const m of text.matchAll(/name: "(dsync_[a-z_]+)"/g)) {
          names.add(m[1]!);
          for (const suffix of ["_bucket", "_sum", "_count"]) names.add(m[1]! + suffix);
        }
        // Gauges built by a helper: g("dsync_queue_depth", …).
        for (const m of text.matchAll(/g\("(dsync_[a-z_]+)"/g)) names.add(m[1]!);
      }
    }
  };
  await walk(path.join(ROOT, "src"));
  return names;
}

function referenced(text: string): string[] {
  return [...new Set([...text.matchAll(/\b(dsync_[a-z_]+)\b/g)].map((m) => m[1]!))];
}

test("monitoring - promtool accepts the alert rules and their unit tests pass", async () => {
  const check = await run("promtool", ["check", "rules", path.join(dir, "alerts.yml")]);
  assert.match(check.stdout, /SUCCESS: \d+ rules found/);
  const unit = await run("promtool", ["test", "rules", "alerts.test.yml"], { cwd: dir });
  assert.match(unit.stdout, /SUCCESS/);
});

test("monitoring - the rules and the dashboard name only metrics the node exports", async () => {
  const declared = await declaredMetrics();
  assert.ok(declared.has("dsync_raft_is_leader") && declared.has("dsync_queue_depth") && declared.has("dsync_request_duration_seconds_bucket"));
  const rules = await readFile(path.join(dir, "alerts.yml"), "utf8");
  for (const m of referenced(rules)) assert.ok(declared.has(m), `alerts.yml uses ${m}, which no node exports`);
  const dashboard = JSON.parse(await readFile(path.join(dir, "grafana-dashboard.json"), "utf8")) as { panels: { type: string; title: string; targets?: { expr: string }[] }[] };
  const graphs = dashboard.panels.filter((p) => p.type !== "row");
  assert.ok(graphs.length >= 15, `${graphs.length} panels`);
  for (const p of graphs) {
    assert.ok(p.targets && p.targets.length > 0, `panel "${p.title}" has queries`);
    for (const t of p.targets) for (const m of referenced(t.expr)) assert.ok(declared.has(m), `panel "${p.title}" uses ${m}, which no node exports`);
  }
});
