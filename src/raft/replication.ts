import { assert } from "./assert.ts";
import type { Outbox } from "./message.ts";
import type { Progress } from "./progress.ts";
import { committedIndex, hasQuorum } from "./quorum.ts";
import type { Raft } from "./raft.ts";
import type { LeaderReads } from "./read-index.ts";
import type { SnapshotSending } from "./snapshot-sending.ts";
import { CompactedError, MessageType, type Entry, type Message, type NodeId } from "./types.ts";

/** What replication needs of the node: read live, as it changes under the leader. */
type LeaderView = Readonly<Pick<Raft, "id" | "cfg" | "log" | "term" | "conf" | "prs" | "leadTransferee">>;

/**
 * The leader's log replication: appends and heartbeats out, their acks in, and the commit index
 * they advance. Apart from {@link Raft} because it changes nothing of the node but the followers'
 * progress and the commit index; the reads and snapshot transfers that ride on it are given.
 */
export class Replication {
  readonly #node: LeaderView;
  readonly #send: Outbox;
  readonly #snapshots: SnapshotSending;
  readonly #reads: LeaderReads;

  constructor(node: LeaderView, send: Outbox, snapshots: SnapshotSending, reads: LeaderReads) {
    this.#node = node;
    this.#send = send;
    this.#snapshots = snapshots;
    this.#reads = reads;
  }

  /** A response from a follower to what the leader sent it. */
  onResponse(m: Message): void {
    const pr = this.#node.prs.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.#onAppResp(m, pr);
        return;
      case MessageType.HeartbeatResp:
        this.#onHeartbeatResp(m, pr);
        return;
      case MessageType.SnapResp:
        pr.recentActive = true;
        this.#snapshots.onResponse(m, pr);
        return;
      default:
        return;
    }
  }

  bcastAppend(): void {
    for (const id of this.#node.prs.keys()) if (id !== this.#node.id) this.sendAppend(id, true);
  }

  bcastHeartbeat(context: string | undefined): void {
    const node = this.#node;
    for (const [id, pr] of node.prs) {
      if (id === node.id) continue;
      // Never tell a follower to commit past what it is known to hold.
      const commit = Math.min(pr.match, node.log.committed);
      this.#send({ to: id, type: MessageType.Heartbeat, commit, ...(context !== undefined ? { context } : {}) });
    }
  }

  /**
   * Sends the next batch of entries to `to`, or a snapshot when they are compacted. Returns whether
   * something was sent; with `sendIfEmpty` false an App without entries is not sent.
   */
  sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const log = this.#node.log;
    const pr = this.#node.prs.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = log.term(prevIndex);
    if (prevTerm === undefined) {
      // Invariant: next never runs past our log's end, so an unknown term means "compacted".
      assert(prevIndex < log.firstIndex(), `sendAppend: next ${pr.next} beyond last index ${log.lastIndex()}`);
      return this.#sendSnapshot(to, pr);
    }
    let entries: Entry[];
    try {
      entries = log.slice(pr.next, log.lastIndex() + 1, this.#node.cfg.maxMsgBytes);
    } catch (e) {
      if (e instanceof CompactedError) return this.#sendSnapshot(to, pr);
      throw e;
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.#send({ to, type: MessageType.App, index: prevIndex, logTerm: prevTerm, entries, commit: log.committed });
    pr.sentEntries(entries.length, prevIndex + entries.length);
    return true;
  }

  #onAppResp(m: Message, pr: Progress): void {
    const log = this.#node.log;
    pr.recentActive = true;
    if (m.reject) {
      let nextProbeIdx = m.rejectHint;
      if ((m.rejectTerm ?? 0) > 0) {
        // Skip every entry of ours whose term is newer than the follower's term at rejectHint.
        nextProbeIdx = log.findConflictByTerm(m.rejectHint, m.rejectTerm!);
      }
      if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    const updated = pr.maybeUpdate(m.index);
    if (pr.state === "snapshot") {
      // Still installing: nothing to do until the follower reports the snapshot's index.
      if (pr.match < pr.pendingSnapshot && pr.match + 1 < log.firstIndex()) return;
      this.#snapshots.stop(m.from);
      pr.becomeProbe();
      if (pr.match + 1 < log.firstIndex()) {
        // We compacted past the snapshot it just installed: send the newer one.
        this.sendAppend(m.from, true);
        return;
      }
      // Resume log replication after the snapshot.
      pr.becomeReplicate();
    } else if (updated || (pr.match === m.index && pr.state === "probe")) {
      if (pr.state === "probe") pr.becomeReplicate();
      else pr.inflights.freeLE(m.index);
    } else {
      return;
    }
    if (!this.maybeCommit() && wasPaused) this.sendAppend(m.from, true);
    // Pipelining: fill the freed window with as many batches as it holds.
    while (this.sendAppend(m.from, false)) {
      /* keep sending */
    }
    if (m.from === this.#node.leadTransferee && pr.match === log.lastIndex()) {
      this.#send({ to: m.from, type: MessageType.TimeoutNow });
    }
  }

  #onHeartbeatResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    // If every App filling the window was lost, free one slot so replication can resume.
    if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.#node.log.lastIndex()) this.sendAppend(m.from, true);
    if (m.context !== undefined) this.#reads.onHeartbeatAck(m.from, m.context);
  }

  /**
   * Advances the commit index to the quorum's match, counting only current-term entries (§5.4.2).
   * On news, answers the reads that waited for it and tells the followers; returns whether it moved.
   */
  maybeCommit(): boolean {
    const node = this.#node;
    const mci = committedIndex(node.conf.voters, (id) => node.prs.get(id)?.match ?? 0);
    if (mci <= node.log.committed || node.log.term(mci) !== node.term) return false;
    node.log.commitTo(mci);
    this.#reads.onCommitAdvanced();
    // Followers learn the new commit index from the next App.
    this.bcastAppend();
    return true;
  }

  /** Whether a quorum of voters was heard from in the last election timeout; resets the marks. */
  quorumActive(): boolean {
    const node = this.#node;
    const active = new Set<NodeId>([node.id]);
    for (const [id, pr] of node.prs) {
      if (pr.recentActive) active.add(id);
      if (id !== node.id) pr.recentActive = false;
    }
    return hasQuorum(node.conf.voters, active);
  }

  reportUnreachable(to: NodeId): void {
    const pr = this.#node.prs.get(to);
    if (pr && pr.state === "replicate") pr.becomeProbe();
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.#node.prs.get(to);
    if (!pr || pr.state !== "snapshot") return;
    if (!ok) pr.pendingSnapshot = 0;
    // Either way, probe: after success next = snapshot index + 1; after failure from match + 1.
    pr.becomeProbe();
    // Wait for a heartbeat response before probing, as etcd does.
    pr.msgAppFlowPaused = true;
    this.#snapshots.stop(to);
  }

  #sendSnapshot(to: NodeId, pr: Progress): boolean {
    // Streaming a snapshot to a peer we have not heard from is likely wasted bandwidth.
    if (!pr.recentActive) return false;
    this.#snapshots.start(to, pr);
    return true;
  }
}
