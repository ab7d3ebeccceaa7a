/**
 * Mutual exclusion and fencing of lock holds.
 *
 * What a client can know: a hold whose release was confirmed was held continuously from the
 * grant's arrival to the release's sending (the server granted before the first and released
 * after the second), so two such holds of one resource must not overlap. A hold that was never
 * confirmed may have been lost early (session expiry under a pause): it may overlap others, and
 * the fenced resource is what must then refuse its stale writes. Tokens are issued at grant
 * commit, so a hold granted before another was even requested must carry a smaller token.
 *
 * Pure: no I/O, no timers.
 */

export interface LockHold {
  client: string;
  resource: string;
  token: number;
  /** When acquire was sent. */
  acquireInvokeMs: number;
  /** When the grant arrived at the client. */
  grantMs: number;
  /** When the client sent its release (null: never released, e.g. session lost). */
  releaseSendMs: number | null;
  /** Release returned ok (so the lock was held continuously until then). */
  releaseConfirmed: boolean;
}

export interface FencedWrite {
  client: string;
  resource: string;
  token: number;
  atMs: number;
  accepted: boolean;
  duringConfirmedHold: boolean;
}

export interface LockHistory {
  holds: LockHold[];
  writes: FencedWrite[];
  acquires: { ok: number; fail: number; unknown: number };
}

export type LockViolationKind = "overlap" | "token-order" | "token-reused" | "refused-under-hold" | "fenced-order";

export interface LockViolation {
  readonly kind: LockViolationKind;
  readonly message: string;
  readonly ops: (LockHold | FencedWrite)[];
}

export interface LockStats {
  resources: number;
  holds: number;
  confirmedHolds: number;
  /** Holds whose release was never confirmed (lost sessions, unknown releases). */
  unconfirmedHolds: number;
  writes: number;
  acceptedWrites: number;
  /** Refused writes outside confirmed holds: the fenced resource doing its job after a lost lock. */
  refusedStaleWrites: number;
  /** Refused writes during confirmed holds (each is a violation). */
  refusedConfirmedWrites: number;
  /** Most confirmed holds of one resource held at one instant (1 when exclusion holds). */
  maxConcurrentConfirmed: number;
  /** Longest overlap of two confirmed holds, ms (0 when exclusion holds). */
  maxOverlapMs: number;
  /**
   * Holds granted before an earlier hold of the resource sent its release, confirmed or not (for
   * the report: with unconfirmed holds these are lost locks, legitimate under pauses).
   */
  overlappingHolds: number;
  acquires: { ok: number; fail: number; unknown: number };
}

export interface LockResult {
  readonly ok: boolean;
  readonly violations: LockViolation[];
  readonly stats: LockStats;
}

/** Checks mutual exclusion, token order and fencing; O(n log n) per resource. */
export function checkLocks(history: LockHistory): LockResult {
  const violations: LockViolation[] = [];
  const stats: LockStats = {
    resources: 0,
    holds: history.holds.length,
    confirmedHolds: 0,
    unconfirmedHolds: 0,
    writes: history.writes.length,
    acceptedWrites: 0,
    refusedStaleWrites: 0,
    refusedConfirmedWrites: 0,
    maxConcurrentConfirmed: 0,
    maxOverlapMs: 0,
    overlappingHolds: 0,
    acquires: { ...history.acquires },
  };
  const holdsBy = groupBy(history.holds, (h) => h.resource);
  const writesBy = groupBy(history.writes, (w) => w.resource);
  stats.resources = new Set([...holdsBy.keys(), ...writesBy.keys()]).size;

  for (const holds of holdsBy.values()) {
    for (const h of holds) {
      if (isConfirmed(h)) stats.confirmedHolds++;
      else stats.unconfirmedHolds++;
    }
    checkExclusion(holds, violations, stats);
    checkTokens(holds, violations);
  }
  for (const [resource, writes] of writesBy) checkFencing(writes, holdsBy.get(resource) ?? [], violations, stats);
  return { ok: violations.length === 0, violations, stats };
}

function isConfirmed(h: LockHold): h is LockHold & { releaseSendMs: number } {
  return h.releaseConfirmed && h.releaseSendMs !== null;
}

/**
 * (a) Confirmed holds must not overlap on [grantMs, releaseSendMs]. Sorted by grant, a hold
 * overlaps an earlier one iff it is granted before the latest release seen so far; reporting the
 * pair with that latest-releasing hold names one witness per overlapping hold.
 * Touching ends (grant == release) count as no overlap: the clock cannot order them.
 */
function checkExclusion(holds: readonly LockHold[], out: LockViolation[], stats: LockStats): void {
  const confirmed = holds.filter(isConfirmed).sort((a, b) => a.grantMs - b.grantMs);
  let latest: (LockHold & { releaseSendMs: number }) | null = null;
  for (const h of confirmed) {
    if (latest && h.grantMs < latest.releaseSendMs) {
      const overlap = Math.min(h.releaseSendMs, latest.releaseSendMs) - h.grantMs;
      stats.maxOverlapMs = Math.max(stats.maxOverlapMs, overlap);
      out.push({
        kind: "overlap",
        message: `${h.resource}: ${h.client} was granted token ${h.token} at ${ms(h.grantMs)} while ${latest.client} certainly held token ${latest.token} (granted ${ms(latest.grantMs)}, released ${ms(latest.releaseSendMs)}, confirmed); overlap ${overlap.toFixed(1)} ms`,
        ops: [latest, h],
      });
    }
    if (!latest || h.releaseSendMs > latest.releaseSendMs) latest = h;
  }
  stats.maxConcurrentConfirmed = Math.max(stats.maxConcurrentConfirmed, maxConcurrent(confirmed));
  // For the report only: overlaps of any holds, which may have been lost early.
  const all = holds.map((h) => ({ from: h.grantMs, to: h.releaseSendMs ?? h.grantMs })).sort((a, b) => a.from - b.from);
  let reach = -Infinity;
  for (const iv of all) {
    if (iv.from < reach) stats.overlappingHolds++;
    reach = Math.max(reach, iv.to);
  }
}

