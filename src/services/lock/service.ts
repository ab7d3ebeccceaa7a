import { Histogram, Gauge, Counter } from "prom-client";
import {
  InvalidArgumentError,
  Op,
  asFields,
  errorForCode,
  bool,
  int,
  shown,
  str,
  type Fields,
} from "../../../protocol/index.ts";
import type { LockMachine } from "./machine/lock-machine.ts";
import { SESSION_TTL_MS_MAX_DEFAULT, SESSION_TTL_MS_MIN } from "./machine/sessions.ts";
import { CLIENT_ID_BYTES_MAX, RESOURCE_BYTES_MAX } from "./machine/validate.ts";
import type { LockEvent, LockListReply, LockMode, LockResult, LockStatusReply } from "./machine/types.ts";
import type { FramedSocket } from "../../transport/framed-socket.ts";
import { ExpiryLoop } from "../../host/expiry-loop.ts";
import type { Logger } from "../../host/logger.ts";
import type { NodeMetrics } from "../../host/metrics.ts";
import type { Proposer } from "../../host/proposer.ts";
import type { RaftGroup } from "../../host/raft-group.ts";
import type { RequestContext } from "../../host/request-router.ts";
import type { Handlers, Service } from "../../host/service.ts";

/** Lock session TTL when the client does not ask for one. */
export const SESSION_TTL_MS_DEFAULT = 10_000;

/** Longest hold (`ttlMs`) or wait (`waitMs`) one acquire may ask for. */
const ACQUIRE_MS_MAX = 24 * 3600_000;

/**
 * The lock service's node side: validates requests, proposes them through group 0 (stamped
 * with the leader's clock), binds sessions to the connections that use them so grants and
 * losses are pushed (LOCK_EVENT) rather than polled, and — on the leader — proposes expiry
 * when a session, hold or wait passes its deadline.
 */
export class LockService implements Service {
  readonly name = "locks";
  readonly #bound = new Map<number, Set<FramedSocket>>();
  /** When a queued acquire arrived, by waitId, for the wait-time histogram. */
  readonly #waitStarted = new Map<number, number>();
  readonly #waitSeconds: Histogram<string>;
  readonly #gauges: { held: Gauge<string>; waiters: Gauge<string>; sessions: Gauge<string>; grants: Gauge<string>; deadlocks: Gauge<string>; expiries: Gauge<string> };
  readonly #pushes: Counter<string>;
  readonly #expiry: ExpiryLoop;

