/**
 * Turns what a client presents at HELLO (a token, a TLS client certificate) into an
 * {@link Identity}, or refuses with UNAUTHENTICATED in words a newcomer can act on.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import type { PeerCertificate } from "node:tls";
import { errors as joseErrors, jwtVerify } from "jose";
import { DsyncError, ErrorCode } from "../../protocol/index.ts";
import { tokensEqual } from "./token.ts";
import { identityOf, superIdentity, type Identity } from "./identity.ts";
import { certificateNames } from "./tls.ts";
import type { RoleBook } from "./roles.ts";

export interface JwtSettings {
  /** HS256/384/512: the shared secret's file. */
  readonly secretFile: string | null;
  /** RS*, PS*, ES*, EdDSA: the issuer's public key (PEM) file. */
  readonly publicKeyFile: string | null;
  readonly issuer: string | null;
  readonly audience: string | null;
}

export interface AuthenticatorOptions {
  readonly authToken: string | null;
  readonly jwt: JwtSettings | null;
  /** Whether client certificates are asked for (TLS_CA set on a TLS client port). */
  readonly clientCertificates: boolean;
  readonly roles: () => RoleBook;
  readonly now?: () => number;
}

/** What a client presented. `certificate` is set only when it verified against TLS_CA. */
export interface Credentials {
  readonly token?: string;
  readonly certificate?: PeerCertificate;
  readonly address: string;
}

/** Failed authentications one address may make in a burst, and how fast it earns another. */
const FAILURES_BURST = 5;
const FAILURE_REFILL_MS = 2000;
const THROTTLED_ADDRESSES_MAX = 10_000;

interface JwtKey {
  readonly key: KeyObject | Uint8Array;
  readonly algorithms: string[];
}

export class Authenticator {
  readonly #opts: AuthenticatorOptions;
  readonly #now: () => number;
  #jwtKey: JwtKey | null;
  readonly #failures = new Map<string, { tokens: number; at: number }>();

  constructor(opts: AuthenticatorOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#jwtKey = opts.jwt ? loadJwtKey(opts.jwt) : null;
  }

  /** Whether anyone may connect without proof (no token, JWT, roles or client CA configured). */
  get open(): boolean {
    return this.#opts.authToken === null && this.#opts.jwt === null && !this.#opts.clientCertificates;
  }

