import type { LockMode, ResourceView } from "./types.ts";

/** A granted lock. `token` is the log index of the entry that granted it (the fencing token). */
export interface Hold {
  readonly sessionId: number;
  readonly token: number;
  readonly mode: LockMode;
  readonly expiresAt: number | null;
}

/** A pending request, queued FIFO on its resource. `waitId` is the log index of the acquire. */
export interface Waiter {
  readonly resource: string;
  readonly sessionId: number;
  readonly waitId: number;
  readonly mode: LockMode;
  readonly deadline: number | null;
  /** The per-acquire TTL the hold will get once granted. */
  readonly ttlMs: number | null;
}

/** One lockable name: its holders (in grant order) and its wait queue. */
export interface Resource {
  readonly name: string;
  mode: LockMode | null;
  readonly holders: Map<number, Hold>;
  readonly waiters: Waiter[];
  /** Token and mode of the latest grant, for the fencing invariant. */
  lastToken: number;
  lastMode: LockMode | null;
}

/** Thrown when the state machine finds its own state inconsistent: a bug, never bad input. */
export class LockInvariantError extends Error {
  override name = "LockInvariantError";
}

/** Throws a {@link LockInvariantError} unless `cond` holds. */
export function invariant(cond: boolean, what: string): asserts cond {
  if (!cond) throw new LockInvariantError(`lock invariant violated: ${what}`);
}

/** Whether a request in `mode` is compatible with the current holders (ignoring the queue). */
export function compatible(r: Resource, mode: LockMode): boolean {
  return r.holders.size === 0 || (mode === "shared" && r.mode === "shared");
}

/**
 * Whether a new request can be granted at once. A shared request does not join shared holders
 * while anyone is queued: the queue head is then an exclusive request, and letting readers
 * overtake it would starve writers.
 */
export function canGrantNow(r: Resource | undefined, mode: LockMode): boolean {
  return r === undefined || (r.waiters.length === 0 && compatible(r, mode));
}

/**
 * The per-resource invariants, cheap enough to check after every change of a resource:
 * O(holders) plus one look at the queue head.
 */
export function assertResource(r: Resource): void {
  // Invariant: the mode is null exactly when nobody holds the resource.
  invariant((r.mode === null) === (r.holders.size === 0), `${r.name}: mode ${r.mode} with ${r.holders.size} holders`);
  // Invariant: never two exclusive holders.
  invariant(r.mode !== "exclusive" || r.holders.size === 1, `${r.name}: ${r.holders.size} exclusive holders`);
  // Invariant: never an exclusive beside a shared holder.
  for (const h of r.holders.values()) invariant(h.mode === r.mode, `${r.name}: ${h.mode} holder in ${r.mode} mode`);
  // Invariant: the queue head is blocked; otherwise it would already have been granted.
  const head = r.waiters[0];
  invariant(head === undefined || !compatible(r, head.mode), `${r.name}: grantable waiter ${head?.waitId} left queued`);
}

/** The resources by name, created on first use and dropped when idle (bounded memory). */
export class ResourceTable {
  #byName = new Map<string, Resource>();

  get size(): number {
    return this.#byName.size;
  }

  get(name: string): Resource | undefined {
    return this.#byName.get(name);
  }

  getOrCreate(name: string): Resource {
    let r = this.#byName.get(name);
    if (r === undefined) {
      r = { name, mode: null, holders: new Map(), waiters: [], lastToken: 0, lastMode: null };
      this.#byName.set(name, r);
    }
    return r;
  }

  /**
   * Drops a resource nobody holds or waits for. Fencing survives: tokens are log indices, so a
   * resource created again later gets higher tokens than any it had before.
   */
  dropIfIdle(r: Resource): void {
    if (r.holders.size === 0 && r.waiters.length === 0) this.#byName.delete(r.name);
  }

  /** All resources in a canonical order (creation order; restore preserves it). */
  values(): IterableIterator<Resource> {
    return this.#byName.values();
  }

  names(): string[] {
    return [...this.#byName.keys()].sort();
  }

  clear(): void {
    this.#byName.clear();
  }

  /** Adds a restored resource (in snapshot order). */
  put(r: Resource): void {
    this.#byName.set(r.name, r);
  }
}

/** A copy of a resource for the read-only views. */
export function viewOf(r: Resource): ResourceView {
  return {
    mode: r.mode,
    holders: [...r.holders.values()].map((h) => ({ sessionId: h.sessionId, token: h.token, mode: h.mode, expiresAt: h.expiresAt })),
    waiters: r.waiters.map((w) => ({ sessionId: w.sessionId, waitId: w.waitId, mode: w.mode, deadline: w.deadline })),
  };
}