  constructor(
    readonly machine: LockMachine,
    readonly group0: RaftGroup,
    readonly proposer: Proposer,
    readonly metrics: NodeMetrics,
    readonly log: Logger,
  ) {
    const registers = [metrics.registry];
    this.#waitSeconds = new Histogram({
      name: "dsync_lock_wait_seconds",
      help: "Time from a queued acquire to its grant, as seen by the node the client is connected to.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#gauges = {
      held: new Gauge({ name: "dsync_lock_held", help: "Locks held (holder count over all resources).", registers }),
      waiters: new Gauge({ name: "dsync_lock_waiters", help: "Acquire requests waiting in a queue.", registers }),
      sessions: new Gauge({ name: "dsync_lock_sessions", help: "Open lock sessions.", registers }),
      grants: new Gauge({ name: "dsync_lock_grants", help: "Locks granted since the state began (replicated count).", registers }),
      deadlocks: new Gauge({ name: "dsync_lock_deadlocks", help: "Deadlocks detected and broken (replicated count).", registers }),
      expiries: new Gauge({ name: "dsync_lock_session_expiries", help: "Sessions expired for lack of keep-alive (replicated count).", registers }),
    };
    this.#expiry = new ExpiryLoop({
      isLeader: () => group0.isLeader,
      nextDeadline: () => machine.nextDeadline(),
      expire: () => proposer.proposeStamped(0, { op: "expire" }),
      log,
      what: "locks",
    });
    this.#pushes = new Counter({ name: "dsync_lock_events_pushed_total", help: "LOCK_EVENT pushes sent to clients.", labelNames: ["kind"] as const, registers });
  }

  /** Pushes a machine event to every connection bound to its session. Runs on every replica. */
  onEvent(e: LockEvent): void {
    if (e.kind === "granted") {
      const started = this.#waitStarted.get(e.waitId);
      if (started !== undefined) {
        this.#waitStarted.delete(e.waitId);
        this.#waitSeconds.observe((performance.now() - started) / 1000);
      }
    } else if (e.kind === "refused") {
      this.#waitStarted.delete(e.waitId);
    }
    const conns = this.#bound.get(e.sessionId);
    if (!conns) {
      // Bound on another node (or nowhere): that replica pushes it when it applies, so the
      // followers must hear of this commit now, not with the next append (see commit-notices.ts).
      this.proposer.host.group(0)?.notifyFollowersNow();
      return;
    }
    for (const c of conns) c.send({ type: Op.LOCK_EVENT, id: 0, body: e });
    this.#pushes.labels(e.kind).inc(conns.size);
  }

  /** Copies the replicated counters into gauges before a scrape. */
  refreshGauges(): void {
    const s = this.machine.stats();
    this.#gauges.held.set(s.locksHeld);
    this.#gauges.waiters.set(s.waiters);
    this.#gauges.sessions.set(s.sessions);
    this.#gauges.grants.set(s.grants);
    this.#gauges.deadlocks.set(s.deadlocks);
    this.#gauges.expiries.set(s.sessionExpiries);
  }

  register({ client: router }: Handlers): void {
    router.register(Op.LOCK_SESSION_OPEN, async (body, ctx) => {
      const f = asFields(body, "LOCK_SESSION_OPEN");
      const clientId = str(f, "clientId", "LOCK_SESSION_OPEN", { optional: true, maxBytes: CLIENT_ID_BYTES_MAX }) ?? "anonymous";
      const ttlMs = int(f, "ttlMs", "LOCK_SESSION_OPEN", { optional: true, min: SESSION_TTL_MS_MIN, max: SESSION_TTL_MS_MAX_DEFAULT }) ?? SESSION_TTL_MS_DEFAULT;
      const r = await this.#propose({ op: "session.open", clientId, ttlMs });
      if (r.ok && r.kind === "session") this.#bind(r.sessionId, ctx);
      return r.ok && r.kind === "session" ? { sessionId: r.sessionId, expiresAt: r.expiresAt, ttlMs } : r;
    });
    router.register(Op.LOCK_KEEPALIVE, async (body, ctx) => {
      const f = asFields(body, "LOCK_KEEPALIVE");
      const sessionId = int(f, "sessionId", "LOCK_KEEPALIVE");
      // Binding first: a client that reconnected here hears its events from now on.
      this.#bind(sessionId, ctx);
      const r = await this.#propose({ op: "session.keepalive", sessionId });
      return r.ok && r.kind === "session" ? { sessionId, expiresAt: r.expiresAt } : r;
    });
    router.register(Op.LOCK_SESSION_CLOSE, async (body) => {
      const f = asFields(body, "LOCK_SESSION_CLOSE");
      const sessionId = int(f, "sessionId", "LOCK_SESSION_CLOSE");
      await this.#propose({ op: "session.close", sessionId });
      this.#bound.delete(sessionId);
      return { sessionId, closed: true };
    });
    router.register(Op.LOCK_ACQUIRE, async (body, ctx) => {
      const f = asFields(body, "LOCK_ACQUIRE");
      const sessionId = int(f, "sessionId", "LOCK_ACQUIRE");
      const seq = int(f, "seq", "LOCK_ACQUIRE", { min: 1 });
      const resource = str(f, "resource", "LOCK_ACQUIRE", { maxBytes: RESOURCE_BYTES_MAX });
      if (resource.length === 0) throw new InvalidArgumentError("LOCK_ACQUIRE: field \"resource\" must not be empty");
      const mode = modeOf(f);
      const ttlMs = int(f, "ttlMs", "LOCK_ACQUIRE", { optional: true, min: 1, max: ACQUIRE_MS_MAX }) ?? null;
      const waitMs = int(f, "waitMs", "LOCK_ACQUIRE", { optional: true, min: -1, max: ACQUIRE_MS_MAX }) ?? -1;
      this.#bind(sessionId, ctx);
      const started = performance.now();
      const r = await this.#propose({ op: "acquire", sessionId, seq, resource, mode, ttlMs, waitMs });
      if (r.ok && r.kind === "queued" && !this.#waitStarted.has(r.waitId)) this.#waitStarted.set(r.waitId, started);
      return r;
    });
    router.register(Op.LOCK_RELEASE, async (body) => {
      const f = asFields(body, "LOCK_RELEASE");
      const sessionId = int(f, "sessionId", "LOCK_RELEASE");
      const seq = int(f, "seq", "LOCK_RELEASE", { min: 1 });
      const resource = str(f, "resource", "LOCK_RELEASE", { maxBytes: RESOURCE_BYTES_MAX });
      const token = int(f, "token", "LOCK_RELEASE");
      return this.#propose({ op: "release", sessionId, seq, resource, token });
    });
    router.register(Op.LOCK_STATUS, async (body): Promise<LockStatusReply> => {
      const f = asFields(body, "LOCK_STATUS");
      const resource = str(f, "resource", "LOCK_STATUS", { maxBytes: RESOURCE_BYTES_MAX });
      if (!bool(f, "stale", "LOCK_STATUS")) await this.proposer.readBarrier(0);
      return { resource, ...(this.machine.resource(resource) ?? { mode: null, holders: [], waiters: [] }) };
    });
    router.register(Op.LOCK_LIST, async (body): Promise<LockListReply> => {
      const f = asFields(body, "LOCK_LIST");
      if (!bool(f, "stale", "LOCK_LIST")) await this.proposer.readBarrier(0);
      const resources = this.machine.resources().map((name) => ({ resource: name, ...this.machine.resource(name)! }));
      return { resources, stats: this.machine.stats() };
    });
  }

  /** Starts the leader's expiry loop (a no-op on followers). */
  start(): void {
    this.#expiry.start();
  }

  stop(): void {
    this.#expiry.stop();
  }

  /** Proposes a lock command and turns a refusal into its typed error. */
  async #propose(cmd: Record<string, unknown>): Promise<Extract<LockResult, { ok: true }>> {
    const r = (await this.proposer.proposeStamped(0, cmd)) as LockResult;
    if (r.ok) return r;
    throw errorForCode(r.code, r.message);
  }

  #bind(sessionId: number, ctx: RequestContext): void {
    let set = this.#bound.get(sessionId);
    if (!set) this.#bound.set(sessionId, (set = new Set()));
    if (set.has(ctx.conn)) return;
    set.add(ctx.conn);
    ctx.onClose(() => {
      set.delete(ctx.conn);
      if (set.size === 0 && this.#bound.get(sessionId) === set) this.#bound.delete(sessionId);
    });
  }
}

function modeOf(f: Fields): LockMode {
  const mode = f.mode ?? "exclusive";
  if (mode !== "exclusive" && mode !== "shared") throw new InvalidArgumentError(`LOCK_ACQUIRE: field "mode" must be "exclusive" or "shared", got ${shown(mode)}`);
  return mode;
}

