import type { Outbox } from "./message.ts";
import { progressOf } from "./progress.ts";
import type { Raft } from "./raft.ts";
import { SnapshotReceiver } from "./snapshot-transfer.ts";
import { MessageType, type Message, type Snapshot } from "./types.ts";

/** What a follower's replication reads and changes of the node (its log; on a snapshot, its membership). */
type FollowerView = Pick<Raft, "cfg" | "log" | "term" | "state" | "conf" | "prs" | "becomeFollower">;

/**
 * A follower's answers to its leader's App, Heartbeat and Snap. Apart from {@link Raft} because
 * they depend on the log (and an installed snapshot's membership) only; whether the message is
 * the leader's to act on is decided before, by the node.
 */
export class FollowerReplication {
  readonly #receiver = new SnapshotReceiver();
  readonly #node: FollowerView;
  readonly #send: Outbox;

  constructor(node: FollowerView, send: Outbox) {
    this.#node = node;
    this.#send = send;
  }

  onAppend(m: Message): void {
    const log = this.#node.log;
    if (m.index < log.committed) {
      this.#send({ to: m.from, type: MessageType.AppResp, index: log.committed });
      return;
    }
    const lastNew = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.#send({ to: m.from, type: MessageType.AppResp, index: lastNew });
      return;
    }
    // Fast backtracking: point the leader at the last index that can possibly match, skipping
    // every entry of a term newer than the leader's term at m.index.
    const hintIndex = log.findConflictByTerm(Math.min(m.index, log.lastIndex()), m.logTerm);
    const hintTerm = log.term(hintIndex) ?? 0;
    this.#send({ to: m.from, type: MessageType.AppResp, index: m.index, reject: true, rejectHint: hintIndex, rejectTerm: hintTerm });
  }

  onHeartbeat(m: Message): void {
    this.#node.log.commitTo(m.commit);
    this.#send({ to: m.from, type: MessageType.HeartbeatResp, ...(m.context !== undefined ? { context: m.context } : {}) });
  }

  onSnap(m: Message): void {
    const log = this.#node.log;
    const chunk = m.snapshot;
    if (!chunk) return;
    if (chunk.meta.index <= log.committed) {
      // Already have it (e.g. the AppResp after install was lost): tell the leader where we are.
      this.#receiver.reset();
      this.#send({ to: m.from, type: MessageType.AppResp, index: log.committed });
      return;
    }
    const attempt = m.snapshotAttempt;
    const echo = attempt !== undefined ? { snapshotAttempt: attempt } : {};
    const r = this.#receiver.offer(chunk, m.term, attempt ?? 0);
    switch (r.kind) {
      case "stale":
        // A reordered or duplicated chunk of an attempt the leader has already abandoned.
        return;
      case "progress":
        this.#send({ to: m.from, type: MessageType.SnapResp, index: chunk.meta.index, rejectHint: r.received, ...echo });
        return;
      case "mismatch":
        this.#send({ to: m.from, type: MessageType.SnapResp, index: chunk.meta.index, reject: true, ...echo });
        return;
      case "complete":
        if (this.#restore(r.snapshot)) this.#send({ to: m.from, type: MessageType.AppResp, index: log.lastIndex() });
        else this.#send({ to: m.from, type: MessageType.AppResp, index: log.committed });
        return;
    }
  }

  /** Installs a complete snapshot; false when it is stale or already covered by our log. */
  #restore(s: Snapshot): boolean {
    const node = this.#node;
    if (s.meta.index <= node.log.committed) return false;
    if (node.state !== "follower") {
      // Only a follower of the sender steps Snap; anything else is a bug upstream. Be safe.
      node.becomeFollower(node.term + 1, null);
      return false;
    }
    // No "the snapshot's membership must include us" check (etcd has one, as defense in depth,
    // where node ids are never reused). Here a removed node can be re-added, and the leader's newest
    // snapshot may predate the re-add: refusing it would leave the node stuck forever, as nothing
    // makes the leader take a newer one on a quiet log. Installing it is safe: a snapshot holds
    // only committed state and comes from the leader of our current term, which sends it only to
    // members of its (applied) configuration. That configuration adds us at an index above the
    // snapshot's, and the leader still holds that entry in its log (it only compacts up to its
    // snapshot), so we receive and apply it next. Until then our membership is the snapshot's,
    // exactly as for any follower whose log ends there: without us as a voter we are not
    // promotable, so we never campaign on it, and votes we grant count only where the candidate's
    // own configuration makes us a voter — as they would anyway.
    if (node.log.matchTerm(s.meta.index, s.meta.term)) {
      // Our log already contains the snapshot's last entry: just fast-forward the commit index.
      node.log.commitTo(s.meta.index);
      return false;
    }
    node.log.restore(s);
    node.conf = { voters: [...s.meta.conf.voters], learners: [...s.meta.conf.learners] };
    node.prs = progressOf(node.conf, node.log.lastIndex() + 1, node.cfg.maxInflightMsgs);
    return true;
  }
}
