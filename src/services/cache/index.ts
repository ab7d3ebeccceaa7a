export * from "./line-store.ts";
export * from "./directory.ts";
export * from "./home-table.ts";
export * from "./key-queue.ts";
