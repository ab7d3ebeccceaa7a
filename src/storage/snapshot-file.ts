/**
 * The on-disk form of a snapshot image: one frame (see `record.ts`) whose body is
 * `[index, term, voters, learners, data]`. The CRC covers the data, so a damaged image is
 * reported instead of being installed.
 */
import { Packr } from "msgpackr";
import { encodeFrame, scanFrame } from "./record.ts";
import { WalCorruptionError } from "./errors.ts";
import type { WalSnapshotMeta } from "./types.ts";

const packr = new Packr({ useRecords: false });

/** Bodies up to the u32 length field's limit; snapshots can be much larger than WAL records. */
const SNAPSHOT_BODY_BYTES_MAX = 0xffff_ffff;

/** Encodes a snapshot file. `data` is copied. */
export function encodeSnapshotFile(meta: WalSnapshotMeta, data: Uint8Array): Uint8Array {
  return encodeFrame(packr.pack([meta.index, meta.term, [...meta.conf.voters], [...meta.conf.learners], data]));
}

/**
 * Decodes a snapshot file read from `file`.
 * @throws WalCorruptionError if the frame is incomplete, has trailing bytes, a bad CRC or a bad body.
 */
export function decodeSnapshotFile(buf: Uint8Array, file: string): { meta: WalSnapshotMeta; data: Uint8Array } {
  const scan = scanFrame(buf, 0, SNAPSHOT_BODY_BYTES_MAX);
  if (scan.kind !== "frame") throw new WalCorruptionError(file, 0, `snapshot file damaged (${scan.kind})`);
  if (scan.end !== buf.length) throw new WalCorruptionError(file, scan.end, "trailing bytes after snapshot");
  let v: unknown;
  try {
    v = packr.unpack(scan.body);
  } catch (error) {
    throw new WalCorruptionError(file, 0, "snapshot body is not MessagePack", { cause: error });
  }
  const isUint = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === "string");
  if (!Array.isArray(v) || v.length !== 5 || !isUint(v[0]) || !isUint(v[1]) || !isStrings(v[2]) || !isStrings(v[3]) || !(v[4] instanceof Uint8Array)) {
    throw new WalCorruptionError(file, 0, "snapshot body is malformed");
  }
  return { meta: { index: v[0], term: v[1], conf: { voters: v[2], learners: v[3] } }, data: v[4] };
}
