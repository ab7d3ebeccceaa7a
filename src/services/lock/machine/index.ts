/** The lock service's state machine and its types. */
export { LockMachine, encodeLockCommand, decodeLockCommand } from "./lock-machine.ts";
export { LockInvariantChecker } from "./invariants.ts";
export type * from "./types.ts";
