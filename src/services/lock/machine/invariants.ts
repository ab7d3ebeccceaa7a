import type { LockMachine } from "./lock-machine.ts";
import type { LockMode, ResourceView } from "./types.ts";

/**
 * A full check of a lock machine through its public views — O(state), for tests and the
 * simulator, not for the apply path (which asserts per resource as it goes). Keeps the history
 * it needs to check fencing across calls: call {@link check} after every apply.
 */
export class LockInvariantChecker {
  /** Per resource: the highest token granted so far and the mode of that grant. */
  #last = new Map<string, { token: number; mode: LockMode }>();
  /** Holds seen by the previous check, to tell new grants from old ones. */
  #seen = new Set<string>();

  /** Throws an Error naming the first violated invariant. */
  check(m: LockMachine): void {
    const fail = (what: string): never => {
      throw new Error(`lock invariant violated: ${what}`);
    };
    const names = m.resources();
    const sorted = [...names].sort();
    if (names.join("\u0000") !== sorted.join("\u0000")) fail("resources() is not sorted");
    let held = 0;
    let waiting = 0;
    const seen = new Set<string>();
    const views = new Map<string, ResourceView>();
    for (const name of names) {
      const r = m.resource(name) ?? fail(`${name} listed but has no view`);
      views.set(name, r);
      held += r.holders.length;
      waiting += r.waiters.length;
      if (r.holders.length === 0 && r.waiters.length === 0) fail(`${name} is idle but kept`);
      if ((r.mode === null) !== (r.holders.length === 0)) fail(`${name}: mode ${r.mode} with ${r.holders.length} holders`);
      // Invariant: never two exclusive holders; never an exclusive beside a shared holder.
      if (r.mode === "exclusive" && r.holders.length !== 1) fail(`${name}: ${r.holders.length} exclusive holders`);
      for (const h of r.holders) if (h.mode !== r.mode) fail(`${name}: ${h.mode} holder in ${r.mode} mode`);
      const owners = new Set<number>();
      for (const h of r.holders) {
        if (owners.has(h.sessionId)) fail(`${name}: session ${h.sessionId} holds twice`);
        owners.add(h.sessionId);
        if (m.session(h.sessionId) === null) fail(`${name}: holder ${h.sessionId} has no session`);
      }
      // Invariant: a session waits at most once per resource, and never for what it holds.
      for (const w of r.waiters) {
        if (owners.has(w.sessionId)) fail(`${name}: session ${w.sessionId} waits twice or waits for its own hold`);
        owners.add(w.sessionId);
        if (m.session(w.sessionId) === null) fail(`${name}: waiter ${w.sessionId} has no session`);
      }
      // Invariant: the queue head is blocked (otherwise it would have been granted).
      const head = r.waiters[0];
      if (head !== undefined && (r.holders.length === 0 || (head.mode === "shared" && r.mode === "shared"))) {
        fail(`${name}: head waiter ${head.waitId} is grantable`);
      }
      // Invariant: fencing tokens strictly increase per resource (shared holders granted by the
      // same entry share its token).
      const fresh = r.holders.filter((h) => !this.#seen.has(`${name}\u0000${h.sessionId}\u0000${h.token}`)).sort((a, b) => a.token - b.token);
      for (const h of fresh) {
        const last = this.#last.get(name);
        if (last !== undefined && !(h.token > last.token || (h.token === last.token && h.mode === "shared" && last.mode === "shared"))) {
          fail(`${name}: token ${h.token} (${h.mode}) granted after ${last.token} (${last.mode})`);
        }
        this.#last.set(name, { token: h.token, mode: h.mode });
      }
      for (const h of r.holders) seen.add(`${name}\u0000${h.sessionId}\u0000${h.token}`);
    }
    this.#seen = seen;
    const st = m.stats();
    if (st.locksHeld !== held) fail(`stats.locksHeld ${st.locksHeld} != ${held}`);
    if (st.waiters !== waiting) fail(`stats.waiters ${st.waiters} != ${waiting}`);
    const cycle = findAnyCycle(views);
    if (cycle !== null) fail(`wait-for cycle ${cycle.join(" -> ")}`);
  }
}

/**
 * A cycle in the wait-for relation (a waiter waits for every holder and every conflicting
 * waiter ahead), if any. Built from the views with an edge set of linear size and the same
 * reachability — an exclusive waiter points at the run of readers just ahead and the writer
 * before them, a reader at the nearest writer ahead, and the front of the queue at the holders —
 * so that it stays usable on 10,000-deep queues.
 */
export function findAnyCycle(views: Map<string, ResourceView>): number[] | null {
  const edges = new Map<number, Set<number>>();
  for (const r of views.values()) {
    r.waiters.forEach((w, i) => {
      let out = edges.get(w.sessionId);
      if (out === undefined) edges.set(w.sessionId, (out = new Set()));
      let k = i - 1;
      if (w.mode === "exclusive") {
        while (k >= 0 && r.waiters[k]!.mode === "shared") out.add(r.waiters[k--]!.sessionId);
      } else {
        while (k >= 0 && r.waiters[k]!.mode === "shared") k--;
      }
      if (k >= 0) out.add(r.waiters[k]!.sessionId);
      else for (const h of r.holders) if (h.sessionId !== w.sessionId) out.add(h.sessionId);
    });
  }
  // Iterative DFS (a 10,000-long chain would overflow a recursive one).
  const state = new Map<number, 1 | 2>(); // 1 = on the stack, 2 = done
  for (const root of [...edges.keys()].sort((a, b) => a - b)) {
    if (state.has(root)) continue;
    const stack: { node: number; next: Iterator<number> }[] = [{ node: root, next: (edges.get(root) ?? new Set<number>()).values() }];
    state.set(root, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const step = top.next.next();
      if (step.done) {
        state.set(top.node, 2);
        stack.pop();
        continue;
      }
      const v = step.value;
      if (state.get(v) === 1) {
        const from = stack.findIndex((f) => f.node === v);
        return [...stack.slice(from).map((f) => f.node), v];
      }
      if (state.get(v) === undefined) {
        state.set(v, 1);
        stack.push({ node: v, next: (edges.get(v) ?? new Set<number>()).values() });
      }
    }
  }
  return null;
}
