/**
 * `npm run bench:rate-limit`: does a flooding identity hurt anyone else? A 3-node cluster (fsync
 * on) with roles: `flooder` limited to --rate requests/s, `victim` unlimited. The victim's KV_GET
 * latency is measured alone, then while the flooder hammers the same nodes from --flood closed
 * loops that resend at once when refused. Target: the victim's p99 under flood ≤ 2× its p99 alone,
 * and the flooder served at most its rate (× 3 nodes, since buckets are per node).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { SignJWT } from "jose";
import { DsyncError, ErrorCode, Op } from "../protocol/index.ts";
import { DsyncClient } from "../src/client/client.ts";
import { runClosedLoop, type CellResult } from "./lib/closed-loop.ts";
import { DsyncCluster } from "./lib/dsync-cluster.ts";
import { positive } from "./lib/run-info.ts";
import { installCleanupHandlers, interruptSignal, onInterrupt } from "./lib/proc.ts";
import { fmtInt, fmtMs, fmtRatio, markdownTable } from "./lib/table.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string" },
    rate: { type: "string" },
    flood: { type: "string" },
    victims: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (args.help) {
  process.stdout.write(`Usage: npm run bench:rate-limit -- [--seconds 10] [--rate 200] [--flood 64] [--victims 4]\n`);
  process.exit(0);
}
const seconds = positive("seconds", args.seconds, 10);
const rate = positive("rate", args.rate, 200);
const floodC = Math.floor(positive("flood", args.flood, 64));
const victimC = Math.floor(positive("victims", args.victims, 4));
installCleanupHandlers();

const SECRET = "bench-rate-limit-secret-of-sufficient-length";
const dir = mkdtempSync(path.join(os.tmpdir(), "dsync-bench-rate-"));
writeFileSync(path.join(dir, "secret"), SECRET);
writeFileSync(
  path.join(dir, "roles.json"),
  JSON.stringify({ roles: { flooder: { allow: ["kv:get"], rate: { requestsPerSec: rate } }, victim: { allow: ["kv:*"] } } }),
);
const token = (sub: string, role: string): Promise<string> =>
  new SignJWT({ roles: [role] }).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime(Math.floor(Date.now() / 1000) + 3600).sign(new TextEncoder().encode(SECRET));

const cluster = await DsyncCluster.start(3, { AUTH_JWT_SECRET_FILE: path.join(dir, "secret"), AUTH_ROLES_FILE: path.join(dir, "roles.json") });
const clients: DsyncClient[] = [];
const stop = async (): Promise<void> => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await cluster.destroy();
  rmSync(dir, { recursive: true, force: true });
};
onInterrupt(stop);

try {
  const victim = new DsyncClient({ nodes: cluster.clientAddrs, token: await token("victim", "victim") });
  clients.push(victim);
  await victim.call(Op.KV_PUT, { key: "k", value: new Uint8Array(16) });
  const measure = (): Promise<CellResult> =>
    runClosedLoop({ concurrency: victimC, warmupMs: 1000, durationMs: seconds * 1000, maxOps: 10_000_000, maxErrors: 50, serverPids: cluster.pids, signal: interruptSignal }, () =>
      victim.call(Op.KV_GET, { key: "k" }),
    );
  const alone = await measure();
  process.stderr.write(`victim alone: ${fmtInt(alone.opsPerSec)} gets/s, p99 ${fmtMs(alone.latency.p99Ms)} ms\n`);

  // The flooder: one connection per node, closed loops that resend at once when refused.
  const flooders = await Promise.all(
    cluster.clientAddrs.map(async (addr) => {
      const c = new DsyncClient({ nodes: [addr], preferLeader: false, maxAttempts: 1, token: await token("flooder", "flooder") });
      clients.push(c);
      return c.ready();
    }),
  );
  const counts = { served: 0, limited: 0, other: 0 };
  let flooding = true;
  const floodStart = performance.now();
  const loops = Array.from({ length: floodC }, async (_, i) => {
    const c = flooders[i % flooders.length]!;
    while (flooding && !interruptSignal.aborted) {
      try {
        await c.call(Op.KV_GET, { key: "k" });
        counts.served++;
      } catch (err) {
        if (err instanceof DsyncError && err.code === ErrorCode.RATE_LIMITED) counts.limited++;
        else counts.other++;
      }
    }
  });
  const loaded = await measure();
  flooding = false;
  await Promise.all(loops);
  const floodSeconds = (performance.now() - floodStart) / 1000;
  process.stderr.write(`victim under flood: ${fmtInt(loaded.opsPerSec)} gets/s, p99 ${fmtMs(loaded.latency.p99Ms)} ms\n`);

  let out = `## Rate limits: one identity floods, another works (3 nodes, fsync on, KV_GET)\n\n`;
  out += markdownTable(
    ["victim (C=" + victimC + ")", "gets/s", "p50 ms", "p99 ms"],
    [
      ["alone", fmtInt(alone.opsPerSec), fmtMs(alone.latency.p50Ms), fmtMs(alone.latency.p99Ms)],
      [`with a ${floodC}-loop flood`, fmtInt(loaded.opsPerSec), fmtMs(loaded.latency.p50Ms), fmtMs(loaded.latency.p99Ms)],
    ],
  );
  out += `\n\nvictim p99 under flood ÷ alone: **${fmtRatio(loaded.latency.p99Ms / alone.latency.p99Ms)}** (target ≤ 2×)\n\n`;
  out += markdownTable(
    ["flooder", "requests/s sent", "served/s", "RATE_LIMITED/s", "other errors", "limit (per node × 3 nodes)"],
    [["flooder", fmtInt((counts.served + counts.limited + counts.other) / floodSeconds), fmtInt(counts.served / floodSeconds), fmtInt(counts.limited / floodSeconds), String(counts.other), `${fmtInt(rate)} × 3`]],
  );
  out += `\n\nload average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} (2 shared cores: figures are noisy; compare within one run)\n`;
  process.stdout.write(out);
} finally {
  await stop();
}
