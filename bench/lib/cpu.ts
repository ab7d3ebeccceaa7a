/** CPU use over a measurement window: this (client) process, and optionally server PIDs. */
import { procCpuSeconds } from "./proc.ts";

export interface CpuReading {
  /** Client process CPU as % of one core (can exceed 100 with worker threads / GC threads). */
  readonly clientPct: number;
  /** Sum over the server processes, % of one core; NaN when not measurable. */
  readonly serverPct: number;
}

export class CpuWindow {
  readonly #start = process.cpuUsage();
  readonly #t0 = performance.now();
  readonly #server0: number;

  constructor(readonly serverPids: readonly number[] = []) {
    this.#server0 = this.#serverSeconds();
  }

  #serverSeconds(): number {
    return this.serverPids.reduce((s, pid) => s + procCpuSeconds(pid), 0);
  }

  /** Readings since construction; `elapsedMs` defaults to the wall time since then. */
  read(elapsedMs = performance.now() - this.#t0): CpuReading {
    const d = process.cpuUsage(this.#start);
    const clientPct = ((d.user + d.system) / 1000 / elapsedMs) * 100;
    const serverPct = this.serverPids.length ? ((this.#serverSeconds() - this.#server0) * 1000 / elapsedMs) * 100 : Number.NaN;
    return { clientPct, serverPct };
  }
}
