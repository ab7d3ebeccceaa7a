import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { Wal } from "../../src/storage/wal.ts";
import { WalClosedError, WalInvalidArgumentError } from "../../src/storage/errors.ts";
import type { WalRecord } from "../../src/storage/types.ts";
import { entries, entriesRecord, meta, model, plain, removeDir, tempDir } from "./wal-fixtures.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await fn(dir);
  } finally {
    await removeDir(dir);
  }
}

function assertMatchesModel(wal: Wal, records: readonly WalRecord[]): void {
  const expected = model(records);
  assert.deepEqual(wal.groups(), [...expected.keys()].sort((a, b) => a - b));
  for (const [group, g] of expected) {
    const s = wal.state(group);
    assert.deepEqual(s.hardState, g.hardState, `group ${group} hard state`);
    assert.deepEqual(s.snapshotMeta, g.snapshotMeta, `group ${group} snapshot`);
    assert.deepEqual(plain(s.entries), plain(g.entries), `group ${group} entries`);
  }
}

test("wal - append and reopen round trip across groups, suffix replacement and snapshots", async () => {
  await withDir(async (dir) => {
    const records: WalRecord[] = [
      entriesRecord(1, 1, 10, 1),
      entriesRecord(2, 1, 5, 1),
      { kind: "hardState", group: 1, hardState: { term: 1, vote: "n1", commit: 3 } },
      entriesRecord(1, 6, 8, 2), // Replaces 6..10 of term 1 with 6..8 of term 2.
      entriesRecord(3, 1, 4, 1),
      { kind: "snapshot", group: 2, meta: meta(3, 1) }, // Local snapshot: 4..5 survive.
      entriesRecord(2, 6, 7, 1),
      { kind: "hardState", group: 1, hardState: { term: 2, vote: null, commit: 7 } },
      { kind: "snapshot", group: 3, meta: meta(3, 5) }, // Installed, diverging: all of group 3 goes.
      entriesRecord(3, 4, 6, 5),
    ];
    const wal = await Wal.open(dir);
    for (const r of records.slice(0, 4)) await wal.append([r]);
    await Promise.all([wal.append(records.slice(4, 7)), wal.append(records.slice(7))]);
    await wal.close();

    const reopened = await Wal.open(dir);
    assert.deepEqual(reopened.recovery, { truncatedBytes: 0, segment: null });
    assertMatchesModel(reopened, records);
    assert.deepEqual(plain(reopened.state(1).entries), plain([...entries(1, 5, 1), ...entries(6, 8, 2)]));
    assert.deepEqual(reopened.state(2).entries.map((e) => e.index), [4, 5, 6, 7]);
    assert.deepEqual(reopened.state(3).entries.map((e) => e.index), [4, 5, 6]);
    assert.deepEqual(reopened.state(99), { hardState: null, entries: [], snapshotMeta: null });
    // The reopened log keeps working: appends continue where replay left off.
    await reopened.append([entriesRecord(1, 9, 9, 2)]);
    await reopened.close();
    const third = await Wal.open(dir);
    assertMatchesModel(third, [...records, entriesRecord(1, 9, 9, 2)]);
    await third.close();
  });
});

test("wal - group commit: 1,000 appends in one turn share one fsync", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir, { fsync: true });
    const before = wal.stats();
    const pending: Promise<void>[] = [];
    for (let i = 1; i <= 1000; i++) pending.push(wal.append([entriesRecord(i % 4, Math.ceil(i / 4), Math.ceil(i / 4), 1)]));
    await Promise.all(pending);
    const after = wal.stats();
    assert.ok(after.fsyncs - before.fsyncs <= 2, `fsyncs: ${after.fsyncs - before.fsyncs}`);
    assert.equal(after.appendsBatched - before.appendsBatched, 1000);
    assert.ok(after.batches - before.batches <= 2, `batches: ${after.batches - before.batches}`);
    assert.ok(after.lastFsyncMs > 0);
    await wal.close();
  });
});

test("wal - appends made while an fsync is in flight go together in the next batch", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir);
    const before = wal.stats();
    const first = wal.append([entriesRecord(1, 1, 1, 1)]);
    // Wait until the first batch has been handed to the worker, then pile up 500 more.
    await new Promise((resolve) => setImmediate(resolve));
    const rest: Promise<void>[] = [];
    for (let i = 2; i <= 501; i++) rest.push(wal.append([entriesRecord(1, i, i, 1)]));
    await Promise.all([first, ...rest]);
    const after = wal.stats();
    assert.ok(after.batches - before.batches <= 3, `batches: ${after.batches - before.batches}`);
    await wal.close();
  });
});

