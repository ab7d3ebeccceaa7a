/**
 * The daemon's wall clock: what the leader stamps on entries (lock TTLs, sessions, queue
 * visibility, backoff) and what its expiry loop compares deadlines with, and what cache TTLs
 * are measured against.
 *
 * It is `Date.now()` plus an offset that is 0 unless a fault campaign moves it: with
 * `DSYNC_CLOCK_FILE` set, SIGUSR2 makes the daemon re-read that file (`{"offsetMs": N}`), so a
 * test can make one node's clock jump forward or back without touching the machine's clock.
 * Durations (timeouts, retry windows) use monotonic time and are not affected.
 */
import { readFileSync } from "node:fs";
import type { Logger } from "./logger.ts";

let offsetMs = 0;

/** Milliseconds since the epoch, as this node believes it. */
export function wallNow(): number {
  return Date.now() + offsetMs;
}

/** Installs the SIGUSR2 handler when `DSYNC_CLOCK_FILE` is set; does nothing otherwise. */
export function installClockControl(env: NodeJS.ProcessEnv, log: Logger): void {
  const file = env.DSYNC_CLOCK_FILE;
  if (!file) return;
  process.on("SIGUSR2", () => {
    try {
      const parsed = JSON.parse(readFileSync(file, "utf8")) as { offsetMs?: unknown };
      const next = typeof parsed.offsetMs === "number" && Number.isFinite(parsed.offsetMs) ? parsed.offsetMs : 0;
      log.warn({ fromMs: offsetMs, toMs: next }, "wall clock offset changed (fault injection)");
      offsetMs = next;
    } catch (err) {
      log.error({ file, err: (err as Error).message }, "cannot read DSYNC_CLOCK_FILE; clock unchanged");
    }
  });
}
