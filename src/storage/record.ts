/**
 * Record framing and the record codec: pure functions over bytes, no I/O.
 *
 * Frame layout: `u32 BE bodyLength | u32 BE crc32c(body) | body`, where body is one MessagePack
 * value. A body is never empty, so a zero length field can only mean zero-filled space (a file
 * extended by the filesystem but never written), which recovery treats as a torn tail.
 *
 * Bodies are positional arrays rather than maps: smaller, and cheaper to validate strictly.
 *   entries    [1, group, firstIndex, [[term, type, data], ...]]   (indexes consecutive by construction)
 *   hardState  [2, group, term, vote, commit]
 *   snapshot   [3, group, index, term, voters, learners, keepSuffix]
 *   checkpoint [4, [[group, [term, vote, commit] | null, [index, term, voters, learners] | null], ...]]
 */
import { ok as assert } from "node:assert";
import { crc32c } from "@node-rs/crc32";
import { Packr } from "msgpackr";
import type { WalEntry, WalHardState, WalSnapshotMeta } from "./types.ts";

/** Bytes of the frame header: length then CRC, both u32 big-endian. */
export const FRAME_HEADER_BYTES = 8;

/**
 * Largest body a WAL record may have. A bound on everything: a corrupt length field must not
 * make recovery allocate or scan gigabytes, and a batch larger than this is a caller bug.
 */
export const RECORD_BODY_BYTES_MAX = 256 * 1024 * 1024;

/** One group's slice of a checkpoint. */
export interface CheckpointGroup {
  readonly group: number;
  readonly hardState: WalHardState | null;
  readonly snapshotMeta: WalSnapshotMeta | null;
}

/**
 * A record as stored. Adds to the public `WalRecord` the internal `checkpoint` (first record of
 * every segment: the latest hard state and snapshot marker of every group, so older segments can
 * be deleted) and `keepSuffix` on snapshot records (decided when appended, see `wal.ts`).
 */
export type LogRecord =
  | { readonly kind: "entries"; readonly group: number; readonly entries: readonly WalEntry[] }
  | { readonly kind: "hardState"; readonly group: number; readonly hardState: WalHardState }
  | {
      readonly kind: "snapshot";
      readonly group: number;
      readonly meta: WalSnapshotMeta;
      /** True if entries after `meta.index` survive the snapshot (log matched at meta.index). */
      readonly keepSuffix: boolean;
    }
  | { readonly kind: "checkpoint"; readonly groups: readonly CheckpointGroup[] };

const Kind = { entries: 1, hardState: 2, snapshot: 3, checkpoint: 4 } as const;

// useRecords off: records are positional arrays, and msgpackr's shared-structure extension would
// make a body depend on state outside the frame, which recovery cannot afford.
const packr = new Packr({ useRecords: false, moreTypes: false });

/** Thrown by {@link decodeRecordBody} when a body with a valid CRC is not a well-formed record. */
export class RecordDecodeError extends Error {
  override readonly name = "RecordDecodeError";
}

/** Result of looking for one frame at an offset; see {@link scanFrame}. */
export type FrameScan =
  /** A complete frame whose CRC matches; `end` is the offset just past it. */
  | { readonly kind: "frame"; readonly body: Uint8Array; readonly end: number }
  /** The header or the body runs past the end of the buffer. */
  | { readonly kind: "incomplete" }
  /** The length field is zero (zero-filled space). */
  | { readonly kind: "zero" }
  /** The length field exceeds the maximum: a corrupt header. */
  | { readonly kind: "oversize" }
  /** A complete frame whose CRC does not match its body; `end` is where it claims to end. */
  | { readonly kind: "badCrc"; readonly end: number };

/** Frames `body`: returns a new buffer `header | body`. `body` must be non-empty. */
export function encodeFrame(body: Uint8Array): Uint8Array {
  // Invariant: an empty body would be indistinguishable from zero-filled space.
  assert(body.length > 0 && body.length <= 0xffff_ffff, "frame body length out of range");
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, body.length);
  view.setUint32(4, crc32c(body));
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Looks for one frame in `buf` at `offset` and checks its CRC. Never throws on bad bytes.
 * `bodyBytesMax` bounds the length field (use {@link RECORD_BODY_BYTES_MAX} for WAL records).
 */
export function scanFrame(buf: Uint8Array, offset: number, bodyBytesMax: number): FrameScan {
  if (buf.length - offset < FRAME_HEADER_BYTES) return { kind: "incomplete" };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const length = view.getUint32(offset);
  if (length === 0) return { kind: "zero" };
  if (length > bodyBytesMax) return { kind: "oversize" };
  const end = offset + FRAME_HEADER_BYTES + length;
  if (end > buf.length) return { kind: "incomplete" };
  const body = buf.subarray(offset + FRAME_HEADER_BYTES, end);
  if (crc32c(body) !== view.getUint32(offset + 4)) return { kind: "badCrc", end };
  return { kind: "frame", body, end };
}

/**
 * Encodes and frames one record. With `verify`, the frame is scanned and decoded back and
 * compared with the input before it is returned: the write half of the paired CRC assertion
 * (the read half is replay), catching codec bugs before they reach the disk.
 */
export function encodeRecord(record: LogRecord, verify: boolean): Uint8Array {
  const frame = encodeFrame(packr.pack(toBody(record)));
  if (verify) {
    const scan = scanFrame(frame, 0, 0xffff_ffff);
    // Invariant: a frame we just built scans whole with a matching CRC.
    assert(scan.kind === "frame" && scan.end === frame.length, "encoded frame does not scan");
    const back = decodeRecordBody(scan.body);
    // Invariant: the codec round-trips (kind, group and the number of entries/groups).
    assert(sameShape(record, back), `record does not round-trip: ${record.kind}`);
  }
  return frame;
}

