import { Op } from "../../protocol/index.ts";
import { fail, globals, intArg, print, program, timeoutMs, withClient } from "./common.ts";
import { LockClient } from "../client/locks.ts";
import { clusterStatus } from "./cluster-status.ts";
import { table } from "./output.ts";

program
  .command("ping")
  .description("round trip to one node of the cluster")
  .option("-c, --count <n>", "number of pings", "1")
  .action(async (o: { count: string }) => {
    const count = Number(o.count);
    if (!Number.isInteger(count) || count < 1 || count > 100_000) fail(`--count must be an integer in [1, 100000], got "${o.count}"`);
    await withClient(async (c, g) => {
      const results: { nodeId: string; rttMs: number }[] = [];
      for (let i = 0; i < count; i++) results.push(await c.ping());
      const lines = results.map((r) => `pong from ${r.nodeId} (${c.connectedTo}) in ${r.rttMs.toFixed(2)} ms`);
      print(g, count === 1 ? results[0] : results, lines.join("\n"));
    });
  });

program
  .command("status")
  .description("every node of the cluster: reachable, role, term, leader, commit and applied index")
  .action(async () => {
    const g = globals();
    const seeds = g.nodes.split(",").map((s) => s.trim()).filter(Boolean);
    const reports = await clusterStatus(seeds, { timeoutMs: timeoutMs(g), ...(g.token !== undefined && { token: g.token }) });
    const rows = reports.map((r) =>
      r.status
        ? [
            r.status.nodeId,
            r.addr,
            "yes",
            r.status.role,
            String(r.status.term),
            r.status.leader ?? "-",
            String(r.status.commitIndex),
            String(r.status.appliedIndex),
            `${r.status.firstIndex}-${r.status.lastIndex}`,
            fmtBytes(r.status.logBytes),
            r.status.snapshotIndex > 0 ? String(r.status.snapshotIndex) : "-",
            fmtUptime(r.status.uptimeMs),
          ]
        : ["?", r.addr, "no", "-", "-", "-", "-", "-", "-", "-", "-", r.error ?? ""],
    );
    print(g, reports, table(["NODE", "ADDRESS", "REACHABLE", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LOG", "LOG SIZE", "SNAPSHOT", "UPTIME"], rows));
    if (reports.every((r) => !r.reachable)) process.exitCode = 1;
  });

const kv = program.command("kv").description("the replicated key-value register (a write survives any minority of nodes failing)");
kv.command("put <key> <value>")
  .description("write a value; prints the revision (log index) it was committed at")
  .action(async (key: string, value: string) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.KV_PUT, { key, value: new TextEncoder().encode(value) })) as { revision: number; existed: boolean };
      print(g, r, `OK revision ${r.revision}${r.existed ? " (replaced)" : ""}`);
    });
  });
kv.command("get <key>")
  .description("read a value (linearizable unless --stale)")
  .option("--stale", "answer from the connected node's copy without confirming with the leader")
  .action(async (key: string, o: { stale?: boolean }) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.KV_GET, { key, stale: o.stale === true }, { idempotent: true })) as { found: boolean; value: Uint8Array | null; revision: number };
      const text = r.value ? new TextDecoder().decode(r.value) : null;
      print(g, { ...r, value: text }, r.found ? `${text}    (revision ${r.revision})` : `(not found)`);
      if (!r.found) process.exitCode = 3;
    });
  });
kv.command("delete <key>")
  .description("delete a key")
  .action(async (key: string) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.KV_DELETE, { key })) as { revision: number; existed: boolean };
      print(g, r, r.existed ? `deleted at revision ${r.revision}` : `(not found) revision ${r.revision}`);
    });
  });

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
      const r = (await c.call(Op.LOCK_STATUS, { resource }, { idempotent: true })) as LockView & { resource: string };
      print(g, r, renderLock(r));
    });
  });
lock
  .command("list")
  .description("every resource with holders or waiters, and the lock service's counters")
  .action(async () => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.LOCK_LIST, {}, { idempotent: true })) as { resources: (LockView & { resource: string })[]; stats: Record<string, number> };
      const rows = r.resources.map((x) => [x.resource, x.mode ?? "-", x.holders.map((h) => `s${h.sessionId}#${h.token}`).join(" ") || "-", String(x.waiters.length)]);
      const stats = Object.entries(r.stats).map(([k, v]) => `${k}=${v}`).join("  ");
      print(g, r, `${table(["RESOURCE", "MODE", "HOLDERS (session#token)", "WAITERS"], rows)}\n\n${stats}`);
    });
  });

interface LockView {
  mode: string | null;
  holders: { sessionId: number; token: number; mode: string; expiresAt: number | null }[];
  waiters: { sessionId: number; waitId: number; mode: string; deadline: number | null }[];
}

function renderLock(r: LockView & { resource: string }): string {
  if (r.holders.length === 0 && r.waiters.length === 0) return `${r.resource}: free`;
  const holders = r.holders.map((h) => [`holder`, h.mode, `session ${h.sessionId}`, `token ${h.token}`, h.expiresAt ? `until ${new Date(h.expiresAt).toISOString()}` : ""]);
  const waiters = r.waiters.map((w, i) => [`waiter ${i + 1}`, w.mode, `session ${w.sessionId}`, `wait ${w.waitId}`, w.deadline ? `until ${new Date(w.deadline).toISOString()}` : ""]);
  return `${r.resource} (${r.mode ?? "free"})\n${table(["", "MODE", "SESSION", "ID", "EXPIRES"], [...holders, ...waiters])}`;
}

const admin = program.command("admin").description("cluster membership and leadership");
admin
  .command("transfer-leader [node-id]")
  .description("hand leadership to another voter (default: the most caught-up one)")
  .action(async (to: string | undefined) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.ADMIN_TRANSFER_LEADER, to ? { to } : {}, { timeoutMs: 15_000 })) as { leader: string; term: number };
      print(g, r, `leader is now ${r.leader} (term ${r.term})`);
    });
  });
admin
  .command("add-node <node-id> <peer-addr>")
  .description("add a node started with --join: it catches up as a learner, then becomes a voter")
  .action(async (nodeId: string, peerAddr: string) => {
    await withClient(async (c, g) => {
      if (!g.json) process.stderr.write(`adding ${nodeId} (${peerAddr}): joining as a learner, catching up, then promoting…\n`);
      const r = (await c.call(Op.ADMIN_ADD_NODE, { nodeId, peerAddr }, { timeoutMs: 90_000 })) as { nodeId: string; conf: { voters: string[]; learners: string[] } };
      print(g, r, `${r.nodeId} is a voter; voters: ${r.conf.voters.join(", ")}`);
    });
  });
admin
  .command("remove-node <node-id>")
  .description("remove a node from the cluster")
  .action(async (nodeId: string) => {
    await withClient(async (c, g) => {
      const r = (await c.call(Op.ADMIN_REMOVE_NODE, { nodeId }, { timeoutMs: 15_000 })) as { nodeId: string; conf: { voters: string[] } };
      print(g, r, `${r.nodeId} removed; voters: ${r.conf.voters.join(", ")}`);
    });
  });

function fmtBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function fmtUptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
}

import "./cache-commands.ts";
import "./queue-commands.ts";

await program.parseAsync(process.argv);
