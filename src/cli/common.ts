import { Command } from "commander";
import { DsyncError } from "../../protocol/index.ts";
import { readFileSync } from "node:fs";
import { DsyncClient } from "../client/client.ts";
import type { ClientOptions } from "../client/options.ts";

const DEFAULT_NODES = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

export interface GlobalOptions {
  nodes: string;
  tokenFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  json?: boolean;
  timeout: string;
}

export const program = new Command("dsync")
  .description("Command-line client for a dsync cluster: locks, queues, cache, status and admin.")
  .option("-n, --nodes <list>", "node client addresses host:port,… [env DSYNC_NODES]", process.env.DSYNC_NODES ?? DEFAULT_NODES)
  .option("--token-file <file>", "file holding the auth token, if the cluster requires one [env DSYNC_TOKEN_FILE; or the token itself in DSYNC_TOKEN]", process.env.DSYNC_TOKEN_FILE)
  .option("--tls-ca <file>", "connect with TLS, trusting this CA (PEM) [env DSYNC_TLS_CA]", process.env.DSYNC_TLS_CA)
  .option("--tls-cert <file>", "client certificate (PEM) for mutual TLS [env DSYNC_TLS_CERT]", process.env.DSYNC_TLS_CERT)
  .option("--tls-key <file>", "its private key (PEM) [env DSYNC_TLS_KEY]", process.env.DSYNC_TLS_KEY)
  .option("--json", "print machine-readable JSON instead of text")
  .option("--timeout <ms>", "per-request timeout in milliseconds", "3000")
  .showHelpAfterError();

export function globals(): GlobalOptions {
  return program.opts<GlobalOptions>();
}

export function timeoutMs(g: GlobalOptions): number {
  const n = Number(g.timeout);
  if (!Number.isInteger(n) || n <= 0) fail(`--timeout must be a positive integer (milliseconds), got "${g.timeout}"`);
  return n;
}

export function print(g: GlobalOptions, json: unknown, text: string): void {
  process.stdout.write((g.json ? JSON.stringify(json, null, 2) : text) + "\n");
}

export function fail(message: string, code = 1): never {
  process.stderr.write(`dsync: ${message}\n`);
  process.exit(code);
}

/** `preferLeader: false` keeps the client on the first node it reaches (e.g. the cache, served by any node). */
export async function withClient<T>(fn: (c: DsyncClient, g: GlobalOptions) => Promise<T>, opts: { preferLeader?: boolean } = {}): Promise<T> {
  const g = globals();
  const t = timeoutMs(g);
  const client = new DsyncClient({
    nodes: g.nodes,
    connectTimeoutMs: t,
    requestTimeoutMs: t,
    maxAttempts: 3,
    clientName: "dsync-cli",
    preferLeader: opts.preferLeader ?? true,
    ...credentials(g),
  });
  try {
    return await fn(client, g);
  } catch (err) {
    const e = err as Error;
    fail(err instanceof DsyncError ? `${e.message} (${err.codeName})` : e.message);
  } finally {
    await client.close();
  }
}

/** Token and TLS settings from the global options (files are read here, so errors name them). */
export function credentials(g: GlobalOptions): Pick<ClientOptions, "token" | "tokenFile" | "tls"> {
  const read = (what: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      return fail(`cannot read ${what} ${file}: ${(err as Error).message}`, 2);
    }
  };
  if ((g.tlsCert === undefined) !== (g.tlsKey === undefined)) fail("--tls-cert and --tls-key go together", 2);
  const ca = read("--tls-ca", g.tlsCa);
  const cert = read("--tls-cert", g.tlsCert);
  const key = read("--tls-key", g.tlsKey);
  const tls = ca || cert ? { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) } : undefined;
  const envToken = process.env.DSYNC_TOKEN;
  return {
    ...(g.tokenFile !== undefined ? { tokenFile: g.tokenFile } : envToken ? { token: envToken } : {}),
    ...(tls && { tls }),
  };
}

/** A whole-number option value no smaller than `min`, or exit with a message naming the option. */
export function intArg(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) fail(`${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}
