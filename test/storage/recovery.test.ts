import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdir, readFile, readdir, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Wal } from "../../src/storage/wal.ts";
import { WalCorruptionError } from "../../src/storage/errors.ts";
import { RECORD_BODY_BYTES_MAX, decodeRecordBody, scanFrame } from "../../src/storage/record.ts";
import { segmentFileName } from "../../src/storage/segment-files.ts";
import type { WalRecord } from "../../src/storage/types.ts";
import { entriesRecord, model, plain, removeDir, tempDir } from "./wal-fixtures.ts";

/** Byte offsets where each frame of `buf` starts, plus the end of the last one. */
function frameBoundaries(buf: Uint8Array): number[] {
  const bounds = [0];
  let at = 0;
  while (at < buf.length) {
    const scan = scanFrame(buf, at, RECORD_BODY_BYTES_MAX);
    assert.equal(scan.kind, "frame");
    if (scan.kind !== "frame") break;
    at = scan.end;
    bounds.push(at);
  }
  return bounds;
}

async function onlySegment(dir: string): Promise<string> {
  const logs = (await readdir(dir)).filter((f) => f.endsWith(".log"));
  assert.equal(logs.length, 1);
  return join(dir, logs[0]!);
}

/** Writes `records` one append each into a fresh WAL in `dir`. */
async function writeLog(dir: string, records: readonly WalRecord[], segmentBytes?: number): Promise<void> {
  const wal = await Wal.open(dir, { fsync: false, ...(segmentBytes === undefined ? {} : { segmentBytes }) });
  for (const r of records) await wal.append([r]);
  await wal.close();
}

function sampleRecords(n: number): WalRecord[] {
  const records: WalRecord[] = [];
  for (let i = 1; i <= n; i++) {
    records.push(entriesRecord(1 + (i % 2), Math.ceil(i / 2), Math.ceil(i / 2), 1, 4));
    if (i % 5 === 0) records.push({ kind: "hardState", group: 1, hardState: { term: 1, vote: "n1", commit: i } });
  }
  records.push(entriesRecord(1, 3, 4, 2, 4)); // A suffix replacement among the last records.
  records.push(entriesRecord(2, Math.ceil(n / 2) + 1, Math.ceil(n / 2) + 1, 1, 4));
  return records;
}

async function runLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

test("wal - crash at every byte of the last 3 records recovers exactly a prefix", async () => {
  const root = await tempDir();
  try {
    const source = join(root, "source");
    const records = sampleRecords(20);
    await writeLog(source, records);
    const segment = await onlySegment(source);
    const full = await readFile(segment);
    const bounds = frameBoundaries(full); // bounds[0] = checkpoint start, bounds[k + 1] = end of user record k.
    assert.equal(bounds.length, records.length + 2);
    const from = bounds[bounds.length - 4]!; // Start of the third-to-last record.
    const cuts = Array.from({ length: full.length - from + 1 }, (_, i) => from + i);

    await runLimited(cuts, 4, async (cut) => {
      const dir = join(root, `cut-${cut}`);
      await mkdir(dir);
      const copy = join(dir, segmentFileName(1));
      await writeFile(copy, full.subarray(0, cut));
      const wal = await Wal.open(dir, { fsync: false });
      // Records that ended at or before the cut survive; nothing after them does.
      const survivors = bounds.filter((b) => b <= cut).length - 2;
      const good = bounds[survivors + 1]!;
      assert.deepEqual(wal.recovery, cut === good ? { truncatedBytes: 0, segment: null } : { truncatedBytes: cut - good, segment: segmentFileName(1) }, `cut ${cut}`);
      const expected = model(records.slice(0, survivors));
      for (const group of [1, 2]) {
        const g = expected.get(group);
        assert.deepEqual(plain(wal.state(group).entries), plain(g?.entries ?? []), `cut ${cut} group ${group}`);
        assert.deepEqual(wal.state(group).hardState, g?.hardState ?? null, `cut ${cut} group ${group}`);
      }
      // Every few cuts, check that the repaired log accepts appends and replays them.
      if (cut % 5 === 0) {
        const last = wal.state(1).entries.at(-1)?.index ?? 0;
        await wal.append([entriesRecord(1, last + 1, last + 1, 3, 4)]);
        await wal.close();
        const again = await Wal.open(dir, { fsync: false });
        assert.deepEqual(again.recovery, { truncatedBytes: 0, segment: null });
        assert.equal(again.state(1).entries.at(-1)?.index, last + 1, `cut ${cut} append after recovery`);
        await again.close();
      } else {
        await wal.close();
      }
      await removeDir(dir);
    });
  } finally {
    await removeDir(root);
  }
});

test("wal - torn tail of zero-filled space is truncated", async () => {
  const dir = await tempDir();
  try {
    const records = sampleRecords(6);
    await writeLog(dir, records);
    const segment = await onlySegment(dir);
    await appendFile(segment, new Uint8Array(4096));
    const wal = await Wal.open(dir);
    assert.deepEqual(wal.recovery, { truncatedBytes: 4096, segment: segmentFileName(1) });
    assert.deepEqual(plain(wal.state(1).entries), plain(model(records).get(1)!.entries));
    await wal.close();
  } finally {
    await removeDir(dir);
  }
});

