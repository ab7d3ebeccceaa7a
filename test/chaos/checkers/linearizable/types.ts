/** The checker's public result and option types, and the shapes its layers pass between them. */
import type { RegisterOp } from "../../history.ts";

export interface LinearizableOptions {
  /** Search steps (either engine) allowed per key before its verdict is "timeout" (default 4,000,000). */
  readonly maxStepsPerKey?: number;
  /** Wall-clock budget for the whole check, search and shrinking together (default 60 s). */
  readonly timeBudgetMs?: number;
  /** Run the pattern checks before the decision (default true; off only to test the rest). */
  readonly fastPath?: boolean;
  /**
   * "auto" (default): the cluster decision for keys whose written values are unique, the
   * Wing–Gong search otherwise; "search": the search for every key (to cross-check the two).
   */
  readonly engine?: "auto" | "search";
  /** Search steps allowed for shrinking one failing key (default 2,000,000). */
  readonly shrinkSteps?: number;
}

export type KeyVerdict = "ok" | "violation" | "timeout";

export interface KeyResult {
  readonly key: string;
  /** Operations recorded on the key. */
  readonly ops: number;
  /** Operations that constrain the register (after dropping failed ops, unknown reads, invalidates and unread unknown writes). */
  readonly checked: number;
  readonly verdict: KeyVerdict;
  readonly steps: number;
  readonly ms: number;
}

export type LinearizableViolationKind = "unknown-value" | "future-read" | "stale-read" | "null-read" | "read-inversion" | "not-linearizable";

export interface LinearizableViolation {
  readonly kind: LinearizableViolationKind;
  readonly key: string;
  readonly message: string;
  /** The smallest explaining set found, in invocation order. */
  readonly ops: RegisterOp[];
}

export interface LinearizableResult {
  /** No violation and no key left undecided. */
  readonly ok: boolean;
  readonly keys: number;
  readonly perKey: KeyResult[];
  readonly violations: LinearizableViolation[];
  /** Keys whose decision ran out of budget: neither proven nor refuted (so `ok` is false). */
  readonly timedOut: string[];
  readonly stats: { ops: number; ok: number; fail: number; unknown: number; checked: number; steps: number; ms: number };
}

export const enum Kind {
  Write = 0,
  Delete = 1,
  Read = 2,
}

/** One operation as the search sees it. `value` is a per-key index: 0 is null (absent). */
export interface Item {
  readonly op: RegisterOp;
  readonly kind: Kind;
  readonly value: number;
  readonly start: number;
  /** Latest moment the op can take effect: completeMs, or earlier for an unknown write that was read. */
  readonly end: number;
  /** The read whose completion set `end` below completeMs: part of any explanation using `end`. */
  readonly via?: Item;
}

export type Finding = { kind: LinearizableViolationKind; items: Item[]; message: string };

export type SearchVerdict = "ok" | "fail" | "timeout";

/** Why a decision failed: with its own small explaining set when it has one. */
export interface Witness {
  readonly items: Item[] | null;
  readonly message: string;
}

export interface KeyBudget {
  readonly maxSteps: number;
  readonly deadline: number;
  readonly fastPath: boolean;
  readonly engine: "auto" | "search";
  readonly shrinkSteps: number;
}
