import { appendFileSync } from "node:fs";

/**
 * Timestamps of each step of a commit, for `npm run bench:raft -- --trace` (where the time of a
 * C=1 put goes). Off unless DSYNC_COMMIT_TRACE names a file prefix: each process then appends
 * `<monotonic ns> <node> <step> <group> <index>` lines to `<prefix>.<pid>`. The clock is the
 * system's monotonic one, shared by every process on the machine, so the nodes' lines can be
 * merged into one timeline.
 */
const prefix = process.env.DSYNC_COMMIT_TRACE ?? "";
const node = process.env.NODE_ID ?? "?";
let lines: string[] = [];

export const commitTraceOn = prefix !== "";

/** Records that `step` happened now for entry `index` of `group` (a no-op when tracing is off). */
export function traceCommit(step: string, group: number, index: number): void {
  lines.push(`${process.hrtime.bigint()} ${node} ${step} ${group} ${index}`);
  if (lines.length >= 4096) flush();
}

function flush(): void {
  if (lines.length === 0) return;
  appendFileSync(`${prefix}.${process.pid}`, `${lines.join("\n")}\n`);
  lines = [];
}

if (commitTraceOn) {
  process.on("exit", flush);
  // Written now and then too, so a node stopped by SIGKILL leaves most of its steps behind.
  setInterval(flush, 1000).unref();
}
