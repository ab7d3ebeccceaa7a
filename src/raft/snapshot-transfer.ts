import { assert } from "./assert.ts";
import type { Snapshot, SnapshotChunk, SnapshotMeta } from "./types.ts";

/** Snapshot chunks a leader keeps in flight to one follower before waiting for acks. */
export const SNAPSHOT_CHUNKS_IN_FLIGHT_MAX = 4;

/**
 * Heartbeat rounds without ack progress after which the leader resends the window from the last
 * acknowledged offset (go-back-N, same attempt): a chunk or an ack was lost.
 */
export const SNAPSHOT_STALL_HEARTBEATS_MAX = 3;

/**
 * Heartbeat rounds without ack progress after which the leader gives up on the attempt and starts
 * a new one from offset 0 with its newest snapshot (the follower may have lost its assembly, e.g.
 * by restarting, or the log may have been compacted further).
 */
export const SNAPSHOT_RESTART_HEARTBEATS = 2 * SNAPSHOT_STALL_HEARTBEATS_MAX;

/** Out-of-order chunks a receiver buffers beyond its contiguous prefix; more are dropped (resent later). */
const RECEIVER_PENDING_CHUNKS_MAX = 64;

/**
 * Leader side of one transfer *attempt* of a chunked InstallSnapshot to one follower: a sliding
 * window of chunks over `snapshot.data`.
 *
 * Every attempt has an id (`attempt`), unique among the attempts of one leader in one term: it
 * travels in each chunk (`Message.snapshotAttempt`) and is echoed in the follower's SnapResp, so
 * responses to (reordered, duplicated) chunks of an older attempt are recognised and ignored, and
 * the follower never lets an old attempt's chunk disturb the current assembly. Acks are cumulative
 * (the follower holds `[0, offset)`); a lost chunk or ack is repaired by resending from the last
 * acked offset when the transfer stalls.
 */
export class SnapshotSender {
  readonly snapshot: Snapshot;
  readonly attempt: number;
  readonly #chunkBytes: number;
  #nextOffset = 0;
  #ackedOffset = 0;
  #doneSent = false;
  /** Heartbeat rounds since the last ack progress. */
  stalledHeartbeats = 0;
  /** The follower rejected this attempt: start a new one at the next heartbeat (rate limit). */
  restartRequested = false;

