/**
 * A private CA and certificates for a local cluster, made with openssl: one per node (its CN and
 * a DNS name are the node id, so peers can check who they talk to; localhost and 127.0.0.1 are
 * names too, so clients can check the address they dialed) and one per client (its CN is the
 * name the roles file maps to roles). EC P-256 keys, valid for a year.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface CertSet {
  readonly dir: string;
  readonly ca: string;
  node(id: string): { cert: string; key: string };
  client(name: string): { cert: string; key: string };
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === "ENOENT") throw new Error("openssl is not installed: apt-get install -y openssl", { cause: err });
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() ?? String(err)}`, { cause: err });
  }
}

function leaf(dir: string, name: string, cn: string, ext: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  openssl(["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`], dir);
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "365", "-sha256", "-extfile", `${name}.ext`, "-out", `${name}.crt`], dir);
}

/** Makes (or, when `dir/ca.crt` exists, reuses) a CA in `dir`, then any missing node and client certificates. */
export function makeCerts(dir: string, opts: { nodes: readonly string[]; clients?: readonly string[]; caName?: string }): CertSet {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(path.join(dir, "ca.crt"))) {
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], dir);
    openssl(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "365", "-subj", `/CN=${opts.caName ?? "dsync local CA"}`, "-out", "ca.crt"], dir);
  }
  for (const id of opts.nodes) {
    if (existsSync(path.join(dir, `${id}.crt`))) continue;
    leaf(dir, id, id, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:${id},DNS:localhost,IP:127.0.0.1,IP:::1\n`);
  }
  for (const name of opts.clients ?? []) {
    const file = `client-${name}`;
    if (existsSync(path.join(dir, `${file}.crt`))) continue;
    leaf(dir, file, name, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n`);
  }
  return {
    dir,
    ca: path.join(dir, "ca.crt"),
    node: (id) => ({ cert: path.join(dir, `${id}.crt`), key: path.join(dir, `${id}.key`) }),
    client: (name) => ({ cert: path.join(dir, `client-${name}.crt`), key: path.join(dir, `client-${name}.key`) }),
  };
}
