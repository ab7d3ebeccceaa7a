/** `dsync lock …`: take, release and inspect distributed locks. */
import { Op } from "../../protocol/index.ts";
import type { LockListReply, LockStatusReply } from "../../protocol/lock-messages.ts";
import { LockClient } from "../client/locks.ts";
import { intArg, print, program, withClient } from "./common.ts";
import { table } from "./output.ts";

const lock = program.command("lock").description("distributed locks: exclusive or shared, FIFO waiting, fencing tokens");
lock
  .command("acquire <resource>")
  .description("take a lock and hold it until Ctrl-C (or --hold ms), then release it")
  .option("--shared", "a shared (read) lock instead of exclusive")
  .option("--wait <ms>", "how long to wait in line: 0 = try once, -1 = forever", "-1")
  .option("--ttl <ms>", "release automatically this long after the grant")
  .option("--hold <ms>", "release after this long instead of waiting for Ctrl-C")
  .option("--session-ttl <ms>", "the session's TTL: the lock is lost this long after this process dies", "10000")
  .action(async (resource: string, o: { shared?: boolean; wait: string; ttl?: string; hold?: string; sessionTtl: string }) => {
    await withClient(async (c, g) => {
      const locks = new LockClient(c, { sessionTtlMs: intArg("--session-ttl", o.sessionTtl, 1000), clientId: "dsync-cli" });
      if (!g.json) process.stderr.write(`waiting for ${o.shared ? "a shared" : "an exclusive"} lock on ${resource}…\n`);
      try {
        const l = await locks.acquire(resource, { mode: o.shared ? "shared" : "exclusive", waitMs: intArg("--wait", o.wait, -1), ...(o.ttl !== undefined && { ttlMs: intArg("--ttl", o.ttl, 1) }) });
        print(g, l, `acquired ${l.mode} lock on ${l.resource}: fencing token ${l.token} (session ${l.sessionId})`);
        const lost = new Promise<void>((resolve) => locks.once("lost", () => resolve()));
        const released = o.hold !== undefined ? new Promise<void>((r) => setTimeout(r, intArg("--hold", o.hold!, 0))) : new Promise<void>((r) => process.once("SIGINT", () => r()));
        if (!g.json && o.hold === undefined) process.stderr.write("holding; press Ctrl-C to release\n");
        await Promise.race([released, lost]);
        await locks.release(l).catch(() => {});
      } finally {
        // Ends the session too, so a failed try-lock leaves nothing behind.
        await locks.close();
      }
      if (!g.json) process.stderr.write(`released ${resource}\n`);
    });
  });
lock
  .command("release <resource>")
  .description("release a lock held by another process's session (needs its session id and token)")
  .requiredOption("--session <id>", "the holder's session id")
  .requiredOption("--token <token>", "the fencing token of the grant")
  .action(async (resource: string, o: { session: string; token: string }) => {
    await withClient(async (c, g) => {
      const sessionId = intArg("--session", o.session, 1);
      // A one-off release uses a sequence number above any the session's owner is likely to have used.
      const r = await c.call(Op.LOCK_RELEASE, { sessionId, seq: Date.now(), resource, token: intArg("--token", o.token, 1) }, { idempotent: true });
      print(g, r, `released ${resource}`);
    });
  });
lock
  .command("status <resource>")
  .description("holders (mode, token, session) and waiters of one resource")
  .action(async (resource: string) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.LOCK_STATUS, { resource }, { idempotent: true })) as LockStatusReply;
      print(g, r, renderLock(r));
    });
  });
lock
  .command("list")
  .description("every resource with holders or waiters, and the lock service's counters")
  .action(async () => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.LOCK_LIST, {}, { idempotent: true })) as LockListReply;
      const rows = r.resources.map((x) => [x.resource, x.mode ?? "-", x.holders.map((h) => `s${h.sessionId}#${h.token}`).join(" ") || "-", String(x.waiters.length)]);
      const stats = Object.entries(r.stats).map(([k, v]) => `${k}=${v}`).join("  ");
      print(g, r, `${table(["RESOURCE", "MODE", "HOLDERS (session#token)", "WAITERS"], rows)}\n\n${stats}`);
    });
  });

function renderLock(r: LockStatusReply): string {
  if (r.holders.length === 0 && r.waiters.length === 0) return `${r.resource}: free`;
  const holders = r.holders.map((h) => [`holder`, h.mode, `session ${h.sessionId}`, `token ${h.token}`, h.expiresAt ? `until ${new Date(h.expiresAt).toISOString()}` : ""]);
  const waiters = r.waiters.map((w, i) => [`waiter ${i + 1}`, w.mode, `session ${w.sessionId}`, `wait ${w.waitId}`, w.deadline ? `until ${new Date(w.deadline).toISOString()}` : ""]);
  return `${r.resource} (${r.mode ?? "free"})\n${table(["", "MODE", "SESSION", "ID", "EXPIRES"], [...holders, ...waiters])}`;
}
