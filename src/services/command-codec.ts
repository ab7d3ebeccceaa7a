import { Packr } from "msgpackr";

// Plain MessagePack (no records extension), so a log entry decodes the same on every version.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** Encodes a state-machine command (a plain object) as a log entry payload. */
export function encodeCommand(cmd: object): Uint8Array {
  return packr.pack(cmd);
}

/** Decodes a log entry payload written by {@link encodeCommand}. */
export function decodeCommand(data: Uint8Array): unknown {
  return packr.unpack(data);
}

/** Spare bytes a view may keep alive beside its own before it is worth a copy. */
const SPARE_BYTES_MAX = 4096;

/**
 * `bytes`, or a copy of exactly its length when it is a view into a much larger buffer. Log
 * entries live until compaction and a queue keeps views into them until messages are acked, so a
 * 100-byte entry sliced out of a 64 KiB socket chunk, or a 256 KiB command in a MessagePack
 * encoder's multi-MiB scratch buffer, would keep that whole buffer resident.
 */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.buffer.byteLength - bytes.byteLength <= SPARE_BYTES_MAX ? bytes : copyBytes(bytes);
}

/**
 * A copy of `bytes` in a buffer of exactly its length, of the same class (decoded values are
 * Buffers), never from Buffer's shared pool (a long-lived copy would pin a pool slab).
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const copy = Buffer.isBuffer(bytes) ? Buffer.allocUnsafeSlow(bytes.byteLength) : new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}
