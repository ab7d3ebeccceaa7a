/**
 * Frame layout shared by clients and peers: a 4-byte big-endian unsigned length N, then N bytes
 * holding exactly one MessagePack value (the envelope, see codec.ts).
 */

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;

/** Default upper bound of a frame body; a larger announced length is a protocol error. */
export const FRAME_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;

/** The largest body a u32 length can announce. */
export const FRAME_BYTES_LIMIT = 0xffff_ffff;

/**
 * Prefixes `body` with its length. The result is a fresh buffer owned by the caller.
 * @throws RangeError if `body` is empty or longer than `maxBytes`.
 */
export function encodeFrame(body: Uint8Array, maxBytes: number = FRAME_BYTES_MAX_DEFAULT): Uint8Array {
  if (body.length === 0 || body.length > maxBytes) {
    throw new RangeError(`frame body of ${body.length} bytes is outside [1, ${maxBytes}]`);
  }
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  const n = body.length;
  frame[0] = n >>> 24;
  frame[1] = (n >>> 16) & 0xff;
  frame[2] = (n >>> 8) & 0xff;
  frame[3] = n & 0xff;
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}
