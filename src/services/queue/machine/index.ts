/** One queue partition's state machine and its types. */
export { QueueMachine, encodeQueueCommand, decodeQueueCommand, receiptOf } from "./queue-machine.ts";
export { backoffDelay } from "./backoff.ts";
export type * from "./types.ts";