// Seen in a C=1 put's trace: a hard state that only moved the commit index had its own write and
// fdatasync on every node, and the next entries queued behind it.
test("wal - a non-durable append waits for the next durable batch, in order; close writes it", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir, { fsync: true });
    await wal.append([entriesRecord(1, 1, 2, 1)]);
    const before = wal.stats();
    let lazyDone = false;
    const lazy = wal.append([{ kind: "hardState", group: 1, hardState: { term: 1, vote: "n1", commit: 2 } }], { durable: false }).then(() => (lazyDone = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(wal.stats().batches, before.batches, "a non-durable append was flushed on its own");
    assert.equal(lazyDone, false);
    await wal.append([entriesRecord(1, 3, 3, 1)]);
    await lazy;
    const after = wal.stats();
    assert.equal(after.batches - before.batches, 1);
    assert.equal(after.fsyncs - before.fsyncs, 1);
    // Held at close: written then.
    const last = wal.append([{ kind: "hardState", group: 1, hardState: { term: 1, vote: "n1", commit: 3 } }], { durable: false });
    await Promise.all([wal.close(), last]);
    const reopened = await Wal.open(dir);
    assert.deepEqual(reopened.state(1).hardState, { term: 1, vote: "n1", commit: 3 });
    assert.equal(reopened.state(1).entries.length, 3);
    await reopened.close();
  });
});

test("wal - segment rotation across several small segments", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir, { segmentBytes: 512 });
    const records: WalRecord[] = [{ kind: "hardState", group: 7, hardState: { term: 1, vote: "n2", commit: 0 } }];
    await wal.append(records);
    for (let batch = 0; batch < 30; batch++) {
      const rs = Array.from({ length: 10 }, (_, i) => entriesRecord(1, batch * 10 + i + 1, batch * 10 + i + 1, 1, 16));
      records.push(...rs);
      await Promise.all(rs.map((r) => wal.append([r])));
    }
    const segments = (await readdir(dir)).filter((f) => f.endsWith(".log"));
    assert.ok(segments.length >= 5, `segments: ${segments.length}`);
    assert.equal(wal.stats().segments, segments.length);
    let onDisk = 0;
    for (const f of segments) onDisk += (await stat(join(dir, f))).size;
    assert.equal(wal.stats().bytes, onDisk);
    await wal.close();

    const reopened = await Wal.open(dir, { segmentBytes: 512 });
    assertMatchesModel(reopened, records);
    assert.equal(reopened.state(1).entries.length, 300);
    await reopened.close();
  });
});

test("wal - invalid records are rejected and nothing of the call is written", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir);
    await wal.append([entriesRecord(1, 1, 5, 1), { kind: "snapshot", group: 1, meta: meta(2, 1) }]);
    const bad: WalRecord[][] = [
      [entriesRecord(1, 7, 8, 1)], // Gap after 5.
      [entriesRecord(1, 2, 3, 1)], // At or below the snapshot at 2.
      [{ kind: "entries", group: 1, entries: [...entries(6, 6, 1), ...entries(8, 8, 1)] }], // Not consecutive.
      [entriesRecord(1, 6, 6, 0)], // Term below the entry it follows.
      [{ kind: "entries", group: 1, entries: [] }],
      [{ kind: "snapshot", group: 1, meta: meta(2, 1) }], // Not beyond the current snapshot.
      [{ kind: "entries", group: -1, entries: entries(1, 1, 1) }],
      [entriesRecord(1, 6, 6, 1), entriesRecord(1, 9, 9, 1)], // Second record has a gap: the first must not land.
    ];
    for (const records of bad) await assert.rejects(wal.append(records), WalInvalidArgumentError);
    await wal.append([entriesRecord(1, 6, 6, 1)]);
    await wal.close();
    await assert.rejects(wal.append([entriesRecord(1, 7, 7, 1)]), WalClosedError);

    const reopened = await Wal.open(dir);
    assert.deepEqual(reopened.state(1).entries.map((e) => e.index), [3, 4, 5, 6]);
    await reopened.close();
  });
});

test("wal - close is idempotent and flushes pending appends", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir);
    const appended = wal.append([entriesRecord(1, 1, 3, 1)]);
    await Promise.all([wal.close(), wal.close(), appended]);
    const reopened = await Wal.open(dir);
    assert.equal(reopened.state(1).entries.length, 3);
    await reopened.close();
  });
});

test("wal - a group closed and opened again in the same process starts from its latest snapshot and hard state, not from what was replayed at open", async () => {
  await withDir(async (dir) => {
    const wal = await Wal.open(dir);
    try {
      // Nothing of group 5 existed when the WAL opened: state() would say it is brand new.
      await wal.append([entriesRecord(5, 1, 12, 1), { kind: "hardState", group: 5, hardState: { term: 1, vote: "n1", commit: 12 } }]);
      await wal.saveSnapshot(5, meta(10, 1), new Uint8Array([1, 2, 3]));
      assert.deepEqual(wal.state(5), { hardState: null, entries: [], snapshotMeta: null });
      const s = wal.stateForReopen(5);
      assert.equal(s.snapshotMeta?.index, 10);
      assert.deepEqual(s.entries, [], "entries after the snapshot are left to the group's leader to send again");
      assert.deepEqual(s.hardState, { term: 1, vote: "n1", commit: 10 }, "commit capped at the snapshot: nothing past it is held in memory");
      assert.deepEqual([...(wal.loadSnapshot(5)?.data ?? [])], [1, 2, 3]);
      // Appends of the reopened group continue after the snapshot (the stale tail is replaced).
      await wal.append([entriesRecord(5, 11, 11, 2)]);
      assert.deepEqual(wal.stateForReopen(99), { hardState: null, entries: [], snapshotMeta: null });
    } finally {
      await wal.close();
    }
  });
});
