/**
 * The recorded history of a fault-campaign run: every client operation with its invoke and
 * completion time on one monotonic clock (ms from `performance.now()` of the harness process),
 * and its outcome. The checkers read only this; workloads only write it.
 */
import { DsyncError, hadNoEffect } from "../../protocol/index.ts";

/**
 * - `ok`: the operation took effect exactly once, its output is known.
 * - `fail`: it certainly did not take effect (the error catalogue says so).
 * - `unknown`: it may have taken effect at any time after its invocation, or never
 *   (timeout, lost connection, a node that failed while committing).
 */
export type Outcome = "ok" | "fail" | "unknown";

/** One client operation. `completeMs` is Infinity for `unknown` outcomes. */
export interface HistoryOp<F extends string = string, I = unknown, O = unknown> {
  /** Unique within a history, in invocation order. */
  readonly id: number;
  /** The logical client (a sequential process: it never has two operations open at once). */
  readonly client: string;
  readonly f: F;
  readonly key: string;
  readonly input: I;
  output: O | undefined;
  outcome: Outcome;
  readonly invokeMs: number;
  completeMs: number;
  /** The error's code name when the outcome is fail/unknown, for the report. */
  error?: string;
}

/** Register operations (KV and cache): values are unique strings per write; null = absent. */
export type RegisterOp =
  | HistoryOp<"write", string, null>
  | HistoryOp<"delete", null, null>
  | HistoryOp<"read", null, string | null>
  /** Cache invalidate: drops cached copies; the register's value must not change. */
  | HistoryOp<"invalidate", null, null>;

/** The outcome an error implies, from the error catalogue alone (never guessed per workload). */
export function outcomeOf(err: unknown): Exclude<Outcome, "ok"> {
  return err instanceof DsyncError && hadNoEffect(err.code) ? "fail" : "unknown";
}

/** Collects operations; one per process run. */
export class History<T extends HistoryOp = HistoryOp> {
  readonly ops: T[] = [];
  #next = 0;

  /** Records an invocation; call `complete` / `failed` on what it returns. */
  invoke<O extends T>(client: string, f: O["f"], key: string, input: O["input"]): O {
    const op = { id: this.#next++, client, f, key, input, output: undefined, outcome: "unknown", invokeMs: performance.now(), completeMs: Infinity } as unknown as O;
    this.ops.push(op);
    return op;
  }

  complete<O extends T>(op: O, output: O["output"]): void {
    op.output = output;
    op.outcome = "ok";
    op.completeMs = performance.now();
  }

  failed(op: T, err: unknown): void {
    op.outcome = outcomeOf(err);
    op.error = err instanceof DsyncError ? err.codeName : (err as Error)?.name ?? String(err);
    // An unknown outcome may take effect at any later time: its window never closes.
    op.completeMs = op.outcome === "fail" ? performance.now() : Infinity;
  }

  /** Counts by outcome. */
  outcomes(): Record<Outcome, number> {
    const c: Record<Outcome, number> = { ok: 0, fail: 0, unknown: 0 };
    for (const o of this.ops) c[o.outcome]++;
    return c;
  }
}
