/**
 * Copy leases: the time bounds that fence the cache (see PROTOCOL.md "Cache", "Why it is safe").
 *
 * A node (or near-cache client) may serve a copy only until its lease ends, counted from when it
 * sent the request that got the copy, on its own monotonic clock. The home records the grant
 * until a later point on its clock (margin for clock-rate drift), and a write that cannot reach a
 * holder waits until then instead. A node that becomes home waits out a whole lease before it
 * serves: every copy an earlier home granted has expired by then.
 */

/** Clock-rate drift allowed between two nodes' monotonic clocks, as a fraction (10%: far beyond real hardware). */
export const CLOCK_DRIFT = 0.1;
/** Added to every home-side bound, for timer lateness. */
const MARGIN_MS = 20;

/** How long after `grantAt` (home clock) a copy granted then for `leaseMs` is surely dead everywhere. */
export function homeLeaseEnd(grantAt: number, leaseMs: number): number {
  return grantAt + leaseMs * (1 + CLOCK_DRIFT) + MARGIN_MS;
}

/** How long a new home waits after its election before it serves (every older copy has expired by then). */
export function electionFenceMs(leaseMs: number): number {
  return leaseMs * (1 + CLOCK_DRIFT) * (1 + CLOCK_DRIFT) + 2 * MARGIN_MS;
}

/** The monotonic clock leases are measured on: wall-clock jumps cannot stretch a lease. */
export function monoNow(): number {
  return performance.now();
}
