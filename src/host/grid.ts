import { performance } from "node:perf_hooks";

/**
 * A shared grid for the node's periodic work. Every job fires at the multiples of its period on
 * the epoch clock (performance.timeOrigin + performance.now(): monotonic, and in step with the wall
 * clock at process start), through one timer for the whole process. Why:
 * - an idle node's CPU is mostly its wake-ups (on the 2-core VM this was measured on, an empty
 *   callback 60 times a second costs 0.75% of a core): jobs whose periods divide one another (the
 *   Raft host's 50 ms beat, a 250 ms lease renewal, a 1 s housekeeping check) run in one turn of
 *   the event loop instead of one wake-up each;
 * - nodes whose clocks agree (one machine, or NTP) send their liveness beats at the same instant,
 *   so a node often reads its peers' beats in the turn it sends its own.
 * Nothing here is about correctness: a job that fires a little late or early is fine.
 */

/** Jobs closer than this to one another's instant run in the same turn. */
const SLACK_MS = 2;

interface Job {
  readonly periodMs: number;
  readonly fn: () => void;
  /** The next instant (process clock, ms) it is due. */
  at: number;
}

const jobs = new Set<Job>();
let timer: NodeJS.Timeout | null = null;
let timerAt = Infinity;

/** Milliseconds from `now` (process clock) to the next multiple of `periodMs` on the epoch clock; in (0, periodMs]. */
export function msToGrid(periodMs: number, now: number = performance.now()): number {
  return periodMs - ((performance.timeOrigin + now) % periodMs);
}

/**
 * The next grid instant of `periodMs` (process clock) at least SLACK_MS after `now`: when a job of
 * that period registered or run at `now` fires next.
 */
export function nextGridInstant(periodMs: number, now: number): number {
  let d = msToGrid(periodMs, now);
  if (d < SLACK_MS) d += periodMs;
  return now + d;
}

/**
 * Runs `fn` at every multiple of `periodMs` on the epoch clock until the returned function is
 * called. The timer does not keep the process alive.
 */
export function everyOnGrid(periodMs: number, fn: () => void): () => void {
  if (!(periodMs > 0)) throw new RangeError(`grid period must be > 0 ms (got ${periodMs})`);
  const job: Job = { periodMs, fn, at: nextGridInstant(periodMs, performance.now()) };
  jobs.add(job);
  arm();
  return () => {
    jobs.delete(job);
    if (jobs.size === 0 && timer !== null) {
      clearTimeout(timer);
      timer = null;
      timerAt = Infinity;
    }
  };
}

function arm(): void {
  let at = Infinity;
  for (const j of jobs) at = Math.min(at, j.at);
  if (at === Infinity || at >= timerAt) return;
  if (timer !== null) clearTimeout(timer);
  timerAt = at;
  timer = setTimeout(fire, Math.max(1, Math.ceil(at - performance.now())));
  timer.unref();
}

function fire(): void {
  timer = null;
  timerAt = Infinity;
  const now = performance.now();
  const due: Job[] = [];
  for (const j of jobs) {
    if (j.at > now + SLACK_MS) continue;
    j.at = nextGridInstant(j.periodMs, now);
    due.push(j);
  }
  arm();
  // (A job may stop another that is due in the same turn.)
  for (const j of due) if (jobs.has(j)) j.fn();
}
