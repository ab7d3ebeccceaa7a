import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { appendFile, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { Wal } from "../../src/storage/wal.ts";
import { WalIoError } from "../../src/storage/errors.ts";
import { FailpointConfigError, NO_FAILPOINTS, STALL_MS, parseFailpoints } from "../../src/storage/failpoints.ts";
import { SYNCED_FILE, simulatePowerLoss } from "../../src/storage/power-loss.ts";
import { segmentFileName } from "../../src/storage/segment-files.ts";
import type { WalRecord } from "../../src/storage/types.ts";
import { ROOT } from "../helpers/daemon.ts";
import { entriesRecord, meta, model, plain, removeDir, tempDir } from "./wal-fixtures.ts";

const run = promisify(execFile);

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await fn(dir);
  } finally {
    await removeDir(dir);
  }
}

/**
 * Reopens `dir` with no failpoints (whatever the environment says) and checks every acknowledged
 * record is there; unacknowledged ones may follow (they may have reached the disk).
 */
async function assertHolds(dir: string, acked: readonly WalRecord[], opts: { segmentBytes?: number } = {}): Promise<Wal> {
  const wal = await Wal.open(dir, { failpoints: NO_FAILPOINTS, ...opts });
  for (const [group, g] of model(acked)) {
    const s = wal.state(group);
    assert.deepEqual(s.hardState, g.hardState, `group ${group} hard state`);
    assert.deepEqual(plain(s.entries.slice(0, g.entries.length)), plain(g.entries), `group ${group}: every acknowledged entry is there`);
  }
  return wal;
}

function ioCause(err: unknown): NodeJS.ErrnoException {
  assert.ok(err instanceof WalIoError, `a WalIoError, got ${String(err)}`);
  return err.cause as NodeJS.ErrnoException;
}

test("failpoints - parse: the documented syntax, and a clear error naming the bad item", () => {
  assert.deepEqual(parseFailpoints(undefined), NO_FAILPOINTS);
  assert.deepEqual(parseFailpoints(" "), NO_FAILPOINTS);
  assert.deepEqual(parseFailpoints("wal-fsync=eio@after-ms:2000"), { faults: [{ point: "wal-fsync", error: "eio", trigger: { kind: "afterMs", ms: 2000 } }], recordSynced: false });
  assert.deepEqual(parseFailpoints("wal-fsync=stall"), { faults: [{ point: "wal-fsync", error: "stall", trigger: { kind: "immediately" } }], recordSynced: false });
  assert.deepEqual(parseFailpoints("wal-append=enospc@after:50, record-synced"), {
    faults: [{ point: "wal-append", error: "enospc", trigger: { kind: "afterCalls", calls: 50 } }],
    recordSynced: true,
  });
  assert.deepEqual(parseFailpoints("wal-fsync=enospc").faults[0]!.trigger, { kind: "immediately" });
  const bad = ["wal-fsync", "wal-sync=eio", "wal-fsync=eperm", "wal-fsync=eio@after:", "wal-fsync=eio@after-ms:soon", "wal-fsync=eio@later:3", "wal-fsync=eio,wal-fsync=enospc", "record-synced=1", "wal-fsync=eio,,"];
  for (const spec of bad) {
    assert.throws(() => parseFailpoints(spec), (e: unknown) => e instanceof FailpointConfigError && e.message.startsWith("DSYNC_FAILPOINTS item") && e.message.includes("expected"), spec);
  }
});

test("failpoints - dsyncd refuses an invalid DSYNC_FAILPOINTS at startup; a valid one reaches the WAL worker through the environment", { timeout: 60_000 }, async () => {
  const refused = await run(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/dsyncd.ts")], { cwd: ROOT, env: { ...process.env, DSYNC_FAILPOINTS: "wal-fsync=boom" }, timeout: 30_000 }).then(
    () => assert.fail("dsyncd started with an invalid DSYNC_FAILPOINTS"),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /DSYNC_FAILPOINTS item "wal-fsync=boom": unknown error "boom"/);

  // The default (no `failpoints` option) is the module-level parse of the environment, handed to
  // the worker in workerData: a child process with the variable set sees the fault.
  await withDir(async (dir) => {
    const script = `
      import { Wal } from ${JSON.stringify(join(ROOT, "src/storage/wal.ts"))};
      const wal = await Wal.open(${JSON.stringify(dir)}, { fsync: false });
      const e = { kind: "entries", group: 1, entries: [{ term: 1, index: 1, type: 0, data: new Uint8Array(4) }] };
      const r = await wal.append([e]).then(() => "ok", (err) => err.cause?.code);
      await wal.close();
      console.log(JSON.stringify(r));`;
    const out = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, env: { ...process.env, DSYNC_FAILPOINTS: "wal-fsync=eio@after:1" }, timeout: 30_000 });
    assert.equal(JSON.parse(out.stdout.trim()), "EIO", "the open's checkpoint fsync succeeds, the first append's fails");
  });
});

