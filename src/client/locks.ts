import { EventEmitter } from "node:events";
import { DsyncError, ErrorCode, Op, SessionExpiredError, errorForCode, type Envelope, type LockEvent, type LockGranted, type LockMode, type LockQueued, type LockStatusReply } from "../../protocol/index.ts";
import type { DsyncClient } from "./client.ts";

export type { LockMode };

/** Options of {@link LockClient.acquire}. */
export interface AcquireOptions {
  /** Default "exclusive". Shared holders coexist; an exclusive holder is alone. */
  readonly mode?: LockMode;
  /** Release the lock automatically this long after it is granted (default: held until released or the session ends). */
  readonly ttlMs?: number;
  /** How long to wait in the queue: 0 = try once (LockHeldError if taken), -1 (default) = wait forever. */
  readonly waitMs?: number;
}

/** A granted lock. Pass `token` to whatever the lock protects so it can refuse stale holders. */
export interface Lock {
  readonly resource: string;
  readonly mode: LockMode;
  /** The fencing token: strictly increasing per resource across all grants. */
  readonly token: number;
  readonly sessionId: number;
}

/** Session lifecycle events. */
export interface LockClientEvents {
  /** The session expired (no keep-alive reached the cluster within its TTL): every lock is gone. */
  "session-expired": [sessionId: number];
  /** A held lock was taken away (its per-acquire TTL ran out, or the session expired). */
  lost: [lock: { resource: string; token: number; reason: string }];
}

interface PendingWait {
  readonly resource: string;
  /** When the wait was queued (Date.now()). */
  readonly since: number;
  readonly mode: LockMode;
  resolve(lock: Lock): void;
  reject(err: Error): void;
}

/** A pushed LOCK_EVENT, or a refusal this client concludes itself (a wait that ended without a grant reaching it). */
type LockEventBody = LockEvent | { kind: "refused"; sessionId: number; waitId: number; resource: string; code: "NOT_HELD"; message: string };

type AcquireReply = LockGranted | LockQueued;

/** How long a grant pushed before its acquire's "queued" reply is kept for it. */
const EARLY_EVENT_TTL_MS = 30_000;

/**
 * Distributed locks over a {@link DsyncClient}: one session (a lease kept alive in the
 * background), exclusive and shared locks with fencing tokens, FIFO waiting with grants pushed by
 * the cluster, and exactly-once acquire/release under retries (each request carries the
 * session's sequence number; the cluster deduplicates).
 */
export class LockClient extends EventEmitter<LockClientEvents> {
  readonly #client: DsyncClient;
  readonly #ttlMs: number;
  readonly #clientId: string;
  #sessionId: number | null = null;
  #opening: Promise<number> | null = null;
  #seq = 0;
  #keepalive: NodeJS.Timeout | null = null;
  /**
   * Until when (performance.now()) the session is certainly alive: the send time of the last
   * acknowledged open or keep-alive plus the TTL. The cluster extends the session from when it
   * applies the request, which is later, so this never overestimates.
   */
  #leaseUntil = 0;
  readonly #waits = new Map<number, PendingWait>();
  readonly #early = new Map<number, { body: LockEventBody; at: number }>();
  readonly #onPush = (env: Envelope): void => this.#handlePush(env);
  readonly #onConnect = (): void => void this.#rebind();
  #closed = false;

