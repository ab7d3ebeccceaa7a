/**
 * The tiny replicated state machine and the entry hashing the checkers rely on.
 *
 * The state is a running chain hash over every applied entry (index, term, type, data), plus a
 * count and the last few commands for readability. Because the hash chains the whole prefix, two
 * nodes with equal hashes at index i applied identical sequences `[1, i]` — one number compares
 * whole histories, which keeps the after-every-step checkers cheap.
 */
import type { Entry } from "../../src/raft/types.ts";

/** 2^20, used to pack two hash lanes into one exactly-representable double (52 bits). */
const LANE_B = 0x100000;

/**
 * Chain `entry` onto the hash `prev` of its prefix. Two 32-bit FNV-style lanes with different
 * primes, packed into 52 bits, so an accidental collision over a run is negligible.
 */
export function chainHash(prev: number, entry: Entry): number {
  let a = (prev % 0x100000000) ^ 0x811c9dc5;
  let b = Math.floor(prev / 0x100000000) ^ 0x01000193;
  const mix = (x: number): void => {
    a = Math.imul(a ^ x, 0x01000193);
    b = Math.imul(b ^ x, 0x5bd1e995);
    b ^= b >>> 15;
  };
  mix(entry.index);
  mix(entry.term);
  mix(entry.type);
  mix(entry.data.length);
  for (let i = 0; i < entry.data.length; i++) mix(entry.data[i]!);
  return (a >>> 0) * LANE_B + ((b >>> 0) & (LANE_B - 1));
}

/** The state machine image at an index. Serialized into snapshots. */
export interface SmImage {
  /** Index of the last applied entry (0 = nothing applied). */
  readonly index: number;
  /** Chain hash of entries `[1, index]` (0 at index 0). */
  readonly hash: number;
  /** Number of client commands (non-empty Normal entries) applied. */
  readonly commands: number;
  /** The last few client commands, newest last; only for humans reading a failure. */
  readonly recent: readonly string[];
}

const RECENT_MAX = 4;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An append-only command log reduced to a hash. Owned by one simulated node incarnation. */
export class StateMachine {
  index: number;
  hash: number;
  commands: number;
  recent: string[];

  constructor(image: SmImage = { index: 0, hash: 0, commands: 0, recent: [] }) {
    this.index = image.index;
    this.hash = image.hash;
    this.commands = image.commands;
    this.recent = [...image.recent];
  }

  /**
   * Apply `entry`, which the caller has checked is `index + 1`. `isCommand` says whether it was
   * a client command (to keep the count meaningful).
   */
  apply(entry: Entry, isCommand: boolean): void {
    this.hash = chainHash(this.hash, entry);
    this.index = entry.index;
    if (isCommand) {
      this.commands++;
      this.recent.push(decoder.decode(entry.data));
      if (this.recent.length > RECENT_MAX) this.recent.shift();
    }
  }

  /** The current image, for snapshots. */
  image(): SmImage {
    return { index: this.index, hash: this.hash, commands: this.commands, recent: [...this.recent] };
  }
}

/** Serialize an image into snapshot bytes (JSON: the core treats snapshot data as opaque). */
export function encodeImage(img: SmImage): Uint8Array {
  return encoder.encode(JSON.stringify(img));
}

/** Inverse of {@link encodeImage}. Throws on bytes it did not produce. */
export function decodeImage(data: Uint8Array): SmImage {
  const v = JSON.parse(decoder.decode(data)) as SmImage;
  if (typeof v.index !== "number" || typeof v.hash !== "number") throw new Error("bad snapshot image");
  return v;
}
