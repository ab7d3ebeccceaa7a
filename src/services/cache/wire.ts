/** Validation of cache request bodies, from clients and from peers alike. */
import { InvalidArgumentError, asFields, int, kindOf, str, type Fields } from "../../../protocol/index.ts";
import type { HandoffReply } from "./write-back.ts";

/** Longest key, in UTF-8 bytes. */
export const CACHE_KEY_BYTES_MAX = 1024;
/** Largest value, in bytes. */
export const CACHE_VALUE_BYTES_MAX = 1024 * 1024;
/** Longest write id (`wid`): a client's idempotency token for a set or delete. */
export const WID_BYTES_MAX = 64;
/** Longest TTL: 30 days. */
export const CACHE_TTL_MS_MAX = 30 * 24 * 3600_000;

export function keyOf(f: Fields, what: string): string {
  const key = str(f, "key", what, { maxBytes: CACHE_KEY_BYTES_MAX });
  if (key.length === 0) throw new InvalidArgumentError(`${what}: field "key" must not be empty`);
  return key;
}

/** A list of keys (peer invalidations). */
export function keysOf(f: Fields, what: string): string[] {
  const v = f.keys;
  if (!Array.isArray(v) || v.length > 100_000) throw new InvalidArgumentError(`${what}: field "keys" must be an array of at most 100000 keys`);
  return v.map((k, i) => keyOf({ key: k }, `${what} keys[${i}]`));
}

/** A value: bytes (MessagePack bin) up to the cap, or nil when `nullable`. */
export function valueOf(f: Fields, what: string, nullable: boolean): Uint8Array | null {
  const v = f.value;
  if ((v === null || v === undefined) && nullable) return null;
  if (!(v instanceof Uint8Array)) throw new InvalidArgumentError(`${what}: field "value" must be bytes (MessagePack bin), got ${kindOf(v)}`);
  if (v.length > CACHE_VALUE_BYTES_MAX) throw new InvalidArgumentError(`${what}: field "value" is ${v.length} bytes; the largest value is ${CACHE_VALUE_BYTES_MAX} bytes`);
  return v;
}

export function expiresAtOf(f: Fields, what: string): number {
  return int(f, "expiresAt", what, { optional: true, min: 0 }) ?? 0;
}

export function genOf(f: Fields, what: string): number {
  return int(f, "gen", what, { min: 0 });
}

export function fieldsOf(body: unknown, what: string): Fields {
  return asFields(body, what);
}


/** The copies a renewal names (CACHE_RENEW, CACHE_NEAR_RENEW): [key, gen] pairs. */
export function renewItemsOf(f: Fields, what: string): [string, number][] {
  const v = f.items;
  if (!Array.isArray(v) || v.length > 100_000) throw new InvalidArgumentError(`${what}: field "items" must be an array of at most 100000 [key, gen] pairs`);
  return v.map((item, i) => {
    if (!Array.isArray(item) || item.length !== 2) throw new InvalidArgumentError(`${what}: items[${i}] must be a [key, gen] pair`);
    return [keyOf({ key: item[0] }, `${what} items[${i}]`), genOf({ gen: item[1] }, `${what} items[${i}]`)];
  });
}

/** A CACHE_HANDOFF reply: `{state: "home" | "none"}` or `{state: "held", sets: [[key, value|nil, expiresAt]], wids: [str]}`. */
export function handoffReplyOf(body: unknown): HandoffReply {
  const what = "CACHE_HANDOFF reply";
  const f = fieldsOf(body, what);
  const state = str(f, "state", what);
  if (state === "home" || state === "none") return { state };
  if (state !== "held") throw new InvalidArgumentError(`${what}: field "state" must be home, none or held, got ${JSON.stringify(state)}`);
  if (!Array.isArray(f.sets) || !Array.isArray(f.wids)) throw new InvalidArgumentError(`${what}: fields "sets" and "wids" must be arrays`);
  const sets = f.sets.map((item: unknown, i): [string, Uint8Array | null, number] => {
    if (!Array.isArray(item) || item.length !== 3) throw new InvalidArgumentError(`${what} sets[${i}]: must be [key, value, expiresAt]`);
    const at = `${what} sets[${i}]`;
    const g = { key: item[0], value: item[1], expiresAt: item[2] };
    return [keyOf(g, at), valueOf(g, at, true), expiresAtOf(g, at)];
  });
  const wids = f.wids.map((w: unknown, i) => str({ wid: w }, "wid", `${what} wids[${i}]`, { maxBytes: WID_BYTES_MAX }));
  return { state: "held", sets, wids };
}
