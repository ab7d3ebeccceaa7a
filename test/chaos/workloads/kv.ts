/** The KV register through KV_PUT / KV_GET (linearizable) / KV_DELETE. */
import { Op } from "../../../protocol/index.ts";
import type { DsyncClient } from "../../../src/client/index.ts";
import { RegisterWorkload, type RegisterDriver } from "./register.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

export function kvDriver(c: DsyncClient, stale: boolean): RegisterDriver {
  return {
    async read(key) {
      const r = (await c.call(Op.KV_GET, { key, stale }, { idempotent: true })) as { found: boolean; value: Uint8Array | null };
      return r.found && r.value ? text.decode(r.value) : null;
    },
    async write(key, value) {
      // Not idempotent: a resend after a lost reply could apply an old value twice.
      await c.call(Op.KV_PUT, { key, value: utf8.encode(value) });
    },
    async delete(key) {
      await c.call(Op.KV_DELETE, { key });
    },
    async close() {},
  };
}

/**
 * @param staleReads read with `stale: true` (the connected node's own copy, no ReadIndex): not
 * linearizable by design — the checker must catch it; used to show that it does.
 */
export function kvWorkload(clients = 8, keys = 4, staleReads = false): RegisterWorkload {
  return new RegisterWorkload({ name: "kv", clients, keys, driver: (c) => kvDriver(c, staleReads), mix: { write: 0.4, delete: 0.05, invalidate: 0 } });
}
