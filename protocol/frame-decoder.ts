import { FRAME_BYTES_MAX_DEFAULT, FRAME_HEADER_BYTES } from "./frame.ts";

/** Raised by {@link FrameDecoder} when a length prefix is 0 or above the configured maximum. */
export class FrameLengthError extends Error {
  override readonly name = "FrameLengthError";
  constructor(readonly announcedBytes: number, readonly maxBytes: number) {
    super(
      announcedBytes === 0
        ? "frame announces an empty body"
        : `frame announces ${announcedBytes} bytes, above the maximum of ${maxBytes}`,
    );
  }
}

/**
 * An incremental frame parser: feed it socket chunks of any size, get whole frame bodies back.
 * It knows nothing of sockets, so it is tested with arbitrary chunkings.
 *
 * After it throws {@link FrameLengthError} the stream is unrecoverable (the boundary of the next
 * frame is unknown): the caller must close the connection.
 */
export class FrameDecoder {
  readonly #maxBytes: number;
  /** Unconsumed bytes, in arrival order. Invariant: their total is `#buffered`. */
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  /** Body length of the frame being assembled, or -1 while its header is incomplete. */
  #needBytes = -1;

  constructor(maxBytes: number = FRAME_BYTES_MAX_DEFAULT) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes received but not yet returned as part of a frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /**
   * Consumes `chunk` and returns the bodies it completes, in order. Returned bodies may share
   * memory with `chunk` when a frame lies wholly inside it; copy them if `chunk` is reused.
   * @throws FrameLengthError for an empty or oversized announced length.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let data = chunk;
    // Fast path: at a frame boundary with nothing buffered, slice whole frames straight out of
    // the chunk. A consumed header with its body still pending is not a boundary.
    if (this.#buffered === 0 && this.#needBytes < 0) {
      let offset = 0;
      while (data.length - offset >= FRAME_HEADER_BYTES) {
        const length = this.#readLength(data, offset);
        if (data.length - offset - FRAME_HEADER_BYTES < length) break;
        out.push(data.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length));
        offset += FRAME_HEADER_BYTES + length;
      }
      if (offset === data.length) return out;
      data = data.subarray(offset);
    }
    this.#chunks.push(data);
    this.#buffered += data.length;
    for (;;) {
      if (this.#needBytes < 0) {
        if (this.#buffered < FRAME_HEADER_BYTES) return out;
        this.#needBytes = this.#readLength(this.#take(FRAME_HEADER_BYTES), 0);
      }
      if (this.#buffered < this.#needBytes) return out;
      out.push(this.#take(this.#needBytes));
      this.#needBytes = -1;
    }
  }

  #readLength(data: Uint8Array, offset: number): number {
    // Big-endian u32 read by hand: a DataView per frame costs more than the read itself.
    const length = ((data[offset]! << 24) | (data[offset + 1]! << 16) | (data[offset + 2]! << 8) | data[offset + 3]!) >>> 0;
    if (length === 0 || length > this.#maxBytes) throw new FrameLengthError(length, this.#maxBytes);
    return length;
  }

  /** Removes and returns the first `n` buffered bytes. Invariant: `n <= #buffered`. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      const head = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#buffered -= n;
      return head;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const part = Math.min(chunk.length, n - filled);
      out.set(chunk.subarray(0, part), filled);
      filled += part;
      if (part === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(part);
    }
    this.#buffered -= n;
    return out;
  }
}
