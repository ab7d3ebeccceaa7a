import { InvalidArgumentError, Op, asFields, bool, kindOf, str, type Fields, type KvGetReply, type KvWriteReply } from "../../../protocol/index.ts";
import { encodeKvCommand, type KvMachine } from "./machine/kv-machine.ts";
import type { Proposer } from "../../host/proposer.ts";
import type { RequestRouter } from "../../host/request-router.ts";
import type { Service } from "../../host/service.ts";

/** Longest key, in UTF-8 bytes. */
export const KV_KEY_BYTES_MAX = 1024;
/** Largest value, in bytes. */
export const KV_VALUE_BYTES_MAX = 1024 * 1024;

/** The key-value register in group 0: KV_PUT, KV_GET and KV_DELETE on the client port. */
export function kvService(proposer: Proposer, kv: KvMachine): Service {
  return { name: "kv", register: (h) => registerKvHandlers(h.client, proposer, kv) };
}

function registerKvHandlers(router: RequestRouter, proposer: Proposer, kv: KvMachine): void {
  router.register(Op.KV_PUT, async (body): Promise<KvWriteReply> => {
    const f = asFields(body, "KV_PUT");
    const key = str(f, "key", "KV_PUT", { maxBytes: KV_KEY_BYTES_MAX });
    const value = bin(f, "value", "KV_PUT", KV_VALUE_BYTES_MAX);
    return (await proposer.propose(0, encodeKvCommand({ op: "put", key, value }))) as KvWriteReply;
  });
  router.register(Op.KV_DELETE, async (body): Promise<KvWriteReply> => {
    const f = asFields(body, "KV_DELETE");
    const key = str(f, "key", "KV_DELETE", { maxBytes: KV_KEY_BYTES_MAX });
    return (await proposer.propose(0, encodeKvCommand({ op: "delete", key }))) as KvWriteReply;
  });
  router.register(Op.KV_GET, async (body): Promise<KvGetReply> => {
    const f = asFields(body, "KV_GET");
    const key = str(f, "key", "KV_GET", { maxBytes: KV_KEY_BYTES_MAX });
    const stale = bool(f, "stale", "KV_GET");
    if (!stale) await proposer.readBarrier(0);
    const hit = kv.get(key);
    return hit ? { found: true, value: hit.value, revision: hit.revision } : { found: false, value: null, revision: 0 };
  });
}

function bin(f: Fields, name: string, what: string, maxBytes: number): Uint8Array {
  const v = f[name];
  if (!(v instanceof Uint8Array)) {
    if (typeof v === "string") return bin({ [name]: new TextEncoder().encode(v) }, name, what, maxBytes);
    throw new InvalidArgumentError(`${what}: field "${name}" must be bin (or str), got ${kindOf(v)}`);
  }
  if (v.length > maxBytes) throw new InvalidArgumentError(`${what}: field "${name}" is ${v.length} bytes, above the limit of ${maxBytes}`);
  return v;
}

