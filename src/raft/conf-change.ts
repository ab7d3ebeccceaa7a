import { assert } from "./assert.ts";
import { ConfChangeType, type ConfChange, type ConfState } from "./types.ts";

/**
 * Encoding of {@link ConfChange} entry payloads: one byte of type, then the node id in UTF-8.
 * Hand-rolled so the core needs no codec dependency.
 */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const id = new TextEncoder().encode(cc.node);
  const out = new Uint8Array(1 + id.length);
  out[0] = cc.type;
  out.set(id, 1);
  return out;
}

/** Inverse of {@link encodeConfChange}. Throws `RangeError` on a malformed payload. */
export function decodeConfChange(b: Uint8Array): ConfChange {
  if (b.length < 2) throw new RangeError("decodeConfChange: payload too short");
  const type = b[0];
  if (type !== ConfChangeType.AddLearner && type !== ConfChangeType.AddVoter && type !== ConfChangeType.RemoveNode) {
    throw new RangeError(`decodeConfChange: unknown type ${type}`);
  }
  const node = new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(1));
  return { type, node };
}

/**
 * The membership after applying `cc` to `conf`. Pure; does not validate safety (see
 * {@link confChangeError}). AddLearner of a voter demotes it; AddVoter of a learner promotes it.
 */
/** Whether `id` is in the configuration, as a voter or a learner. */
export function inConf(conf: ConfState, id: string): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id);
}

export function applyToConfState(conf: ConfState, cc: ConfChange): ConfState {
  const voters = conf.voters.filter((v) => v !== cc.node);
  const learners = conf.learners.filter((l) => l !== cc.node);
  if (cc.type === ConfChangeType.AddVoter) voters.push(cc.node);
  else if (cc.type === ConfChangeType.AddLearner) learners.push(cc.node);
  const next = { voters, learners };
  // Invariant: a node is never both a voter and a learner.
  assert(!voters.some((v) => learners.includes(v)), "conf: voter and learner sets overlap");
  return next;
}

/** Why `cc` may not be applied to `conf`, or null when it may. Used to refuse proposals early. */
export function confChangeError(conf: ConfState, cc: ConfChange): string | null {
  if (cc.node.length === 0) return "empty node id";
  const next = applyToConfState(conf, cc);
  if (next.voters.length === 0) return "would remove the last voter";
  return null;
}
