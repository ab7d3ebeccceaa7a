/** Following replica-move jobs from the CLI: the shard map, a progress bar, a bounded wait. */
import { setTimeout as sleep } from "node:timers/promises";
import { Op, type AdminShardsReply, type MoveJob } from "../../protocol/index.ts";
import type { DsyncClient } from "../client/client.ts";
import { fail, type GlobalOptions } from "./common.ts";

/** How often a waiting command polls the jobs. */
const POLL_MS = 500;
/** How long a command waits for its moves before giving up the wait (they go on). */
const WAIT_MS = 30 * 60_000;

export async function shards(c: DsyncClient): Promise<AdminShardsReply> {
  return (await c.call(Op.ADMIN_SHARDS, {}, { idempotent: true, timeoutMs: 15_000 })) as AdminShardsReply;
}

/** `[#####-----]`: `share` (0..1) of `width` cells. */
export function bar(share: number, width: number): string {
  const filled = Math.max(0, Math.min(width, Math.round(share * width)));
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

/** `[#####-----] 3/6 moves done` for jobs of one operation (finished jobs may have aged out). */
function progressLine(jobs: readonly MoveJob[], total: number): string {
  const running = jobs.filter((j) => j.step !== "done" && j.step !== "cancelled");
  const done = total - running.length;
  const current = running.find((j) => j.step === "catching-up");
  const catchUp = current && current.target > 0 ? `; partition ${current.partition} catching up ${Math.min(100, Math.round((current.caughtUp / current.target) * 100))}%` : "";
  return `${bar(total === 0 ? 1 : done / total, 20)} ${done}/${total} moves done${catchUp}`;
}

/**
 * Polls until `finished` holds, drawing `jobs`' progress on a terminal.
 * @throws (exits) after 30 minutes, saying the moves go on.
 */
export async function followJobs(c: DsyncClient, g: GlobalOptions, jobs: readonly MoveJob[], finished: (s: AdminShardsReply) => boolean, stillWhat: string): Promise<void> {
  const ids = new Set(jobs.map((j) => j.id));
  const tty = !g.json && process.stderr.isTTY;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const s = await shards(c);
    if (tty) process.stderr.write(`\r${progressLine(s.jobs.filter((j) => ids.has(j.id)), ids.size)} `);
    if (finished(s)) break;
    if (Date.now() > deadline) fail(`${stillWhat} after ${WAIT_MS / 60_000} min; the moves go on: see \`dsync admin jobs\``);
    await sleep(POLL_MS);
  }
  if (tty) process.stderr.write("\n");
}
