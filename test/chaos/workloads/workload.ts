/** What every fault-campaign workload provides to the runner. */
import { DsyncClient } from "../../../src/client/index.ts";
import type { ClientOptions } from "../../../src/client/options.ts";
import type { Prng } from "../../sim/prng.ts";
import type { Outcome } from "../history.ts";

export interface WorkloadContext {
  /** Client addresses of every node. */
  readonly addrs: readonly string[];
  readonly rng: Prng;
  /** Where the workload may write extra files (its history). */
  readonly dir: string;
  /** TLS and token settings of every client, when the campaign runs a secured cluster. */
  readonly auth?: Pick<ClientOptions, "tls" | "token">;
}

export interface CheckReport {
  readonly ok: boolean;
  /** Lines for the run report: counts, verdict, and on a violation the ops that explain it. */
  readonly lines: readonly string[];
  readonly violations: number;
}

export interface Workload {
  readonly name: string;
  /** Opens clients and starts the load; returns at once. */
  start(ctx: WorkloadContext): Promise<void>;
  /** Stops issuing new operations and waits (bounded) for those in flight. */
  stop(): Promise<void>;
  /** After the cluster healed and settled: final reads, drains. */
  final(ctx: WorkloadContext): Promise<void>;
  /** Closes every client. */
  close(): Promise<void>;
  outcomes(): Record<Outcome, number>;
  /** Completion times (harness clock) of successful operations, for availability gaps. */
  okTimes(): number[];
  check(): CheckReport;
  /** The recorded history, as JSON-able data, kept in the run folder. */
  history(): unknown;
  /** Nodes worth a fault for this service (a queue partition's leader, a cache key's home). */
  targets?(): Promise<{ role: string; node: string }[]>;
}

/**
 * A client bound to one node first (then the others), not moving to the leader: operations
 * enter the cluster through every node, so followers' forwarding and reads are exercised.
 */
export function nodeClient(ctx: WorkloadContext, first: number, name: string, requestTimeoutMs = 2000): DsyncClient {
  const addrs = ctx.addrs;
  const nodes = [addrs[first % addrs.length]!, ...addrs.filter((_, i) => i !== first % addrs.length)];
  return new DsyncClient({ nodes, clientName: name, preferLeader: false, requestTimeoutMs, connectTimeoutMs: 1000, maxAttempts: 4, backoff: { baseMs: 20, maxMs: 200, factor: 2 }, ...ctx.auth });
}

/** Longest stretch without a successful operation within [fromMs, toMs]. */
export function longestGapMs(okTimes: readonly number[], fromMs: number, toMs: number): { gapMs: number; atMs: number } {
  const ts = okTimes.filter((t) => t >= fromMs && t <= toMs).sort((a, b) => a - b);
  let prev = fromMs;
  let best = { gapMs: 0, atMs: fromMs };
  for (const t of [...ts, toMs]) {
    if (t - prev > best.gapMs) best = { gapMs: t - prev, atMs: prev };
    prev = t;
  }
  return best;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Idle gaps (see setIdleGaps), or null. */
let idleGaps: readonly [periodMs: number, gapMs: number] | null = null;

/**
 * From now on every logical process pauses in the same `gapMs` of every `periodMs` (harness
 * clock), so the cluster sees no client operation then: its Raft groups go quiet, and faults
 * also land on quiet groups. Null turns it off.
 */
export function setIdleGaps(gaps: readonly [periodMs: number, gapMs: number] | null): void {
  idleGaps = gaps;
}

/** Runs `step` until `isStopped()`, as one sequential logical process. */
export async function loop(isStopped: () => boolean, step: () => Promise<void>): Promise<void> {
  while (!isStopped()) {
    if (idleGaps !== null) {
      const phase = performance.now() % idleGaps[0];
      if (phase < idleGaps[1]) {
        await sleep(idleGaps[1] - phase);
        continue;
      }
    }
    await step();
  }
}
