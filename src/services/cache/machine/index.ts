export * from "./cache-machine.ts";
export * from "./line-store.ts";
