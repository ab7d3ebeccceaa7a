/**
 * The gate every client request passes on its way to a handler: who the connection is (set at
 * HELLO), whether that identity's token is still valid, whether its roles grant the request, and
 * whether it is within its rate. Security-relevant outcomes go to the audit log and to metrics.
 */
import { Counter, type Registry } from "prom-client";
import { DsyncError, ErrorCode, Op, PermissionDeniedError, RateLimitedError, opName, type Envelope } from "../../protocol/index.ts";
import type { AuditRecord } from "./audit-log.ts";
import type { Authenticator, Credentials } from "./authenticator.ts";
import type { Identity } from "./identity.ts";
import { ALWAYS_ALLOWED, REQUIREMENTS, allows, describeTarget, targetOf, type Action } from "./permissions.ts";
import { IDENTITIES_MAX, RateLimiter } from "./rate-limit.ts";

/** Actions whose requests change state: audited one by one when AUDIT_WRITES is on. */
const WRITES: ReadonlySet<Action> = new Set<Action>(["kv:put", "kv:delete", "lock:acquire", "queue:enqueue", "queue:consume", "queue:manage", "cache:set"]);
/** A flooding identity is noted in the audit log at most this often (every refusal is counted in metrics). */
const RATE_AUDIT_EVERY_MS = 10_000;

export interface AccessControlOptions {
  readonly authenticator: Authenticator;
  /** Where audit records go (the audit log, when AUDIT_LOG is set). */
  readonly audit: AuditSink | null;
  /** Audit every state-changing request, not only security events and admin operations. */
  readonly auditWrites: boolean;
  readonly registry: Registry;
  readonly now?: () => number;
}

export interface AuditSink {
  record(r: AuditRecord): void;
}

/** What the gate knows of one connection. */
export interface Caller {
  readonly identity: Identity;
  readonly source: string;
}

export class AccessControl {
  readonly #opts: AccessControlOptions;
  readonly #now: () => number;
  readonly #limiter = new RateLimiter();
  readonly #rateAudited = new Map<string, number>();
  readonly #metrics;

  constructor(opts: AccessControlOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    const registers = [opts.registry];
    this.#metrics = {
      authFailures: new Counter({ name: "dsync_auth_failures_total", help: "HELLOs refused: wrong or expired token, untrusted certificate, throttled address.", registers }),
      denied: new Counter({ name: "dsync_permission_denied_total", help: "Requests refused with PERMISSION_DENIED, per request type.", labelNames: ["op"] as const, registers }),
      rateLimited: new Counter({ name: "dsync_rate_limited_total", help: "Requests refused with RATE_LIMITED.", registers }),
    };
  }

  /** Authenticates a HELLO. @throws DsyncError UNAUTHENTICATED (audited). */
  async hello(creds: Credentials): Promise<Identity> {
    try {
      const identity = await this.#opts.authenticator.authenticate(creds);
      this.#audit({ event: "auth", identity: identity.subject, via: identity.via, source: creds.address, outcome: "ok", ...(identity.roles.length > 0 && { detail: `roles ${identity.roles.join(",")}` }) });
      return identity;
    } catch (err) {
      this.#metrics.authFailures.inc();
      this.#audit({ event: "auth", source: creds.address, outcome: "UNAUTHENTICATED", detail: (err as Error).message });
      throw err;
    }
  }

  /** Records a connection refused before HELLO (plaintext on a TLS port, untrusted certificate). */
  refusedConnection(source: string, why: string): void {
    this.#metrics.authFailures.inc();
    this.#audit({ event: "auth", source, outcome: "UNAUTHENTICATED", detail: why });
  }

  /** The refusal for `env` from `caller`, or null when it may run. */
  check(caller: Caller, env: Envelope, bytes: number): DsyncError | null {
    const id = caller.identity;
    if (id.expiresAt !== null && this.#now() >= id.expiresAt) {
      return new DsyncError(ErrorCode.TOKEN_EXPIRED, `the connection's ${id.via === "certificate" ? "certificate" : "token"} expired at ${new Date(id.expiresAt).toISOString()}: send HELLO with a fresh token`);
    }
    // PING needs no grant; types with no requirement are not client requests (the router answers
    // UNKNOWN_TYPE). Both still count against the rate below.
    const req = ALWAYS_ALLOWED.has(env.type) ? undefined : REQUIREMENTS.get(env.type);
    if (req !== undefined) {
      const target = targetOf(req, fieldsOf(env));
      if (!allows(id.grants, req.action, target)) {
        const resource = describeTarget(target);
        this.#metrics.denied.labels(opName(env.type).toLowerCase()).inc();
        this.#audit({ event: "denied", identity: id.subject, via: id.via, source: caller.source, op: opName(env.type), resource, outcome: "PERMISSION_DENIED" });
        return new PermissionDeniedError(`${id.subject} may not ${req.action} ${resource}${id.roles.length > 0 ? ` (roles: ${id.roles.join(", ")})` : " (no roles)"}`);
      }
    }
    if (id.rate !== null) {
      const wait = this.#limiter.take(id.subject, id.rate, bytes);
      if (wait > 0) {
        this.#metrics.rateLimited.inc();
        const last = this.#rateAudited.get(id.subject) ?? -Infinity;
        if (this.#now() - last >= RATE_AUDIT_EVERY_MS) {
          // Bounded like the limiter's buckets: a flood of distinct subjects cannot grow it forever.
          if (!this.#rateAudited.has(id.subject) && this.#rateAudited.size >= IDENTITIES_MAX) this.#rateAudited.delete(this.#rateAudited.keys().next().value!);
          this.#rateAudited.set(id.subject, this.#now());
          this.#audit({ event: "rate-limited", identity: id.subject, via: id.via, source: caller.source, op: opName(env.type), outcome: "RATE_LIMITED" });
        }
        return new RateLimitedError(`${id.subject} is over its rate limit; retry in ${wait} ms`, wait);
      }
    }
    return null;
  }

  /** Notes a request's outcome: admin operations always, writes when AUDIT_WRITES is on. */
  done(caller: Caller, env: Envelope, error: DsyncError | null): void {
    const req = REQUIREMENTS.get(env.type);
    if (req === undefined || this.#opts.audit === null) return;
    // A backup is one admin event: its ADMIN_BACKUP is audited, not each of its many chunks.
    const admin = req.action.startsWith("admin:") && env.type !== Op.ADMIN_BACKUP_CHUNK;
    if (!admin && !(this.#opts.auditWrites && WRITES.has(req.action))) return;
    const body = fieldsOf(env);
    const target = env.type === Op.ADMIN_TRANSFER_LEADER ? String(body.to ?? "(any)") : describeTarget(targetOf(req, body));
    this.#audit({ event: admin ? "admin" : "write", identity: caller.identity.subject, via: caller.identity.via, source: caller.source, op: opName(env.type), resource: target, outcome: error === null ? "ok" : error.codeName });
  }

  #audit(r: AuditRecord): void {
    this.#opts.audit?.record(r);
  }
}

/** The request's fields when its body is a map (else none: its handler refuses it). */
function fieldsOf(env: Envelope): Readonly<Record<string, unknown>> {
  return env.body !== null && typeof env.body === "object" && !Array.isArray(env.body) ? (env.body as Record<string, unknown>) : {};
}