/**
 * Decodes a record body whose CRC already matched. Validates every field strictly, and copies
 * entry data out of `body` so replayed entries do not pin whole segment buffers in memory.
 * @throws RecordDecodeError if the body is not a well-formed record.
 */
export function decodeRecordBody(body: Uint8Array): LogRecord {
  let value: unknown;
  try {
    value = packr.unpack(body);
  } catch (error) {
    throw new RecordDecodeError("body is not MessagePack", { cause: error });
  }
  const a = arrayOf(value, "record");
  switch (a[0]) {
    case Kind.entries: {
      expectLength(a, 4, "entries");
      const group = groupId(a[1]);
      const first = uint(a[2], "firstIndex");
      const raw = arrayOf(a[3], "entries list");
      if (raw.length === 0) throw new RecordDecodeError("entries record without entries");
      const entries = raw.map((item, i): WalEntry => {
        const e = arrayOf(item, "entry");
        expectLength(e, 3, "entry");
        return { term: uint(e[0], "term"), index: first + i, type: uint(e[1], "type"), data: bytes(e[2]) };
      });
      return { kind: "entries", group, entries };
    }
    case Kind.hardState:
      expectLength(a, 5, "hardState");
      return { kind: "hardState", group: groupId(a[1]), hardState: hardState(a.slice(2)) };
    case Kind.snapshot: {
      expectLength(a, 7, "snapshot");
      if (typeof a[6] !== "boolean") throw new RecordDecodeError("keepSuffix is not a boolean");
      return { kind: "snapshot", group: groupId(a[1]), meta: snapshotMeta(a.slice(2, 6)), keepSuffix: a[6] };
    }
    case Kind.checkpoint: {
      expectLength(a, 2, "checkpoint");
      const groups = arrayOf(a[1], "checkpoint groups").map((item): CheckpointGroup => {
        const g = arrayOf(item, "checkpoint group");
        expectLength(g, 3, "checkpoint group");
        return {
          group: groupId(g[0]),
          hardState: g[1] === null ? null : hardState(arrayOf(g[1], "hardState")),
          snapshotMeta: g[2] === null ? null : snapshotMeta(arrayOf(g[2], "snapshotMeta")),
        };
      });
      return { kind: "checkpoint", groups };
    }
    default:
      throw new RecordDecodeError(`unknown record kind ${String(a[0])}`);
  }
}

function toBody(record: LogRecord): unknown[] {
  switch (record.kind) {
    case "entries":
      return [Kind.entries, record.group, record.entries[0]!.index, record.entries.map((e) => [e.term, e.type, e.data])];
    case "hardState":
      return [Kind.hardState, record.group, ...hardStateBody(record.hardState)];
    case "snapshot":
      return [Kind.snapshot, record.group, ...snapshotBody(record.meta), record.keepSuffix];
    case "checkpoint":
      return [
        Kind.checkpoint,
        record.groups.map((g) => [
          g.group,
          g.hardState === null ? null : hardStateBody(g.hardState),
          g.snapshotMeta === null ? null : snapshotBody(g.snapshotMeta),
        ]),
      ];
  }
}

function hardStateBody(hs: WalHardState): unknown[] {
  return [hs.term, hs.vote, hs.commit];
}

function snapshotBody(meta: WalSnapshotMeta): unknown[] {
  return [meta.index, meta.term, [...meta.conf.voters], [...meta.conf.learners]];
}

function sameShape(a: LogRecord, b: LogRecord): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "checkpoint") return b.kind === "checkpoint" && a.groups.length === b.groups.length;
  if (b.kind === "checkpoint" || a.group !== b.group) return false;
  if (a.kind === "entries") {
    return b.kind === "entries" && a.entries.length === b.entries.length && a.entries.at(-1)!.index === b.entries.at(-1)!.index;
  }
  return true;
}

function hardState(a: unknown[]): WalHardState {
  expectLength(a, 3, "hardState");
  const vote = a[1];
  if (vote !== null && typeof vote !== "string") throw new RecordDecodeError("vote is not a string or null");
  return { term: uint(a[0], "term"), vote, commit: uint(a[2], "commit") };
}

function snapshotMeta(a: unknown[]): WalSnapshotMeta {
  expectLength(a, 4, "snapshotMeta");
  return {
    index: uint(a[0], "index"),
    term: uint(a[1], "term"),
    conf: { voters: strings(a[2], "voters"), learners: strings(a[3], "learners") },
  };
}

function arrayOf(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new RecordDecodeError(`${what} is not an array`);
  return v;
}

function expectLength(a: unknown[], n: number, what: string): void {
  if (a.length !== n) throw new RecordDecodeError(`${what} has ${a.length} fields, expected ${n}`);
}

function uint(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new RecordDecodeError(`${what} is not a non-negative integer`);
  return v;
}

function groupId(v: unknown): number {
  return uint(v, "group");
}

function strings(v: unknown, what: string): string[] {
  const a = arrayOf(v, what);
  if (!a.every((s) => typeof s === "string")) throw new RecordDecodeError(`${what} contains a non-string`);
  return a as string[];
}

function bytes(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new RecordDecodeError("entry data is not binary");
  // Copy: msgpackr returns views into the segment buffer being replayed.
  return new Uint8Array(v);
}