  constructor(snapshot: Snapshot, chunkBytes: number, attempt: number) {
    assert(chunkBytes > 0, "snapshot sender: chunk size must be positive");
    this.snapshot = snapshot;
    this.#chunkBytes = chunkBytes;
    this.attempt = attempt;
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

  /** The follower has assembled `[0, offset)` of this attempt. Returns whether that is news. */
  onAck(offset: number): boolean {
    const acked = Math.min(offset, this.#nextOffset);
    if (acked <= this.#ackedOffset) return false;
    this.#ackedOffset = acked;
    this.stalledHeartbeats = 0;
    return true;
  }

  /** Go-back-N: resend everything after the last acknowledged offset (same attempt). */
  rewind(): void {
    // Never past the start of the last chunk, so a rewind always resends something.
    const total = this.snapshot.data.length;
    const lastChunkStart = total === 0 ? 0 : Math.floor((total - 1) / this.#chunkBytes) * this.#chunkBytes;
    this.#nextOffset = Math.min(this.#ackedOffset, lastChunkStart);
    this.#doneSent = false;
  }
}

/** Outcome of offering a chunk to a {@link SnapshotReceiver}. */
export type ChunkResult =
  /** The chunk belongs to an attempt older than the one being assembled: ignore it, say nothing. */
  | { kind: "stale" }
  | { kind: "progress"; received: number }
  | { kind: "mismatch" }
  | { kind: "complete"; snapshot: Snapshot };

/**
 * Follower side: assembles the chunks of one transfer attempt, identified by the leader's term and
 * its attempt id. A chunk of a newer attempt (at any offset: its first chunk may be overtaken by
 * a later one) starts a new assembly; a chunk of an older attempt is ignored. Within an attempt,
 * chunks may arrive in any order and any number of times: out-of-order ones are buffered, the
 * contiguous prefix is acknowledged. Only an inconsistent chunk (meta or size differing within one
 * attempt) is a mismatch, which makes the leader start a new attempt.
 */
export class SnapshotReceiver {
  /** The attempt being (or last) assembled: leader term and attempt id; term 0 = none yet. */
  #term = 0;
  #attempt = 0;
  #meta: SnapshotMeta | undefined;
  #parts: Uint8Array[] = [];
  #received = 0;
  #total = 0;
  /** Chunks beyond the contiguous prefix, by offset. */
  #pending = new Map<number, Uint8Array>();

  /**
   * @param term the term of the leader that sent the chunk (the message's term).
   * @param attempt the sender's attempt id (0 from a peer that does not send one).
   */
  offer(chunk: SnapshotChunk, term: number, attempt: number): ChunkResult {
    if (term < this.#term || (term === this.#term && attempt < this.#attempt)) return { kind: "stale" };
    const newer = term > this.#term || attempt > this.#attempt;
    if (newer || !this.#meta || (chunk.offset === 0 && (!sameMeta(this.#meta, chunk.meta) || chunk.totalBytes !== this.#total))) {
      // A new attempt (or, from a peer without attempt ids, a restart with another snapshot).
      this.#start(chunk, term, attempt);
    } else if (!sameMeta(this.#meta, chunk.meta) || chunk.totalBytes !== this.#total) {
      this.reset();
      return { kind: "mismatch" };
    }
    const end = chunk.offset + chunk.data.length;
    if (end > this.#total || (chunk.done && end !== this.#total) || (!chunk.done && end === this.#total && this.#total > 0)) {
      this.reset();
      return { kind: "mismatch" };
    }
    if (chunk.offset > this.#received) {
      if (this.#pending.size < RECEIVER_PENDING_CHUNKS_MAX) this.#pending.set(chunk.offset, chunk.data);
    } else {
      this.#append(chunk.offset, chunk.data);
      this.#drainPending();
    }
    if (this.#received < this.#total || (this.#total === 0 && !chunk.done)) return { kind: "progress", received: this.#received };
    const data = new Uint8Array(this.#total);
    let off = 0;
    for (const p of this.#parts) {
      data.set(p, off);
      off += p.length;
    }
    const snapshot: Snapshot = { meta: this.#meta!, data };
    this.reset();
    return { kind: "complete", snapshot };
  }

  #start(chunk: SnapshotChunk, term: number, attempt: number): void {
    this.reset();
    this.#term = term;
    this.#attempt = attempt;
    this.#meta = chunk.meta;
    this.#total = chunk.totalBytes;
  }

  /** Appends the part of `[offset, offset + data.length)` beyond the contiguous prefix. */
  #append(offset: number, data: Uint8Array): void {
    if (offset + data.length <= this.#received) return;
    const part = data.subarray(this.#received - offset);
    this.#parts.push(part);
    this.#received += part.length;
  }

  #drainPending(): void {
    for (let progressed = true; progressed && this.#pending.size > 0; ) {
      progressed = false;
      for (const [offset, data] of this.#pending) {
        if (offset > this.#received) continue;
        this.#pending.delete(offset);
        const before = this.#received;
        this.#append(offset, data);
        if (this.#received > before) progressed = true;
      }
    }
  }

  /**
   * Discards the assembly. The attempt stays remembered, so chunks of older attempts are still
   * recognised as stale; a chunk of the same attempt starts the assembly over.
   */
  reset(): void {
    this.#meta = undefined;
    this.#parts = [];
    this.#pending = new Map();
    this.#received = 0;
    this.#total = 0;
  }
}

function sameMeta(a: SnapshotMeta, b: SnapshotMeta): boolean {
  return a.index === b.index && a.term === b.term;
}
