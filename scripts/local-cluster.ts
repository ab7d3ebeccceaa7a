/**
 * Starts a local 3-node dsync cluster on loopback, data under one folder, and stops it cleanly on
 * Ctrl-C (SIGTERM to every node, then waits for them).
 *
 *   npm start                      # data in ./.data/local-cluster, client ports 7001-7003
 *   npm start -- --fresh           # wipe the data folder first
 *   npm start -- --base-port 8000  # client ports 8001-8003, peer 8101-8103, http 8201-8203
 *   npm start -- --tls             # TLS on every port, certificates from a private CA (openssl)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { rm, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { clusterStatus } from "../src/cli/cluster-status.ts";
import { table } from "../src/cli/output.ts";
import { readFileSync } from "node:fs";
import { makeCerts } from "./lib/certs.ts";
import { loopbackNodeEnv } from "./lib/node-env.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const opts = new Command("local-cluster")
  .description("Start 3 dsyncd nodes on 127.0.0.1; Ctrl-C stops them.")
  .option("--data <dir>", "folder holding every node's data", path.join(root, ".data", "local-cluster"))
  .option("--base-port <n>", "client ports are base+1..3, peer ports base+101..103, HTTP base+201..203", "7000")
  .option("--nodes <n>", "number of nodes (3 or 5)", "3")
  .option("--fresh", "delete the data folder before starting")
  .option("--log-level <level>", "node log level", "warn")
  .option("--tls", "TLS on the client and peer ports (mutual TLS between nodes), with certificates made in <data>/certs")
  .parse()
  .opts<{ data: string; basePort: string; nodes: string; fresh?: boolean; logLevel: string; tls?: boolean }>();

const base = Number(opts.basePort);
const count = Number(opts.nodes);
if (!Number.isInteger(base) || base < 1024 || base > 65000) throw new Error(`--base-port must be an integer in [1024, 65000]`);
if (count !== 3 && count !== 5) throw new Error("--nodes must be 3 or 5");

let stopping = false;
const ids = Array.from({ length: count }, (_, i) => `node_${i}`);
if (opts.fresh) await rm(opts.data, { recursive: true, force: true });
await mkdir(opts.data, { recursive: true });
const certs = opts.tls ? makeCerts(path.join(opts.data, "certs"), { nodes: ids, clients: ["admin"] }) : null;

const members = ids.map((id, i) => ({ id, clientPort: base + 1 + i, peerPort: base + 101 + i, httpPort: base + 201 + i }));
const children: ChildProcess[] = members.map((m) => {
  const id = m.id;
  const child = spawn(path.join(root, "bin", "dsyncd"), [], {
    env: {
      ...process.env,
      ...loopbackNodeEnv(m, members, path.join(opts.data, id), opts.logLevel),
      ...(certs && { TLS_CERT: certs.node(id).cert, TLS_KEY: certs.node(id).key, TLS_CA: certs.ca }),
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  child.on("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`${id} exited (code ${code}, signal ${signal})\n`);
  });
  return child;
});

const nodes = ids.map((_, i) => `127.0.0.1:${base + 1 + i}`).join(",");
process.stdout.write(
  `dsync: ${count} nodes starting on 127.0.0.1 (client ports ${base + 1}-${base + count}), data in ${opts.data}\n\n` +
    (certs ? `TLS is on: the CLI needs the CA (certificates are in ${certs.dir}):\n  export DSYNC_TLS_CA=${certs.ca}\n\n` : "") +
    `In another terminal:\n` +
    `  ./bin/dsync --nodes ${nodes} status\n` +
    `  ./bin/dsync --nodes ${nodes} ping\n` +
    `  curl -s http://127.0.0.1:${base + 201}/health\n`,
);

// A short demo once the nodes answer: what `dsync status` shows.
const seeds = nodes.split(",");
for (let tries = 0; tries < 100 && !stopping; tries++) {
  const reports = await clusterStatus(seeds, { timeoutMs: 1000, ...(certs && { auth: { tls: { ca: readFileSync(certs.ca) } } }) });
  if (reports.every((r) => r.reachable && r.status?.leader) || tries === 99) {
    const rows = reports.map((r) => [r.status?.nodeId ?? "?", r.addr, r.reachable ? "yes" : "no", r.status?.role ?? "-", String(r.status?.term ?? "-"), r.status?.leader ?? "-"]);
    process.stdout.write(
      `\n$ ./bin/dsync status\n${table(["NODE", "ADDRESS", "REACHABLE", "ROLE", "TERM", "LEADER"], rows)}\n\n` +
        `The cluster is up. Try:\n  ./bin/dsync kv put greeting hello\n  ./bin/dsync kv get greeting\n  ./bin/dsync admin transfer-leader\n  ./bin/dsync lock acquire orders/42 --hold 5000\n  ./bin/dsync queue enqueue emails "hello" && ./bin/dsync queue consume emails --ack\n\nPress Ctrl-C to stop it.\n`,
    );
    break;
  }
  await new Promise((r) => setTimeout(r, 200));
}
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\nstopping the cluster…\n");
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once("exit", () => resolve());
          c.kill("SIGTERM");
          setTimeout(() => c.kill("SIGKILL"), 12_000).unref();
        }),
    ),
  );
  process.stdout.write("cluster stopped.\n");
  process.exit(0);
}
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
