/** `dsync kv …`: the replicated key-value register. */
import { Op, type KvGetReply, type KvWriteReply } from "../../protocol/index.ts";
import { print, program, withClient } from "./common.ts";

const kv = program.command("kv").description("the replicated key-value register (a write survives any minority of nodes failing)");
kv.command("put <key> <value>")
  .description("write a value; prints the revision (log index) it was committed at")
  .action(async (key: string, value: string) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.KV_PUT, { key, value: new TextEncoder().encode(value) })) as KvWriteReply;
      print(g, r, `OK revision ${r.revision}${r.existed ? " (replaced)" : ""}`);
    });
  });
kv.command("get <key>")
  .description("read a value (linearizable unless --stale)")
  .option("--stale", "answer from the connected node's copy without confirming with the leader")
  .action(async (key: string, o: { stale?: boolean }) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.KV_GET, { key, stale: o.stale === true }, { idempotent: true })) as KvGetReply;
      const text = r.value ? new TextDecoder().decode(r.value) : null;
      print(g, { ...r, value: text }, r.found ? `${text}    (revision ${r.revision})` : `(not found)`);
      if (!r.found) process.exitCode = 3;
    });
  });
kv.command("delete <key>")
  .description("delete a key")
  .action(async (key: string) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.KV_DELETE, { key })) as KvWriteReply;
      print(g, r, r.existed ? `deleted at revision ${r.revision}` : `(not found) revision ${r.revision}`);
    });
  });
