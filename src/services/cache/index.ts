export * from "./service.ts";
export * from "./partitions.ts";
export * from "./store.ts";
