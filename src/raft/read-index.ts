import { hasQuorum } from "./quorum.ts";
import type { Outbox } from "./message.ts";
import type { Raft } from "./raft.ts";
import { ReadOnly } from "./read-only.ts";
import { MessageType, type Message, type NodeId } from "./types.ts";

/** What a read needs of the node: read live, as it changes under the reads. */
type ReadView = Readonly<Pick<Raft, "id" | "term" | "conf" | "log" | "readStates" | "isVoter">>;

/**
 * The leader's ReadIndex requests (Raft thesis §6.4), local or forwarded by followers. Apart from
 * {@link Raft} because a read changes neither the log nor the term: it waits for the commit index
 * to be trustworthy and for a quorum of heartbeat acks, then answers.
 */
export class LeaderReads {
  #readOnly = new ReadOnly();
  /** Requests waiting for the leader to commit an entry of its own term. */
  #pending: Message[] = [];
  readonly #node: ReadView;
  readonly #send: Outbox;
  readonly #heartbeat: (context: string) => void;

  /** `heartbeat` broadcasts a heartbeat round carrying `context`. */
  constructor(node: ReadView, send: Outbox, heartbeat: (context: string) => void) {
    this.#node = node;
    this.#send = send;
    this.#heartbeat = heartbeat;
  }

  /** Drops every request (a role change). */
  reset(): void {
    this.#readOnly = new ReadOnly();
    this.#pending = [];
  }

  /** No read is waiting (for a commit in this term or for heartbeat acks). */
  get idle(): boolean {
    return this.#pending.length === 0 && this.#readOnly.size() === 0;
  }

  /** The round the next heartbeats carry, if any is pending. */
  lastPendingKey(): string | undefined {
    return this.#readOnly.lastPendingKey();
  }

  request(m: Message): void {
    const node = this.#node;
    const context = m.context ?? "";
    const from = m.from === node.id ? null : m.from;
    if (!this.#committedEntryInCurrentTerm()) {
      // Until the leader commits in its term, its commit index may lag the true one (§6.4).
      this.#pending.push(m);
      return;
    }
    if (node.conf.voters.length === 1 && node.isVoter()) {
      this.#answer(from, context, node.log.committed);
      return;
    }
    // Contexts are unique per requester only, so the round is keyed by both.
    const key = JSON.stringify([from, context]);
    if (!this.#readOnly.add(key, context, node.log.committed, from)) return;
    this.#readOnly.recvAck(node.id, key);
    this.#heartbeat(key);
  }

  /** `from` acknowledged the heartbeat of round `context`. */
  onHeartbeatAck(from: NodeId, context: string): void {
    const acks = this.#readOnly.recvAck(from, context);
    if (!acks || !hasQuorum(this.#node.conf.voters, acks)) return;
    for (const req of this.#readOnly.advance(context)) this.#answer(req.from, req.context, req.index);
  }

  onCommitAdvanced(): void {
    if (this.#pending.length > 0 && this.#committedEntryInCurrentTerm()) {
      const pending = this.#pending;
      this.#pending = [];
      for (const m of pending) this.request(m);
    }
  }

  #answer(from: NodeId | null, context: string, index: number): void {
    if (from === null) this.#node.readStates.push({ context, index });
    else this.#send({ to: from, type: MessageType.ReadIndexResp, index, context });
  }

  #committedEntryInCurrentTerm(): boolean {
    return this.#node.log.term(this.#node.log.committed) === this.#node.term;
  }
}
