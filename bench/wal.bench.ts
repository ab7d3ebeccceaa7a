/**
 * WAL append throughput and latency with fsync on: N concurrent appenders, each appending one
 * 128-byte entry to its own group and awaiting durability before the next. Prints appends/s,
 * p50/p99 latency, fsyncs/s and the mean group-commit size. Run: `npx tsx bench/wal.bench.ts`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Wal } from "../src/storage/wal.ts";

const durationMs = Number(process.env.BENCH_MS ?? 3000);
const entryBytes = 128;

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function run(concurrency: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "dsync-wal-bench-"));
  // Production settings: fsync on, no write-back verification.
  const wal = await Wal.open(dir, { fsync: true, verifyWrites: false });
  const latencies: number[] = [];
  const before = wal.stats();
  const data = new Uint8Array(entryBytes).fill(7);
  const start = performance.now();
  const deadline = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, group) => {
      for (let index = 1; performance.now() < deadline; index++) {
        const t0 = performance.now();
        await wal.append([{ kind: "entries", group, entries: [{ term: 1, index, type: 0, data }] }]);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const after = wal.stats();
  await wal.close();
  await rm(dir, { recursive: true, force: true });
  const sorted = Float64Array.from(latencies).sort();
  const batches = after.batches - before.batches;
  console.log(
    [
      `appenders=${String(concurrency).padStart(2)}`,
      `appends/s=${Math.round(latencies.length / seconds).toString().padStart(7)}`,
      `p50=${percentile(sorted, 50).toFixed(2)}ms`,
      `p99=${percentile(sorted, 99).toFixed(2)}ms`,
      `fsyncs/s=${Math.round((after.fsyncs - before.fsyncs) / seconds)}`,
      `batch=${((after.appendsBatched - before.appendsBatched) / batches).toFixed(1)}`,
    ].join("  "),
  );
}

console.log(`WAL append, ${entryBytes}-byte entries, fsync on, ${durationMs} ms per case, dir ${tmpdir()}`);
for (const concurrency of [1, 16, 64]) await run(concurrency);
