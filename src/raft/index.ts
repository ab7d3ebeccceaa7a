/** Public surface of the pure Raft core. */
export * from "./types.ts";
export { RawNode, encodeConfChange, decodeConfChange, type ProposeResult, type RaftStatus } from "./raw-node.ts";
export { MemoryStorage } from "./memory-storage.ts";
export { createRng } from "./rng.ts";
export { RaftInvariantError } from "./assert.ts";
export { inConf } from "./conf-change.ts";
export type { PeerLiveness } from "./quiescence.ts";
