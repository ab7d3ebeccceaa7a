/**
 * The entry hashing the checkers rely on, and the snapshot image of one simulated node.
 *
 * Every node keeps a running chain hash over every applied entry (index, term, type, data):
 * because the hash chains the whole prefix, two nodes with equal hashes at index i applied
 * identical sequences `[1, i]` — one number compares whole histories, which keeps the
 * after-every-step checkers cheap. Next to it, the node runs the real service machines (see
 * services.ts); a snapshot carries both the hash and the machines' own snapshot bytes.
 */
import { decodeCommand, encodeCommand } from "../../src/services/command-codec.ts";
import type { Entry } from "../../src/raft/types.ts";

/** 2^20, used to pack two hash lanes into one exactly-representable double (52 bits). */
const LANE_B = 0x100000;

/**
 * Chain `entry` onto the hash `prev` of its prefix. Two 32-bit FNV-style lanes with different
 * primes, packed into 52 bits, so an accidental collision over a run is negligible. (The mixing
 * is written out rather than put in a closure: this runs for every entry on every node.)
 */
export function chainHash(prev: number, entry: Entry): number {
  let a = (prev % 0x100000000) ^ 0x811c9dc5;
  let b = Math.floor(prev / 0x100000000) ^ 0x01000193;
  a = Math.imul(a ^ entry.index, 0x01000193);
  b = Math.imul(b ^ entry.index, 0x5bd1e995);
  b ^= b >>> 15;
  a = Math.imul(a ^ entry.term, 0x01000193);
  b = Math.imul(b ^ entry.term, 0x5bd1e995);
  b ^= b >>> 15;
  a = Math.imul(a ^ entry.type, 0x01000193);
  b = Math.imul(b ^ entry.type, 0x5bd1e995);
  b ^= b >>> 15;
  const data = entry.data;
  const n = data.length;
  a = Math.imul(a ^ n, 0x01000193);
  b = Math.imul(b ^ n, 0x5bd1e995);
  b ^= b >>> 15;
  for (let i = 0; i < n; i++) {
    const x = data[i]!;
    a = Math.imul(a ^ x, 0x01000193);
    b = Math.imul(b ^ x, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0) * LANE_B + ((b >>> 0) & (LANE_B - 1));
}

/** A 52-bit hash of byte strings (same two lanes as {@link chainHash}): the state digest. */
export function bytesHash(...parts: readonly Uint8Array[]): number {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (const p of parts) {
    a = Math.imul(a ^ p.length, 0x01000193);
    b = Math.imul(b ^ p.length, 0x5bd1e995);
    b ^= b >>> 15;
    for (let i = 0; i < p.length; i++) {
      const x = p[i]!;
      a = Math.imul(a ^ x, 0x01000193);
      b = Math.imul(b ^ x, 0x5bd1e995);
      b ^= b >>> 15;
    }
  }
  return (a >>> 0) * LANE_B + ((b >>> 0) & (LANE_B - 1));
}

/** The hash-chain part of a node's state at an index. */
export interface SmImage {
  /** Index of the last applied entry (0 = nothing applied). */
  readonly index: number;
  /** Chain hash of entries `[1, index]` (0 at index 0). */
  readonly hash: number;
  /** Number of client commands (non-empty Normal entries) applied. */
  readonly commands: number;
}

/** The service machines' own snapshot bytes (their real `snapshot()` output). */
export interface ServiceImage {
  /** ClusterMachine (KV register + lock manager + members). */
  readonly cluster: Uint8Array;
  /** QueueMachine. */
  readonly queue: Uint8Array;
}

/** Everything a snapshot of a simulated node carries. */
export interface NodeImage extends SmImage {
  /** Absent only in the bootstrap (index 0) image. */
  readonly services: ServiceImage | null;
}

/** The hash chain of one simulated node incarnation. */
export class StateMachine {
  index: number;
  hash: number;
  commands: number;

  constructor(image: SmImage = { index: 0, hash: 0, commands: 0 }) {
    this.index = image.index;
    this.hash = image.hash;
    this.commands = image.commands;
  }

  /**
   * Apply `entry`, which the caller has checked is `index + 1`. `isCommand` says whether it was
   * a client command (to keep the count meaningful).
   */
  apply(entry: Entry, isCommand: boolean): void {
    this.hash = chainHash(this.hash, entry);
    this.index = entry.index;
    if (isCommand) this.commands++;
  }

  /** The current image, for snapshots. */
  image(): SmImage {
    return { index: this.index, hash: this.hash, commands: this.commands };
  }
}

const IMAGE_VERSION = 2;

/** Serialize a node image into snapshot bytes (MessagePack: the core treats snapshot data as opaque). */
export function encodeImage(img: SmImage, services: ServiceImage): Uint8Array {
  return encodeCommand({ v: IMAGE_VERSION, index: img.index, hash: img.hash, commands: img.commands, cluster: services.cluster, queue: services.queue });
}

/** Inverse of {@link encodeImage}. Throws on bytes it did not produce. */
export function decodeImage(data: Uint8Array): NodeImage {
  const v = decodeCommand(data) as { v?: unknown; index?: unknown; hash?: unknown; commands?: unknown; cluster?: unknown; queue?: unknown };
  if (v === null || typeof v !== "object" || v.v !== IMAGE_VERSION || typeof v.index !== "number" || typeof v.hash !== "number" ||
      !(v.cluster instanceof Uint8Array) || !(v.queue instanceof Uint8Array)) {
    throw new Error("bad snapshot image");
  }
  return { index: v.index, hash: v.hash, commands: Number(v.commands), services: { cluster: v.cluster, queue: v.queue } };
}
