/** The wire contract shared by the daemon and the client library. */
export * from "./frame.ts";
export * from "./frame-decoder.ts";
export * from "./codec.ts";
export * from "./ops.ts";
export * from "./error-codes.ts";
export * from "./errors.ts";
export * from "./messages.ts";
export * from "./validate.ts";
export * from "./cache-messages.ts";
export * from "./queue-messages.ts";
export * from "./lock-messages.ts";
export * from "./kv-messages.ts";
export * from "./backup-messages.ts";
export * from "./backup-file.ts";
export * from "./shard-messages.ts";