/** Most intervals open at once (sweep over sorted ends; a release at t closes before a grant at t). */
function maxConcurrent(holds: readonly (LockHold & { releaseSendMs: number })[]): number {
  const ev: [number, number][] = [];
  for (const h of holds) ev.push([h.grantMs, 1], [h.releaseSendMs, -1]);
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of ev) max = Math.max(max, (open += d));
  return max;
}

/**
 * (b) A hold granted before another's acquire was sent carries a smaller token, and no token is
 * issued twice. Holds by acquire time, against the largest token among holds granted before it.
 */
function checkTokens(holds: readonly LockHold[], out: LockViolation[]): void {
  const byInvoke = [...holds].sort((a, b) => a.acquireInvokeMs - b.acquireInvokeMs);
  const byGrant = [...holds].sort((a, b) => a.grantMs - b.grantMs);
  let g = 0;
  let top: LockHold | null = null;
  for (const b of byInvoke) {
    while (g < byGrant.length && byGrant[g]!.grantMs < b.acquireInvokeMs) {
      const a = byGrant[g++]!;
      if (!top || a.token > top.token) top = a;
    }
    if (top && top.token >= b.token) {
      out.push({
        kind: "token-order",
        message: `${b.resource}: ${b.client} requested at ${ms(b.acquireInvokeMs)} and got token ${b.token}, but ${top.client} had already been granted token ${top.token} at ${ms(top.grantMs)}`,
        ops: [top, b],
      });
    }
  }
  const seen = new Map<number, LockHold>();
  for (const h of byGrant) {
    const first = seen.get(h.token);
    if (!first) {
      seen.set(h.token, h);
      continue;
    }
    // Already reported as a token-order violation when the first was granted before h was requested.
    if (first.grantMs < h.acquireInvokeMs) continue;
    out.push({ kind: "token-reused", message: `${h.resource}: token ${h.token} was granted to ${first.client} at ${ms(first.grantMs)} and again to ${h.client} at ${ms(h.grantMs)}`, ops: [first, h] });
  }
}

/**
 * (c) A write made during a confirmed hold must be accepted: a refusal means the resource had
 * seen a higher token while this hold certainly held the lock. (d) Accepted writes, in time
 * order, never go back in token.
 */
function checkFencing(writes: readonly FencedWrite[], holds: readonly LockHold[], out: LockViolation[], stats: LockStats): void {
  const sorted = [...writes].sort((a, b) => a.atMs - b.atMs);
  let highest: FencedWrite | null = null;
  for (const w of sorted) {
    if (w.accepted) {
      stats.acceptedWrites++;
      if (highest && w.token < highest.token) {
        out.push({
          kind: "fenced-order",
          message: `${w.resource}: write with token ${w.token} by ${w.client} at ${ms(w.atMs)} was accepted after token ${highest.token} (${highest.client} at ${ms(highest.atMs)})`,
          ops: [highest, w],
        });
      }
      if (!highest || w.token > highest.token) highest = w;
    } else if (w.duringConfirmedHold) {
      stats.refusedConfirmedWrites++;
      const hold = holds.find((h) => h.client === w.client && h.token === w.token);
      const ops: (LockHold | FencedWrite)[] = [w];
      if (hold) ops.unshift(hold);
      if (highest) ops.push(highest);
      out.push({
        kind: "refused-under-hold",
        message: `${w.resource}: write with token ${w.token} by ${w.client} at ${ms(w.atMs)} was refused during a confirmed hold${highest ? `; token ${highest.token} (${highest.client}) had been accepted at ${ms(highest.atMs)}` : ""}`,
        ops,
      });
    } else {
      stats.refusedStaleWrites++;
    }
  }
}

function groupBy<T>(items: readonly T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of items) {
    const k = key(x);
    let list = m.get(k);
    if (!list) m.set(k, (list = []));
    list.push(x);
  }
  return m;
}

function ms(t: number): string {
  return `${t.toFixed(1)}ms`;
}

/** A few report lines: counts, then each violation with its ops. */
export function formatLocks(r: LockResult, maxViolations = 10): string[] {
  const s = r.stats;
  const lines = [
    `locks: ${r.ok ? "OK" : `VIOLATED (${r.violations.length})`}; ${s.holds} holds on ${s.resources} resources (${s.confirmedHolds} confirmed, ${s.unconfirmedHolds} not); acquires ok ${s.acquires.ok}, fail ${s.acquires.fail}, unknown ${s.acquires.unknown}`,
    `  fenced writes ${s.writes}: ${s.acceptedWrites} accepted, ${s.refusedStaleWrites} stale refused (lost locks fenced off), ${s.refusedConfirmedWrites} refused under confirmed holds; max concurrent confirmed holds ${s.maxConcurrentConfirmed}, max overlap ${s.maxOverlapMs.toFixed(1)} ms, holds overlapping any earlier hold ${s.overlappingHolds}`,
  ];
  for (const v of r.violations.slice(0, maxViolations)) {
    lines.push(`  ${v.kind}: ${v.message}`);
    // Infinity (an unknown completion) would print as null.
    for (const op of v.ops) lines.push(`    ${JSON.stringify(op, (_, x: unknown) => (x === Infinity ? "∞" : x))}`);
  }
  if (r.violations.length > maxViolations) lines.push(`  … ${r.violations.length - maxViolations} more violations`);
  return lines;
}
