/** Pieces every benchmark script shares: argument checks, the revision measured, the etcd peer. */
import { execFileSync, spawnSync } from "node:child_process";
import { ETCD_BIN, etcdAvailable } from "./etcd-cluster.ts";
import { ROOT } from "./proc.ts";

/** A positive number from `--name`, or `fallback` when absent. @throws Error on a bad value. */
export function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

/** `--concurrency 1,16,64` as integers in 1..1024. @throws Error on a bad item. */
export function concurrencyList(raw: string): number[] {
  return raw.split(",").map((c) => {
    const n = Number(c.trim());
    if (!Number.isInteger(n) || n < 1 || n > 1024) throw new Error(`--concurrency: ${JSON.stringify(c)} is not an integer in 1..1024`);
    return n;
  });
}

/** The commit measured, with "+dirty" when the work tree has changes. */
export function gitRev(): string {
  try {
    const rev = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain"], { cwd: ROOT, encoding: "utf8" }).trim() !== "";
    return dirty ? `${rev}+dirty` : rev;
  } catch {
    return "unknown";
  }
}

/**
 * Makes sure Debian's etcd is there when a bench needs it: installs etcd-server when running as
 * root (fresh machines), fails under CI=true, otherwise returns false so the bench runs dsync
 * alone and says so.
 */
export function ensureEtcd(bench: string): boolean {
  if (!etcdAvailable() && process.getuid?.() === 0 && !process.env.ETCD_BIN) {
    process.stderr.write(`${bench}: installing Debian's etcd-server (apt-get install -y etcd-server)…\n`);
    spawnSync("sh", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null"], { stdio: "inherit", timeout: 600_000 });
  }
  if (etcdAvailable()) return true;
  if (process.env.CI === "true") {
    process.stderr.write(`${bench}: etcd not found at ${ETCD_BIN} and CI=true: install it (apt-get install -y etcd-server) or set ETCD_BIN.\n`);
    process.exit(2);
  }
  process.stderr.write(`${bench}: etcd not found at ${ETCD_BIN}; running dsync only.\n  Install it with: apt-get install -y etcd-server   (or set ETCD_BIN=/path/to/etcd)\n`);
  return false;
}
