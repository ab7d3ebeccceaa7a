/** A node's security settings and the rules they must follow together. */
import { readFileSync } from "node:fs";

/** A node's security configuration (README "Securing a cluster"). */
export interface SecuritySettings {
  readonly nodeId: string;
  /** Address the ports bind to: a non-loopback one without TLS is warned about. */
  readonly host: string;
  /** The shared all-powerful secret (AUTH_TOKEN, or read from AUTH_TOKEN_FILE). */
  readonly authToken: string | null;
  readonly authTokenFile: string | null;
  /** TLS on the client and peer ports (peers: mutual TLS, certificates naming node ids). */
  readonly tlsCert: string | null;
  readonly tlsKey: string | null;
  readonly tlsCa: string | null;
  /** Serve the HTTP side port (/health, /metrics) over HTTPS with the node's certificate. */
  readonly httpTls: boolean;
  /** Signed tokens (JWT): HS256 with a secret file, or RS/ES/EdDSA with a public key file. */
  readonly jwtSecretFile: string | null;
  readonly jwtPublicKeyFile: string | null;
  readonly jwtIssuer: string | null;
  readonly jwtAudience: string | null;
  /** Roles, their grants and rates, and certificate names → roles (JSON). */
  readonly rolesFile: string | null;
  /** Append-only audit log of authentications, denials and admin operations. */
  readonly auditLog: string | null;
  readonly auditLogMaxBytes: number;
  /** Also audit every state-changing request. */
  readonly auditWrites: boolean;
}

/** What is wrong with a combination of security settings, one sentence per problem. */
export function securityProblems(c: SecuritySettings): string[] {
  const problems: string[] = [];
  if (c.authToken !== null && c.authTokenFile !== null) problems.push("set AUTH_TOKEN or AUTH_TOKEN_FILE, not both");
  const tls = [c.tlsCert, c.tlsKey, c.tlsCa];
  if (tls.some((f) => f !== null) && tls.some((f) => f === null)) {
    problems.push("TLS needs all of TLS_CERT, TLS_KEY and TLS_CA (peers verify each other against the CA); `npm run certs` makes a set for a local cluster");
  }
  if (c.httpTls && c.tlsCert === null) problems.push("HTTP_TLS needs TLS_CERT, TLS_KEY and TLS_CA");
  if (c.jwtSecretFile !== null && c.jwtPublicKeyFile !== null) problems.push("set AUTH_JWT_SECRET_FILE or AUTH_JWT_PUBLIC_KEY_FILE, not both");
  const jwt = c.jwtSecretFile !== null || c.jwtPublicKeyFile !== null;
  if (jwt && c.rolesFile === null) problems.push("signed tokens (AUTH_JWT_*) grant roles: set AUTH_ROLES_FILE too");
  if ((c.jwtIssuer !== null || c.jwtAudience !== null) && !jwt) problems.push("AUTH_JWT_ISSUER / AUTH_JWT_AUDIENCE need AUTH_JWT_SECRET_FILE or AUTH_JWT_PUBLIC_KEY_FILE");
  return problems;
}

/** A secret from its file, trimmed. @throws Error when unreadable or empty. */
export function readSecretFile(file: string): string {
  const s = readFileSync(file, "utf8").trim();
  if (s === "") throw new Error("the file is empty");
  return s;
}