// Every fault runs twice: with small batches written by the main thread while the worker is idle
// (the default), and with every batch on the worker.
for (const inlineWrites of [true, false]) {
  const where = inlineWrites ? "main thread when idle" : "worker only";

  test(`failpoints - EIO on fdatasync: the append rejects with the EIO error, nothing after it is acknowledged, the acknowledged records survive (${where})`, async () => {
    await withDir(async (dir) => {
      const events: string[] = [];
      const failures: WalIoError[] = [];
      // Successful fdatasyncs: the open's checkpoint, A, B; the fourth (C's batch) fails.
      const wal = await Wal.open(dir, {
        failpoints: parseFailpoints("wal-fsync=eio@after:3"),
        onFailure: (e) => {
          events.push("onFailure");
          failures.push(e);
        },
      });
      const a = entriesRecord(1, 1, 3, 1);
      const b: WalRecord = { kind: "hardState", group: 1, hardState: { term: 1, vote: "n1", commit: 2 } };
      await wal.append([a]);
      await wal.append([b]);
      const c = wal.append([entriesRecord(1, 4, 4, 1)]);
      const cSameBatch = wal.append([entriesRecord(2, 1, 1, 1)]);
      c.catch(() => events.push("rejected"));
      const err = await c.then(() => assert.fail("C was acknowledged"), (e: unknown) => e);
      const cause = ioCause(err);
      assert.equal(cause.code, "EIO");
      assert.equal(cause.syscall, "fdatasync");
      assert.equal(cause.path, join(dir, segmentFileName(1)));
      assert.match((err as Error).message, /EIO: i\/o error, fdatasync/);
      await assert.rejects(cSameBatch, (e: unknown) => e === err);
      // Fail-stop inside the WAL: every later call gets the same error, nothing is acknowledged.
      await assert.rejects(wal.append([entriesRecord(3, 1, 1, 1)]), (e: unknown) => e === err);
      await assert.rejects(wal.compact(), (e: unknown) => e === err);
      assert.equal(failures.length, 1);
      assert.equal(failures[0], err);
      assert.deepEqual(events, ["onFailure", "rejected"], "the failure handler runs before any waiter hears of it");
      await wal.close();
      assert.equal(wal.stats().fsyncs, 3);

      const reopened = await assertHolds(dir, [a, b]);
      await reopened.close();
    });
  });

  test(`failpoints - ENOSPC on write: the append rejects, and the half-written batch is a torn tail that recovery cuts (${where})`, async () => {
    await withDir(async (dir) => {
      // Writes: the open's checkpoint, A; B's write takes half its bytes, then ENOSPC.
      const wal = await Wal.open(dir, { inlineWrites, fsync: false, failpoints: parseFailpoints("wal-append=enospc@after:2") });
      const a = entriesRecord(1, 1, 2, 1, 100);
      await wal.append([a]);
      const sizeAcked = (await stat(join(dir, segmentFileName(1)))).size;
      const err = await wal.append([entriesRecord(1, 3, 3, 1, 1000)]).then(() => assert.fail("B was acknowledged"), (e: unknown) => e);
      const cause = ioCause(err);
      assert.equal(cause.code, "ENOSPC");
      assert.equal(cause.syscall, "write");
      await assert.rejects(wal.append([entriesRecord(1, 3, 3, 1)]), (e: unknown) => e === err);
      await wal.close();
      const torn = (await stat(join(dir, segmentFileName(1)))).size - sizeAcked;
      assert.ok(torn > 500, `half of B's frame was written (${torn} bytes)`);
      assert.ok(!(await readdir(dir)).includes(SYNCED_FILE), "no durability record without record-synced");

      const reopened = await assertHolds(dir, [a]);
      assert.deepEqual(reopened.recovery, { truncatedBytes: torn, segment: segmentFileName(1) });
      assert.deepEqual(reopened.state(1).entries.map((e) => e.index), [1, 2], "B is gone");
      await reopened.close();
    });
  });

  test(`failpoints - after-ms: appends succeed until T ms after the open, then fail for good (${where})`, async () => {
    await withDir(async (dir) => {
      // T counts from the worker's start, inside open: at least 300 ms after t0.
      const t0 = Date.now();
      const wal = await Wal.open(dir, { inlineWrites, fsync: false, failpoints: parseFailpoints("wal-fsync=eio@after-ms:300") });
      let acked = 0;
      let failedAt = -1;
      for (let i = 1; i <= 200 && Date.now() - t0 < 5000; i++) {
        const ok = await wal.append([entriesRecord(1, i, i, 1)]).then(() => true, (e: unknown) => (assert.equal(ioCause(e).code, "EIO"), false));
        if (!ok) {
          failedAt = Date.now() - t0;
          break;
        }
        acked++;
        await new Promise((r) => setTimeout(r, 20));
      }
      await wal.close();
      assert.ok(failedAt >= 300, `failed ${failedAt} ms after the open`);
      assert.ok(acked >= 3, `${acked} appends acknowledged before`);
      const reopened = await Wal.open(dir, { failpoints: NO_FAILPOINTS });
      assert.ok(reopened.state(1).entries.length >= acked);
      await reopened.close();
    });
  });

  test(`power loss - simulatePowerLoss cuts exactly the bytes written after the last fdatasync; recovery opens cleanly with every acknowledged record (${where})`, async (t) => {
    await withDir(async (dir) => {
      // fdatasyncs: the open's checkpoint, A, B, C succeed; D is written but its fsync fails, so
      // its bytes are in the file (page cache) yet not durable: what a power cut loses.
      const wal = await Wal.open(dir, { inlineWrites, failpoints: parseFailpoints("wal-fsync=eio@after:4,record-synced") });
      const acked: WalRecord[] = [entriesRecord(1, 1, 5, 1, 64), { kind: "hardState", group: 1, hardState: { term: 1, vote: "n1", commit: 5 } }, entriesRecord(2, 1, 2, 1, 64)];
      for (const r of acked) await wal.append([r]);
      const segment = join(dir, segmentFileName(1));
      const durable = (await stat(segment)).size;
      const record = JSON.parse(await readFile(join(dir, SYNCED_FILE), "utf8")) as { segments: Record<string, number> };
      assert.deepEqual(record.segments, { [segmentFileName(1)]: durable });
      await assert.rejects(wal.append([entriesRecord(1, 6, 9, 1, 64)]), WalIoError);
      await wal.close();
      const written = (await stat(segment)).size;
      assert.ok(written > durable);

      const report = await simulatePowerLoss(dir);
      t.diagnostic(`power loss cut ${report.truncatedBytes} bytes: ${JSON.stringify(report.files)}`);
      assert.equal(report.truncatedBytes, written - durable);
      assert.deepEqual(report.files, [{ file: segmentFileName(1), bytesBefore: written, bytesAfter: durable, removed: false }]);
      assert.equal((await stat(segment)).size, durable);
      assert.ok(!(await readdir(dir)).includes(SYNCED_FILE), "the record is consumed");

      const reopened = await assertHolds(dir, acked);
      assert.deepEqual(reopened.recovery, { truncatedBytes: 0, segment: null }, "cut on a record boundary: no torn tail");
      assert.deepEqual(reopened.state(1).entries.map((e) => e.index), [1, 2, 3, 4, 5], "D is gone");
      await reopened.close();
    });
  });

  test(`power loss - across rotation and segment GC: the record follows every segment, a segment newer than the record is removed (${where})`, async (t) => {
    await withDir(async (dir) => {
      const opts = { inlineWrites, segmentBytes: 512, failpoints: parseFailpoints("record-synced") };
      const wal = await Wal.open(dir, opts);
      const acked: WalRecord[] = [];
      for (let i = 1; i <= 60; i++) {
        const r = entriesRecord(1, i, i, 1, 32);
        acked.push(r);
        await wal.append([r]);
      }
      // A snapshot at 40 lets GC delete the segments holding only entries up to 40.
      await wal.saveSnapshot(1, meta(40, 1), new Uint8Array([1, 2, 3]));
      acked.push({ kind: "snapshot", group: 1, meta: meta(40, 1) });
      await wal.compact();
      await wal.close();
      const segments = (await readdir(dir)).filter((f) => f.endsWith(".log")).sort();
      assert.ok(segments[0] !== segmentFileName(1), `GC removed the oldest segments (left: ${segments.join(", ")})`);
      const record = JSON.parse(await readFile(join(dir, SYNCED_FILE), "utf8")) as { segments: Record<string, number> };
      const last = segments.at(-1)!;
      assert.ok(Object.keys(record.segments).every((s) => segments.includes(s)), "deleted segments left the record");
      assert.equal(record.segments[last], (await stat(join(dir, last))).size, "close synced the current segment in full");

      // As a SIGKILL would leave it: unsynced bytes at the end of the current segment, and the
      // next segment created (with a checkpoint's worth of bytes) before the record caught up.
      await appendFile(join(dir, last), new Uint8Array(100).fill(7));
      const nextId = Number(last.slice(4, 20)) + 1;
      await writeFile(join(dir, segmentFileName(nextId)), new Uint8Array(60).fill(9));
      const report = await simulatePowerLoss(dir);
      t.diagnostic(`power loss cut ${report.truncatedBytes} bytes: ${JSON.stringify(report.files)}`);
      assert.equal(report.truncatedBytes, 160);
      assert.deepEqual(report.files.filter((f) => f.bytesBefore !== f.bytesAfter).map((f) => [f.file, f.removed]), [
        [last, false],
        [segmentFileName(nextId), true],
      ]);

      const reopened = await assertHolds(dir, acked, opts);
      assert.deepEqual(reopened.recovery, { truncatedBytes: 0, segment: null });
      assert.equal(reopened.state(1).snapshotMeta?.index, 40);
      assert.equal(reopened.state(1).entries.at(-1)?.index, 60);
      assert.deepEqual([...(reopened.loadSnapshot(1)?.data ?? [])], [1, 2, 3]);
      await reopened.close();
    });
  });
}

