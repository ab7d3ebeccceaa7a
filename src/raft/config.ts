import { assert } from "./assert.ts";
import type { RaftConfig } from "./types.ts";

/** {@link RaftConfig} with every optional knob resolved to its default. */
export interface ResolvedConfig extends RaftConfig {
  readonly applied: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly holdVotesAtStart: boolean;
  readonly maxMsgBytes: number;
  readonly maxInflightMsgs: number;
  readonly snapshotChunkBytes: number;
}

/** Default upper bound of entry bytes in one App message (1 MiB). */
export const MAX_MSG_BYTES_DEFAULT = 1024 * 1024;
/** Default App messages in flight per follower. */
export const MAX_INFLIGHT_MSGS_DEFAULT = 256;
/** Default InstallSnapshot chunk size (256 KiB). */
export const SNAPSHOT_CHUNK_BYTES_DEFAULT = 256 * 1024;

/**
 * Fills defaults and validates. PreVote and CheckQuorum default to on: without them a rejoining
 * node disrupts a healthy leader, which production clusters must not tolerate.
 * Throws RaftInvariantError on a nonsensical configuration (a caller bug).
 */
export function resolveConfig(cfg: RaftConfig): ResolvedConfig {
  const r: ResolvedConfig = {
    ...cfg,
    applied: cfg.applied ?? 0,
    preVote: cfg.preVote ?? true,
    checkQuorum: cfg.checkQuorum ?? true,
    holdVotesAtStart: cfg.holdVotesAtStart ?? false,
    maxMsgBytes: cfg.maxMsgBytes ?? MAX_MSG_BYTES_DEFAULT,
    maxInflightMsgs: cfg.maxInflightMsgs ?? MAX_INFLIGHT_MSGS_DEFAULT,
    snapshotChunkBytes: cfg.snapshotChunkBytes ?? SNAPSHOT_CHUNK_BYTES_DEFAULT,
  };
  assert(r.id.length > 0, "config: empty node id");
  assert(Number.isInteger(r.heartbeatTicks) && r.heartbeatTicks > 0, "config: heartbeatTicks must be a positive integer");
  assert(Number.isInteger(r.electionTicks) && r.electionTicks > r.heartbeatTicks, "config: electionTicks must exceed heartbeatTicks");
  assert(r.maxMsgBytes > 0 && r.maxInflightMsgs > 0 && r.snapshotChunkBytes > 0, "config: limits must be positive");
  return r;
}
