/** A node's security settings, built once from its configuration and re-read on SIGHUP. */
import type { Registry } from "prom-client";
import type { Logger } from "../host/logger.ts";
import { AccessControl } from "./access-control.ts";
import { AuditLog } from "./audit-log.ts";
import { Authenticator } from "./authenticator.ts";
import { EMPTY_ROLE_BOOK, loadRoleBook, type RoleBook } from "./roles.ts";
import { TlsMaterial } from "./tls.ts";
import type { SecuritySettings } from "./settings.ts";

export type { SecuritySettings };

export class NodeSecurity {
  readonly tls: TlsMaterial | null;
  readonly access: AccessControl;
  readonly #settings: SecuritySettings;
  readonly #authenticator: Authenticator;
  readonly #log: Logger;
  #roles: RoleBook;
  #audit: AuditLog | null = null;

  /** @throws Error naming the file at fault (unreadable certificate, invalid roles file …). */
  constructor(s: SecuritySettings, registry: Registry, log: Logger) {
    this.#settings = s;
    this.#log = log;
    this.tls = s.tlsCert !== null && s.tlsKey !== null && s.tlsCa !== null ? new TlsMaterial({ cert: s.tlsCert, key: s.tlsKey, ca: s.tlsCa }) : null;
    this.#roles = s.rolesFile !== null ? loadRoleBook(s.rolesFile) : EMPTY_ROLE_BOOK;
    const jwt = s.jwtSecretFile !== null || s.jwtPublicKeyFile !== null ? { secretFile: s.jwtSecretFile, publicKeyFile: s.jwtPublicKeyFile, issuer: s.jwtIssuer, audience: s.jwtAudience } : null;
    this.#authenticator = new Authenticator({ authToken: s.authToken, jwt, clientCertificates: this.tls !== null && s.rolesFile !== null, roles: () => this.#roles });
    this.access = new AccessControl({
      authenticator: this.#authenticator,
      // The log opens later (open()); until then, and after close(), records go nowhere.
      audit: { record: (r) => this.#audit?.record(r) },
      auditWrites: s.auditWrites,
      registry,
    });
  }

  /** Opens the audit log and warns about an exposed plaintext node. */
  async open(): Promise<void> {
    const s = this.#settings;
    if (s.auditLog !== null) {
      this.#audit = await AuditLog.open({ file: s.auditLog, node: s.nodeId, maxBytes: s.auditLogMaxBytes });
    }
    const loopback = /^(127\.|::1$|localhost$)/.test(s.host);
    if (this.tls === null && !loopback) this.#log.warn({ host: s.host }, "listening on a non-loopback address without TLS: tokens and data cross the network in clear (set TLS_CERT, TLS_KEY, TLS_CA)");
    if (this.#authenticator.open && !loopback) this.#log.warn({ host: s.host }, "no access control (no AUTH_TOKEN, AUTH_JWT_*, or client certificates): anyone who reaches the ports can do anything");
  }

  /** SIGHUP: re-reads certificates, the roles file and the JWT key; keeps the old ones on error. */
  reload(): void {
    const done: string[] = [];
    const failed: string[] = [];
    const step = (what: string, fn: () => void): void => {
      try {
        fn();
        done.push(what);
      } catch (err) {
        failed.push(`${what}: ${(err as Error).message}`);
      }
    };
    if (this.tls) step("certificates", () => this.tls!.reload());
    if (this.#settings.rolesFile !== null) step("roles", () => (this.#roles = loadRoleBook(this.#settings.rolesFile!)));
    step("token key", () => this.#authenticator.reload());
    this.#audit?.record({ event: "reload", outcome: failed.length === 0 ? "ok" : "failed", detail: [...done.map((d) => `reloaded ${d}`), ...failed].join("; ") });
    if (failed.length > 0) this.#log.error({ failed }, "reload failed; the previous settings stay in force for what failed");
    else this.#log.info({ reloaded: done }, "security settings reloaded");
  }

  async close(): Promise<void> {
    const audit = this.#audit;
    this.#audit = null;
    await audit?.close();
  }
}
