/** Linearizability of a register history: see linearizable/index.ts. */
export * from "./linearizable/index.ts";
