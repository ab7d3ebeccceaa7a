import { assert } from "./assert.ts";
import type { Snapshot, SnapshotChunk, SnapshotMeta } from "./types.ts";

/** Snapshot chunks a leader keeps in flight to one follower before waiting for acks. */
export const SNAPSHOT_CHUNKS_IN_FLIGHT_MAX = 4;

/** Heartbeat rounds without an ack after which the leader restarts a snapshot from offset 0. */
export const SNAPSHOT_STALL_HEARTBEATS_MAX = 3;

/**
 * Leader side of a chunked InstallSnapshot to one follower: a sliding window of chunks over
 * `snapshot.data`. A lost chunk makes the follower reject the next one, and the transfer restarts
 * from offset 0; a lost tail is detected by the stall counter.
 */
export class SnapshotSender {
  readonly snapshot: Snapshot;
  readonly #chunkBytes: number;
  #nextOffset = 0;
  #ackedOffset = 0;
  #doneSent = false;
  stalledHeartbeats = 0;

  constructor(snapshot: Snapshot, chunkBytes: number) {
    assert(chunkBytes > 0, "snapshot sender: chunk size must be positive");
    this.snapshot = snapshot;
    this.#chunkBytes = chunkBytes;
  }

  /** The chunks that may be sent now within the in-flight window. */
  nextChunks(): SnapshotChunk[] {
    const total = this.snapshot.data.length;
    const out: SnapshotChunk[] = [];
    while (!this.#doneSent && this.#nextOffset - this.#ackedOffset < SNAPSHOT_CHUNKS_IN_FLIGHT_MAX * this.#chunkBytes) {
      const end = Math.min(total, this.#nextOffset + this.#chunkBytes);
      const done = end === total;
      out.push({ meta: this.snapshot.meta, offset: this.#nextOffset, totalBytes: total, data: this.snapshot.data.subarray(this.#nextOffset, end), done });
      this.#nextOffset = end;
      this.#doneSent = done;
    }
    return out;
  }

  /** The follower has assembled `[0, offset)`. */
  onAck(offset: number): void {
    if (offset > this.#ackedOffset) {
      this.#ackedOffset = Math.min(offset, this.#nextOffset);
      this.stalledHeartbeats = 0;
    }
  }

  /** Start over from offset 0 (the follower lost a chunk, or the transfer stalled). */
  restart(): void {
    this.#nextOffset = 0;
    this.#ackedOffset = 0;
    this.#doneSent = false;
    this.stalledHeartbeats = 0;
  }
}

/** Outcome of offering a chunk to a {@link SnapshotReceiver}. */
export type ChunkResult =
  | { kind: "progress"; received: number }
  | { kind: "mismatch" }
  | { kind: "complete"; snapshot: Snapshot };

/**
 * Follower side: assembles chunks in memory, strictly in order. A chunk at offset 0 starts a new
 * assembly; any other out-of-order chunk or meta mismatch discards the assembly, so the leader
 * restarts from offset 0. A duplicate of an already-received chunk is acknowledged, not an error.
 */
export class SnapshotReceiver {
  #meta: SnapshotMeta | undefined;
  #parts: Uint8Array[] = [];
  #received = 0;
  #total = 0;

  offer(chunk: SnapshotChunk): ChunkResult {
    if (chunk.offset === 0) {
      this.#meta = chunk.meta;
      this.#parts = [];
      this.#received = 0;
      this.#total = chunk.totalBytes;
    } else if (!this.#meta || !sameMeta(this.#meta, chunk.meta) || chunk.offset > this.#received || chunk.totalBytes !== this.#total) {
      this.reset();
      return { kind: "mismatch" };
    } else if (chunk.offset < this.#received) {
      return { kind: "progress", received: this.#received };
    }
    this.#parts.push(chunk.data);
    this.#received += chunk.data.length;
    if (this.#received > this.#total || (chunk.done && this.#received !== this.#total)) {
      this.reset();
      return { kind: "mismatch" };
    }
    if (!chunk.done) return { kind: "progress", received: this.#received };
    const data = new Uint8Array(this.#total);
    let off = 0;
    for (const p of this.#parts) {
      data.set(p, off);
      off += p.length;
    }
    const snapshot: Snapshot = { meta: chunk.meta, data };
    this.reset();
    return { kind: "complete", snapshot };
  }

  reset(): void {
    this.#meta = undefined;
    this.#parts = [];
    this.#received = 0;
    this.#total = 0;
  }
}

function sameMeta(a: SnapshotMeta, b: SnapshotMeta): boolean {
  return a.index === b.index && a.term === b.term;
}
