import { performance } from "node:perf_hooks";
import { everyOnGrid } from "./grid.ts";
import type { Logger } from "./logger.ts";
import { wallNow } from "./wall-clock.ts";

/**
 * The longest a deadline that appears in applied state waits before a leader looks at it: after
 * any apply, every loop is checked within this long.
 */
export const EXPIRY_CHECK_MS = 20;
/** The period of the grid's look at every loop: bounds how late a deadline is seen if the wall clock jumps. */
export const EXPIRY_SLEEP_MAX_MS = 1000;

export interface ExpiryLoopOptions {
  /** Only the leader proposes expiry: it is the one clock the replicas follow. */
  isLeader(): boolean;
  /** The earliest deadline in the state machine (ms, leader clock), or null. */
  nextDeadline(): number | null;
  /** Proposes the `expire` command. */
  expire(): Promise<unknown>;
  readonly log: Logger;
  readonly what: string;
}

/**
 * Every started loop of this process shares one timer, set for the earliest deadline among the
 * groups this node leads, and one look a second on the shared grid (with the node's other
 * periodic work, so it costs no wake-up of its own). Deadlines only appear or move earlier
 * through applied entries, so an apply brings the next check to within EXPIRY_CHECK_MS; with
 * nothing applied and nothing due, the process sleeps (polling every 20 ms woke an idle node 50
 * times a second).
 */
const running = new Set<ExpiryLoop>();
let timer: NodeJS.Timeout | null = null;
/** When the timer fires (performance.now() ms); Infinity when none is set. */
let timerAt = Infinity;
/** Stops the once-a-second look. */
let stopLooking: (() => void) | null = null;

function checkWithin(ms: number): void {
  if (running.size === 0) return;
  const at = performance.now() + ms;
  if (timer !== null) {
    if (timerAt <= at) return;
    clearTimeout(timer);
  }
  timerAt = at;
  timer = setTimeout(checkAll, ms);
  timer.unref();
}

function clearTimer(): void {
  if (timer !== null) clearTimeout(timer);
  timer = null;
  timerAt = Infinity;
}

function checkAll(): void {
  clearTimer();
  const now = wallNow();
  let next = Infinity;
  for (const loop of running) {
    const due = loop.check(now);
    if (due !== null) next = Math.min(next, Math.max(1, due - now));
  }
  // A deadline farther than a second is seen by the grid's look (which also bounds how late a
  // deadline is seen if the wall clock jumps).
  if (next < EXPIRY_SLEEP_MAX_MS) checkWithin(next);
}

/** Entries were applied in some group of this process: a deadline may have appeared. */
export function expiryStateChanged(): void {
  checkWithin(EXPIRY_CHECK_MS);
}

/**
 * Proposes `expire` whenever the machine's next deadline has passed, one proposal at a time. The
 * machines themselves never read a clock; this loop is how time reaches them.
 */
export class ExpiryLoop {
  #inFlight = false;

  constructor(readonly o: ExpiryLoopOptions) {}

  start(): void {
    running.add(this);
    stopLooking ??= everyOnGrid(EXPIRY_SLEEP_MAX_MS, checkAll);
    checkWithin(EXPIRY_CHECK_MS);
  }

  stop(): void {
    running.delete(this);
    if (running.size === 0) {
      clearTimer();
      stopLooking?.();
      stopLooking = null;
    }
  }

  /**
   * One look at the deadline at wall time `now`: proposes `expire` if it has passed. Returns the
   * deadline still to come, or null when there is none to wait for here (not leader, nothing
   * due, or a proposal in flight, whose apply brings the next check).
   */
  check(now: number = wallNow()): number | null {
    if (this.#inFlight || !this.o.isLeader()) return null;
    const deadline = this.o.nextDeadline();
    if (deadline === null) return null;
    if (deadline > now) return deadline;
    this.#inFlight = true;
    this.o
      .expire()
      .catch((err: unknown) => this.o.log.debug({ err: (err as Error).message, what: this.o.what }, "expiry proposal failed; will retry"))
      .finally(() => {
        this.#inFlight = false;
        // Applied: the apply already asked for a check. Failed: nothing will, so ask here.
        checkWithin(EXPIRY_CHECK_MS);
      });
    return null;
  }
}