  constructor(client: DsyncClient, opts: { sessionTtlMs?: number; clientId?: string } = {}) {
    super();
    this.#client = client;
    this.#ttlMs = opts.sessionTtlMs ?? 10_000;
    this.#clientId = opts.clientId ?? `client-${process.pid}`;
    // Many lock clients may share one connection; each adds two listeners.
    if (client.getMaxListeners() !== 0) client.setMaxListeners(client.getMaxListeners() + 2);
    client.on("push", this.#onPush);
    client.on("connect", this.#onConnect);
  }

  /** The session id, once a session is open. */
  get sessionId(): number | null {
    return this.#sessionId;
  }

  /**
   * Acquires `resource`; resolves when granted (after waiting in line if needed).
   * @throws LockHeldError (try-lock), LockWaitTimeoutError, DeadlockError (release what you hold
   * and retry), SessionExpiredError, InvalidArgumentError.
   */
  async acquire(resource: string, opts: AcquireOptions = {}): Promise<Lock> {
    const sessionId = await this.#session();
    const mode = opts.mode ?? "exclusive";
    const r = (await this.#sequenced(Op.LOCK_ACQUIRE, (seq) => ({ sessionId, seq, resource, mode, waitMs: opts.waitMs ?? -1, ...(opts.ttlMs !== undefined && { ttlMs: opts.ttlMs }) }))) as AcquireReply;
    if (r.kind === "granted") return { resource, mode: r.mode, token: r.token, sessionId };
    return new Promise<Lock>((resolve, reject) => {
      this.#waits.set(r.waitId, { resource, mode, since: Date.now(), resolve, reject });
      const early = this.#early.get(r.waitId);
      if (early) {
        this.#early.delete(r.waitId);
        this.#settle(early.body);
      }
    });
  }

  /** Releases a lock. @throws NotHeldError if it is not held (any more) by this session. */
  async release(lock: Lock): Promise<void> {
    await this.#sequenced(Op.LOCK_RELEASE, (seq) => ({ sessionId: lock.sessionId, seq, resource: lock.resource, token: lock.token }));
  }

  /**
   * Sends a request carrying the session's next sequence number. Requests of one session go
   * one at a time — the cluster deduplicates by the last sequence number, so they must arrive
   * in order — and a resend of the same number after a lost reply is answered with the first
   * result (exactly once). Waiting for a queued lock does not hold this line.
   */
  #sequenced(op: number, body: (seq: number) => object): Promise<unknown> {
    const run = this.#line.then(() => this.#client.call(op, body(++this.#seq), { idempotent: true }));
    this.#line = run.catch(() => {});
    return run;
  }

  #line: Promise<unknown> = Promise.resolve();

  /** Runs `fn` under the lock and always releases it, even when `fn` throws. */
  async withLock<T>(resource: string, opts: AcquireOptions, fn: (lock: Lock) => Promise<T> | T): Promise<T> {
    const lock = await this.acquire(resource, opts);
    try {
      return await fn(lock);
    } finally {
      await this.release(lock).catch(() => {
        // Not held any more (TTL or session expiry): nothing left to release.
      });
    }
  }

  /** Holders and waiters of `resource` (linearizable). */
  async status(resource: string): Promise<unknown> {
    return this.#client.call(Op.LOCK_STATUS, { resource }, { idempotent: true });
  }

  /** Ends the session: every lock it holds is released and its waits are cancelled. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#keepalive) clearInterval(this.#keepalive);
    this.#client.off("push", this.#onPush);
    this.#client.off("connect", this.#onConnect);
    if (this.#client.getMaxListeners() > 2) this.#client.setMaxListeners(this.#client.getMaxListeners() - 2);
    const id = this.#sessionId;
    this.#sessionId = null;
    this.#failWaits(new DsyncError(ErrorCode.CONNECTION_CLOSED, "lock client closed"));
    if (id !== null) await this.#client.call(Op.LOCK_SESSION_CLOSE, { sessionId: id }, { idempotent: true }).catch(() => {});
  }

  #session(): Promise<number> {
    if (this.#closed) return Promise.reject(new DsyncError(ErrorCode.CONNECTION_CLOSED, "lock client closed"));
    if (this.#sessionId !== null) return Promise.resolve(this.#sessionId);
    this.#opening ??= (async () => {
      const sentAt = performance.now();
      const r = (await this.#client.call(Op.LOCK_SESSION_OPEN, { clientId: this.#clientId, ttlMs: this.#ttlMs })) as { sessionId: number };
      this.#sessionId = r.sessionId;
      this.#leaseUntil = sentAt + this.#ttlMs;
      this.#seq = 0;
      // A third of the TTL leaves two more chances before the session lapses.
      this.#keepalive = setInterval(() => void this.#keepAlive(), Math.max(100, Math.floor(this.#ttlMs / 3)));
      this.#keepalive.unref();
      return r.sessionId;
    })().finally(() => {
      this.#opening = null;
    });
    return this.#opening;
  }

  async #keepAlive(): Promise<void> {
    const id = this.#sessionId;
    if (id === null) return;
    try {
      const sentAt = performance.now();
      await this.#client.call(Op.LOCK_KEEPALIVE, { sessionId: id }, { idempotent: true });
      if (this.#sessionId === id) this.#leaseUntil = Math.max(this.#leaseUntil, sentAt + this.#ttlMs);
      // Waits older than a keep-alive round are rechecked, so a lost push cannot strand one.
      const now = Date.now();
      for (const [waitId, w] of this.#waits) if (now - w.since > this.#ttlMs / 3) void this.#recheck(id, waitId, w);
    } catch (err) {
      if (err instanceof SessionExpiredError) this.#expired(id);
    }
  }

  /** After a reconnect: bind the session to the new connection and recheck pending waits. */
  async #rebind(): Promise<void> {
    const id = this.#sessionId;
    if (id === null) return;
    await this.#keepAlive();
    for (const [waitId, w] of this.#waits) await this.#recheck(id, waitId, w);
  }

  /**
   * Asks the cluster (linearizable LOCK_STATUS) what became of a queued wait: a grant or refusal
   * pushed while no connection of ours was bound, or lost with a connection, is learnt here.
   */
  async #recheck(id: number, waitId: number, w: PendingWait): Promise<void> {
    try {
      const s = (await this.#client.call(Op.LOCK_STATUS, { resource: w.resource }, { idempotent: true })) as LockStatusReply;
      if (this.#waits.get(waitId) !== w) return;
      const held = s.holders.find((h) => h.sessionId === id);
      if (held) this.#settle({ kind: "granted", sessionId: id, waitId, resource: w.resource, mode: held.mode, token: held.token });
      else if (!s.waiters.some((x) => x.waitId === waitId)) {
        this.#settle({ kind: "refused", sessionId: id, waitId, resource: w.resource, code: "NOT_HELD", message: "the wait ended without a grant reaching this client" });
      }
    } catch {
      // The next reconnect, keep-alive round or recheck tries again.
    }
  }

  #handlePush(env: Envelope): void {
    if (env.type !== Op.LOCK_EVENT) return;
    const body = env.body as LockEventBody;
    if (body.sessionId !== this.#sessionId) return;
    if ((body.kind === "granted" || body.kind === "refused") && !this.#waits.has(body.waitId)) {
      // The push can overtake the "queued" reply when the grant commits right away.
      this.#early.set(body.waitId, { body, at: Date.now() });
      for (const [k, v] of this.#early) if (Date.now() - v.at > EARLY_EVENT_TTL_MS) this.#early.delete(k);
      return;
    }
    this.#settle(body);
  }

  #settle(body: LockEventBody): void {
    switch (body.kind) {
      case "granted": {
        const w = this.#waits.get(body.waitId);
        if (!w) return;
        this.#waits.delete(body.waitId);
        const lock = { resource: body.resource, mode: body.mode, token: body.token, sessionId: body.sessionId };
        if (performance.now() <= this.#leaseUntil) w.resolve(lock);
        else void this.#confirm(lock, w);
        return;
      }
      case "refused": {
        const w = this.#waits.get(body.waitId);
        if (!w) return;
        this.#waits.delete(body.waitId);
        w.reject(errorForCode(body.code, body.message));
        return;
      }
      case "lost":
        this.emit("lost", { resource: body.resource, token: body.token, reason: body.reason });
        return;
      case "session-expired":
        this.#expired(body.sessionId);
        return;
    }
  }

  /**
   * A grant that reaches us after our lease may have lapsed (a push from a replica replaying its
   * log after a restart can arrive seconds late) may already have been taken away by session
   * expiry: hand it out only if a linearizable read shows this session still holds it.
   */
  async #confirm(lock: Lock, w: PendingWait): Promise<void> {
    try {
      const s = (await this.#client.call(Op.LOCK_STATUS, { resource: lock.resource }, { idempotent: true })) as LockStatusReply;
      if (s.holders.some((h) => h.sessionId === lock.sessionId && h.token === lock.token)) w.resolve(lock);
      else w.reject(new SessionExpiredError(`the grant of ${lock.resource} (token ${lock.token}) arrived after the session's lease lapsed and is no longer held`));
    } catch (err) {
      w.reject(err as Error);
    }
  }

  #expired(id: number): void {
    if (this.#sessionId !== id) return;
    this.#sessionId = null;
    if (this.#keepalive) clearInterval(this.#keepalive);
    this.#failWaits(new SessionExpiredError(`lock session ${id} expired; its locks were released`));
    this.emit("session-expired", id);
  }

  #failWaits(err: Error): void {
    for (const w of this.#waits.values()) w.reject(err);
    this.#waits.clear();
  }
}