test("wal - bad CRC in the last record is a torn tail and is truncated", async () => {
  const dir = await tempDir();
  try {
    const records = sampleRecords(6);
    await writeLog(dir, records);
    const segment = await onlySegment(dir);
    const buf = await readFile(segment);
    const bounds = frameBoundaries(buf);
    buf[buf.length - 2]! ^= 0x10;
    await writeFile(segment, buf);
    const wal = await Wal.open(dir);
    assert.equal(wal.recovery.truncatedBytes, buf.length - bounds.at(-2)!);
    assert.deepEqual(plain(wal.state(2).entries), plain(model(records.slice(0, -1)).get(2)!.entries));
    await wal.close();
  } finally {
    await removeDir(dir);
  }
});

test("wal - flipped bit in a middle record is refused as corruption naming file and offset", async () => {
  const dir = await tempDir();
  try {
    await writeLog(dir, sampleRecords(12));
    const segment = await onlySegment(dir);
    const original = await readFile(segment);
    const bounds = frameBoundaries(original);
    const victim = bounds[6]!; // Start of a record in the middle.
    // A flipped bit in the body (bad CRC), and one in the length field (frame boundaries lost).
    for (const at of [victim + 10, victim + 2]) {
      const buf = Buffer.from(original);
      buf[at]! ^= 0x04;
      await writeFile(segment, buf);
      const error = await Wal.open(dir).then(
        async (wal) => {
          await wal.close();
          return null;
        },
        (e: unknown) => e,
      );
      assert.ok(error instanceof WalCorruptionError, `flip at ${at}: ${String(error)}`);
      assert.equal(error.file, segment);
      assert.equal(error.offset, victim);
      assert.match(error.message, new RegExp(`${segmentFileName(1)} at offset ${victim}`));
      // Refusing must not have modified the file.
      assert.deepEqual(await readFile(segment), buf);
    }
  } finally {
    await removeDir(dir);
  }
});

test("wal - damage in a sealed segment is refused even at its tail", async () => {
  const dir = await tempDir();
  try {
    const records = Array.from({ length: 40 }, (_, i) => entriesRecord(1, i + 1, i + 1, 1, 32));
    await writeLog(dir, records, 256);
    const logs = (await readdir(dir)).filter((f) => f.endsWith(".log")).sort();
    assert.ok(logs.length >= 3);
    const sealed = join(dir, logs[0]!);
    const buf = await readFile(sealed);
    await writeFile(sealed, buf.subarray(0, buf.length - 3)); // A "torn tail" where none can be.
    await assert.rejects(Wal.open(dir), (e: unknown) => e instanceof WalCorruptionError && e.file === sealed && /sealed segment/.test(e.message));
  } finally {
    await removeDir(dir);
  }
});

test("wal - a missing segment is refused", async () => {
  const dir = await tempDir();
  try {
    const records = Array.from({ length: 40 }, (_, i) => entriesRecord(1, i + 1, i + 1, 1, 32));
    await writeLog(dir, records, 256);
    const logs = (await readdir(dir)).filter((f) => f.endsWith(".log")).sort();
    await unlink(join(dir, logs[1]!));
    await assert.rejects(Wal.open(dir), (e: unknown) => e instanceof WalCorruptionError && /segment missing/.test(e.message));
  } finally {
    await removeDir(dir);
  }
});

test("wal - a new segment that crashed before its checkpoint is completed at open", async () => {
  const dir = await tempDir();
  try {
    const records = [entriesRecord(1, 1, 3, 1), { kind: "hardState", group: 1, hardState: { term: 1, vote: "n3", commit: 2 } } as const];
    await writeLog(dir, records);
    await writeFile(join(dir, segmentFileName(2)), new Uint8Array(0)); // Created, then the crash.
    const wal = await Wal.open(dir);
    await wal.append([entriesRecord(1, 4, 4, 1)]);
    await wal.close();
    // Segment 1 may only be deleted if segment 2 starts with a checkpoint carrying the hard state.
    const second = await readFile(join(dir, segmentFileName(2)));
    const scan = scanFrame(second, 0, RECORD_BODY_BYTES_MAX);
    assert.equal(scan.kind, "frame");
    if (scan.kind === "frame") {
      assert.deepEqual(decodeRecordBody(scan.body), {
        kind: "checkpoint",
        groups: [{ group: 1, hardState: { term: 1, vote: "n3", commit: 2 }, snapshotMeta: null }],
      });
    }
    const reopened = await Wal.open(dir);
    assert.deepEqual(reopened.state(1).hardState, { term: 1, vote: "n3", commit: 2 });
    assert.deepEqual(reopened.state(1).entries.map((e) => e.index), [1, 2, 3, 4]);
    await reopened.close();
  } finally {
    await removeDir(dir);
  }
});
