import { test } from "node:test";
import assert from "node:assert/strict";
import { Packr } from "msgpackr";
import { RecordDecodeError, decodeRecordBody, encodeFrame, encodeRecord, scanFrame, type LogRecord } from "../../src/storage/record.ts";
import { decodeSnapshotFile, encodeSnapshotFile } from "../../src/storage/snapshot-file.ts";
import { WalCorruptionError } from "../../src/storage/errors.ts";
import { entries, meta } from "./wal-fixtures.ts";

const records: LogRecord[] = [
  { kind: "entries", group: 3, entries: entries(2 ** 40, 2 ** 40 + 2, 7, 5) },
  { kind: "hardState", group: 0, hardState: { term: 9, vote: null, commit: 4 } },
  { kind: "hardState", group: 1, hardState: { term: 9, vote: "n2", commit: 4 } },
  { kind: "snapshot", group: 2, meta: meta(100, 3), keepSuffix: true },
  { kind: "checkpoint", groups: [{ group: 1, hardState: { term: 1, vote: "n1", commit: 0 }, snapshotMeta: meta(5, 1) }, { group: 2, hardState: null, snapshotMeta: null }] },
  { kind: "checkpoint", groups: [] },
];

test("record - encode and decode round trip every kind", () => {
  for (const record of records) {
    const frame = encodeRecord(record, true);
    const scan = scanFrame(frame, 0, 1 << 20);
    assert.equal(scan.kind, "frame");
    if (scan.kind === "frame") {
      assert.equal(scan.end, frame.length);
      const back = decodeRecordBody(scan.body);
      assert.deepEqual(JSON.stringify(back, (_k, v) => (v instanceof Uint8Array ? [...v] : v)), JSON.stringify(record, (_k, v) => (v instanceof Uint8Array ? [...v] : v)));
    }
  }
});

test("record - scan classifies incomplete, zero, oversize and bad CRC frames", () => {
  const frame = encodeRecord(records[0]!, false);
  for (let cut = 0; cut < frame.length; cut++) assert.equal(scanFrame(frame.subarray(0, cut), 0, 1 << 20).kind, "incomplete", `cut ${cut}`);
  assert.equal(scanFrame(new Uint8Array(16), 0, 1 << 20).kind, "zero");
  assert.equal(scanFrame(frame, 0, 4).kind, "oversize");
  const flipped = new Uint8Array(frame);
  flipped[20]! ^= 0x80;
  assert.deepEqual(scanFrame(flipped, 0, 1 << 20), { kind: "badCrc", end: frame.length });
});

test("record - well-framed bodies that are not records are rejected", () => {
  const packr = new Packr({ useRecords: false });
  const bodies = [
    new Uint8Array([0xc1]), // Reserved MessagePack byte.
    packr.pack({ kind: "entries" }),
    packr.pack([1, 1, 1, []]), // Entries record without entries.
    packr.pack([2, 1, -1, null, 0]), // Negative term.
    packr.pack([2, 1, 1, 7, 0]), // Vote not a string.
    packr.pack([9, 1]), // Unknown kind.
    packr.pack([1, 1, 1, [[1, 0, "not bytes"]]]),
  ];
  for (const body of bodies) {
    const scan = scanFrame(encodeFrame(body), 0, 1 << 20);
    assert.equal(scan.kind, "frame");
    if (scan.kind === "frame") assert.throws(() => decodeRecordBody(scan.body), RecordDecodeError);
  }
});

test("record - decoded entry data does not alias the segment buffer", () => {
  const frame = encodeRecord(records[0]!, false);
  const scan = scanFrame(frame, 0, 1 << 20);
  assert.ok(scan.kind === "frame");
  const back = decodeRecordBody(scan.body);
  assert.ok(back.kind === "entries");
  assert.notEqual(back.entries[0]!.data.buffer, frame.buffer);
});

test("record - snapshot file round trip and damage detection", () => {
  const data = new Uint8Array(1000).map((_, i) => i & 0xff);
  const image = encodeSnapshotFile(meta(42, 3), data);
  const back = decodeSnapshotFile(image, "snap-1-42.snap");
  assert.deepEqual(back.meta, meta(42, 3));
  assert.deepEqual([...back.data], [...data]);
  const damaged = new Uint8Array(image);
  damaged[500]! ^= 1;
  assert.throws(() => decodeSnapshotFile(damaged, "snap-1-42.snap"), WalCorruptionError);
  assert.throws(() => decodeSnapshotFile(image.subarray(0, 100), "snap-1-42.snap"), /snap-1-42.snap/);
});
