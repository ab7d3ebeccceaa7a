import { assert } from "./assert.ts";
import type { Outbox } from "./message.ts";
import type { Progress } from "./progress.ts";
import { SNAPSHOT_RESTART_HEARTBEATS, SNAPSHOT_STALL_HEARTBEATS_MAX, SnapshotSender } from "./snapshot-transfer.ts";
import { MessageType, type Message, type NodeId, type Snapshot } from "./types.ts";

/**
 * The leader's snapshot transfers: one {@link SnapshotSender} per follower in snapshot state.
 * Apart from `Raft` because the bookkeeping of attempts (ids, stall repair, restarts) needs
 * nothing of the node but its newest snapshot, the follower's progress and the outbox.
 */
export class SnapshotSending {
  readonly #senders = new Map<NodeId, SnapshotSender>();
  /**
   * Id of the last snapshot transfer attempt started by this node. Never reset: together with the
   * term (a node leads a term at most once) it identifies an attempt for the receiver.
   */
  #attempt = 0;
  readonly #chunkBytes: number;
  readonly #newest: () => Snapshot;
  readonly #send: Outbox;

  constructor(chunkBytes: number, newest: () => Snapshot, send: Outbox) {
    this.#chunkBytes = chunkBytes;
    this.#newest = newest;
    this.#send = send;
  }

  /** Starts a new transfer attempt of our newest snapshot to `to`, from offset 0. */
  start(to: NodeId, pr: Progress): void {
    const snap = this.#newest();
    // Invariant: entries are only compacted into a snapshot, so one exists.
    assert(snap.meta.index > 0, "sendSnapshot: log compacted but no snapshot");
    pr.becomeSnapshot(snap.meta.index);
    const sender = new SnapshotSender(snap, this.#chunkBytes, ++this.#attempt);
    this.#senders.set(to, sender);
    this.#sendChunks(to, sender);
  }

  /** A SnapResp from `m.from`, whose progress is `pr`. */
  onResponse(m: Message, pr: Progress): void {
    const sender = this.#senders.get(m.from);
    if (!sender || pr.state !== "snapshot" || sender.snapshot.meta.index !== m.index) return;
    // A response to a chunk of an earlier attempt says nothing about the current one. (A peer
    // without attempt ids echoes none: take its response as it comes.)
    if (m.snapshotAttempt !== undefined && m.snapshotAttempt !== sender.attempt) return;
    if (m.reject) {
      // Never restart on the spot: duplicated rejects would each start a new window. Restart at
      // the next heartbeat, so at most one new attempt per heartbeat interval.
      sender.restartRequested = true;
      return;
    }
    if (sender.onAck(m.rejectHint)) this.#sendChunks(m.from, sender);
  }

  /**
   * Once per heartbeat: repairs stalled transfers. Without ack progress for a few heartbeats a
   * chunk or ack was lost: resend from the last acked offset. If that does not help either (the
   * follower lost its assembly, e.g. it restarted), or the follower rejected the attempt, start a
   * new attempt with the newest snapshot (the log may have been compacted further).
   *
   * Deliberately not gated on `recentActive` (unlike the first send from `sendAppend`): with
   * CheckQuorum that mark is cleared at every election-timeout boundary, just before this runs in
   * the same tick, so a gated retry could be skipped every time and the follower stay in snapshot
   * state forever. The cost of retrying to a dead follower is one window per few heartbeats.
   */
  tick(prs: ReadonlyMap<NodeId, Progress>): void {
    for (const [to, sender] of this.#senders) {
      const pr = prs.get(to);
      if (!pr || pr.state !== "snapshot") {
        this.#senders.delete(to);
        continue;
      }
      sender.stalledHeartbeats++;
      if (sender.restartRequested || sender.stalledHeartbeats >= SNAPSHOT_RESTART_HEARTBEATS) {
        this.start(to, pr);
      } else if (sender.stalledHeartbeats % SNAPSHOT_STALL_HEARTBEATS_MAX === 0) {
        sender.rewind();
        this.#sendChunks(to, sender);
      }
    }
  }

  /** Forgets the transfer to `to`: it ended, or `to` left the group. */
  stop(to: NodeId): void {
    this.#senders.delete(to);
  }

  /** Forgets every transfer (a role change); attempt ids keep counting. */
  clear(): void {
    this.#senders.clear();
  }

  #sendChunks(to: NodeId, sender: SnapshotSender): void {
    for (const chunk of sender.nextChunks()) {
      this.#send({ to, type: MessageType.Snap, index: chunk.meta.index, logTerm: chunk.meta.term, snapshot: chunk, snapshotAttempt: sender.attempt });
    }
  }
}