  /** Re-reads the JWT key (SIGHUP). @throws Error when the new key cannot be read (the old one stays). */
  reload(): void {
    if (this.#opts.jwt) this.#jwtKey = loadJwtKey(this.#opts.jwt);
  }

  /** @throws DsyncError UNAUTHENTICATED with the reason. */
  async authenticate(c: Credentials): Promise<Identity> {
    const wait = this.#throttled(c.address);
    if (wait > 0) throw new DsyncError(ErrorCode.UNAUTHENTICATED, `too many failed authentications from ${c.address}; try again in ${Math.ceil(wait / 1000)} s`);
    try {
      return await this.#identify(c);
    } catch (err) {
      this.#failed(c.address);
      throw err;
    }
  }

  async #identify(c: Credentials): Promise<Identity> {
    if (c.token !== undefined) {
      if (this.#opts.authToken !== null && tokensEqual(c.token, this.#opts.authToken)) return superIdentity("token");
      if (this.#jwtKey !== null && looksLikeJwt(c.token)) return this.#verifyJwt(c.token);
      throw unauthenticated(this.#jwtKey !== null ? "the token is neither this cluster's AUTH_TOKEN nor a signed token (JWT)" : "wrong auth token");
    }
    if (c.certificate) {
      const names = certificateNames(c.certificate);
      const book = this.#opts.roles();
      const mapped = names.find((n) => book.certificates.has(n));
      if (mapped === undefined) throw unauthenticated(`the client certificate (${names.join(", ") || "no name"}) is trusted but maps to no role: add it under "certificates" in the roles file`);
      return identityOf(mapped, "certificate", book.certificates.get(mapped)!, book, c.certificate.valid_to ? Date.parse(c.certificate.valid_to) : null);
    }
    if (this.open) return superIdentity("open");
    throw unauthenticated(`this node requires authentication: send a token in HELLO${this.#opts.clientCertificates ? " or connect with a client certificate" : ""}`);
  }

  async #verifyJwt(token: string): Promise<Identity> {
    const jwt = this.#opts.jwt!;
    const key = this.#jwtKey!;
    try {
      const { payload } = await jwtVerify(token, key.key, {
        algorithms: key.algorithms,
        requiredClaims: ["sub", "exp"],
        currentDate: new Date(this.#now()),
        ...(jwt.issuer !== null && { issuer: jwt.issuer }),
        ...(jwt.audience !== null && { audience: jwt.audience }),
      });
      const roles = payload.roles;
      if (!Array.isArray(roles) || !roles.every((r) => typeof r === "string")) throw unauthenticated('the token has no "roles" claim (a list of role names)');
      return identityOf(payload.sub!, "jwt", roles as string[], this.#opts.roles(), payload.exp! * 1000);
    } catch (err) {
      if (err instanceof DsyncError) throw err;
      throw unauthenticated(describeJwtError(err));
    }
  }

  /** Milliseconds until `address` may try again (0: now). */
  #throttled(address: string): number {
    const f = this.#failures.get(address);
    if (!f) return 0;
    this.#refill(f);
    return f.tokens >= 1 ? 0 : (1 - f.tokens) * FAILURE_REFILL_MS;
  }

  #failed(address: string): void {
    let f = this.#failures.get(address);
    if (!f) {
      if (this.#failures.size >= THROTTLED_ADDRESSES_MAX) this.#failures.delete(this.#failures.keys().next().value!);
      f = { tokens: FAILURES_BURST, at: this.#now() };
      this.#failures.set(address, f);
    }
    this.#refill(f);
    f.tokens = Math.max(0, f.tokens - 1);
  }

  #refill(f: { tokens: number; at: number }): void {
    const now = this.#now();
    f.tokens = Math.min(FAILURES_BURST, f.tokens + (now - f.at) / FAILURE_REFILL_MS);
    f.at = now;
  }
}

function unauthenticated(why: string): DsyncError {
  return new DsyncError(ErrorCode.UNAUTHENTICATED, why);
}

function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

function describeJwtError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return `the token expired at ${new Date(Number(err.payload.exp) * 1000).toISOString()}: get a new one`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "the token's signature does not match this cluster's key (signed with another secret or key?)";
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return `the token is signed with an algorithm this cluster's key does not use (${(err as Error).message})`;
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `the token's "${err.claim}" claim is not acceptable: ${err.reason === "missing" ? "it is missing" : err.message}`;
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) return `the token is malformed: ${(err as Error).message}`;
  return `the token could not be verified: ${(err as Error).message}`;
}

function loadJwtKey(s: JwtSettings): JwtKey {
  if (s.secretFile !== null) {
    const secret = readFileSync(s.secretFile);
    const trimmed = Buffer.from(secret.toString("utf8").trim(), "utf8");
    if (trimmed.length < 32) throw new Error(`the JWT secret in ${s.secretFile} is ${trimmed.length} bytes; use at least 32 (e.g. openssl rand -base64 48)`);
    return { key: new Uint8Array(trimmed), algorithms: ["HS256", "HS384", "HS512"] };
  }
  if (s.publicKeyFile !== null) {
    const key = createPublicKey(readFileSync(s.publicKeyFile));
    const algorithms =
      key.asymmetricKeyType === "rsa" ? ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
      : key.asymmetricKeyType === "ec" ? ["ES256", "ES384", "ES512"]
      : key.asymmetricKeyType === "ed25519" ? ["EdDSA", "Ed25519"]
      : null;
    if (algorithms === null) throw new Error(`the JWT public key in ${s.publicKeyFile} is of type ${key.asymmetricKeyType}; use RSA, EC or Ed25519`);
    return { key, algorithms };
  }
  throw new Error("JWT settings need a secret file or a public key file");
}
