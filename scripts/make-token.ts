/**
 * `npm run token -- --secret-file secret --sub alice --roles worker[,…] [--ttl 3600]`: a signed
 * token (JWT, HS256) for a cluster that verifies tokens with AUTH_JWT_SECRET_FILE. For trying
 * roles out; in production tokens come from your identity provider.
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { SignJWT } from "jose";

const o = new Command("token")
  .requiredOption("--secret-file <file>", "the secret the cluster's AUTH_JWT_SECRET_FILE holds")
  .requiredOption("--sub <subject>", "who the token is for (audit logs name them)")
  .requiredOption("--roles <list>", "role names from the roles file, comma-separated")
  .option("--ttl <seconds>", "how long the token is valid", "3600")
  .parse()
  .opts<{ secretFile: string; sub: string; roles: string; ttl: string }>();
const ttl = Number(o.ttl);
if (!Number.isInteger(ttl) || ttl <= 0) {
  process.stderr.write(`token: --ttl must be a positive number of seconds, got "${o.ttl}"\n`);
  process.exit(2);
}
const secret = new TextEncoder().encode(readFileSync(o.secretFile, "utf8").trim());
const roles = o.roles.split(",").map((r) => r.trim()).filter(Boolean);
const token = await new SignJWT({ roles }).setProtectedHeader({ alg: "HS256" }).setSubject(o.sub).setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + ttl).sign(secret);
process.stdout.write(token + "\n");