// The writer's state (fault counters here) travels with each batch between the threads: the
// failpoint trips at the sixth sync overall, not at the sixth of either thread.
test("failpoints - a failpoint counts calls across batches run by the main thread and by the worker", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir, { fsync: false, failpoints: parseFailpoints("wal-fsync=eio@after:5") });
    const big = 80 * 1024; // over the main thread's batch limit: the worker runs it
    const records = [entriesRecord(1, 1, 1, 1, 16), entriesRecord(1, 2, 2, 1, big), entriesRecord(1, 3, 3, 1, 16), entriesRecord(1, 4, 4, 1, big)];
    for (const r of records) await wal.append([r]);
    const s = wal.stats();
    assert.deepEqual([s.batches, s.inlineBatches], [5, 3], "the open's checkpoint and the small records on the main thread, the big ones on the worker");
    const err = await wal.append([entriesRecord(1, 5, 5, 1, 16)]).then(() => assert.fail("the sixth sync was acknowledged"), (e: unknown) => e);
    assert.equal(ioCause(err).syscall, "fdatasync");
    await wal.close();
    const reopened = await assertHolds(dir, records);
    await reopened.close();
  });
});

// A stalling disk must not hold the event loop (heartbeats, every client) for long: after a batch
// the main thread ran took over 25 ms, the next batches go to the worker.
test("failpoints - stall: after a slow batch on the main thread, the next ones go to the worker and the event loop stays free", async () => {
  await withDir(async (dir) => {
    // Syncs: the open's checkpoint, A and B are fast; from C on each takes STALL_MS longer.
    const wal = await Wal.open(dir, { fsync: false, failpoints: parseFailpoints("wal-fsync=stall@after:3") });
    const records = Array.from({ length: 6 }, (_, i) => entriesRecord(1, i + 1, i + 1, 1, 16));
    for (const r of records.slice(0, 3)) await wal.append([r]);
    assert.deepEqual([wal.stats().batches, wal.stats().inlineBatches], [4, 4], "the checkpoint, A, B and C (which stalled) on the main thread");
    for (const r of records.slice(3)) {
      let fired = false;
      setTimeout(() => (fired = true), 10);
      const t0 = performance.now();
      await wal.append([r]);
      assert.ok(performance.now() - t0 >= STALL_MS - 1, "the append waited for its stalled sync");
      assert.equal(fired, true, "a 10 ms timer fired while the sync stalled: the event loop was free");
    }
    assert.deepEqual([wal.stats().batches, wal.stats().inlineBatches], [7, 4], "D, E and F on the worker");
    await wal.close();
    const reopened = await assertHolds(dir, records);
    await reopened.close();
  });
});

test("power loss - without a record simulatePowerLoss refuses instead of silently doing nothing", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir, { failpoints: NO_FAILPOINTS });
    await wal.close();
    await assert.rejects(simulatePowerLoss(dir), /did the WAL run with DSYNC_FAILPOINTS=record-synced/);
  });
});
