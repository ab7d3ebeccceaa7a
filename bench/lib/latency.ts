/** Latency recording in microseconds with an HDR histogram (3 significant digits). */
import * as hdr from "hdr-histogram-js";

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

export class LatencyRecorder {
  readonly #h: hdr.Histogram;

  constructor(highestMs = 60_000) {
    this.#h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: highestMs * 1000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
  }

  /** Records one latency given in milliseconds (clamped to the trackable range). */
  recordMs(ms: number): void {
    const us = Math.max(1, Math.min(Math.round(ms * 1000), this.#h.highestTrackableValue));
    this.#h.recordValue(us);
  }

  reset(): void {
    this.#h.reset();
  }

  get count(): number {
    return this.#h.totalCount;
  }

  summary(): LatencySummary {
    const h = this.#h;
    return {
      count: h.totalCount,
      p50Ms: h.getValueAtPercentile(50) / 1000,
      p99Ms: h.getValueAtPercentile(99) / 1000,
      p999Ms: h.getValueAtPercentile(99.9) / 1000,
      maxMs: h.maxValue / 1000,
      meanMs: h.mean / 1000,
    };
  }

  destroy(): void {
    this.#h.destroy();
  }
}
