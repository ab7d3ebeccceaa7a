import type { Logger } from "./logger.ts";
import { wallNow } from "./wall-clock.ts";

/** How often a leader looks for state past its deadline. */
export const EXPIRY_CHECK_MS = 20;

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

/** Every started loop of this process: one timer checks them all (a timer each woke the process 50 times a second per partition). */
const running = new Set<ExpiryLoop>();
let timer: NodeJS.Timeout | null = null;

function checkAll(): void {
  for (const loop of running) loop.check();
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
    if (timer === null) {
      timer = setInterval(checkAll, EXPIRY_CHECK_MS);
      timer.unref();
    }
  }

  stop(): void {
    running.delete(this);
    if (running.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }

  /** One look at the deadline (the shared timer calls it every EXPIRY_CHECK_MS). */
  check(): void {
    if (this.#inFlight || !this.o.isLeader()) return;
    const deadline = this.o.nextDeadline();
    if (deadline === null || deadline > wallNow()) return;
    this.#inFlight = true;
    this.o
      .expire()
      .catch((err: unknown) => this.o.log.debug({ err: (err as Error).message, what: this.o.what }, "expiry proposal failed; will retry"))
      .finally(() => {
        this.#inFlight = false;
      });
  }
}
