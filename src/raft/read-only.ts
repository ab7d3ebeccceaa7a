import type { NodeId } from "./types.ts";

/** One ReadIndex request waiting for its heartbeat round. `from` is null for a local request. */
export interface ReadRequest {
  /** Identifies the request's heartbeat round (requester and context). */
  readonly key: string;
  /** The requester's context, echoed in its ReadState. */
  readonly context: string;
  readonly index: number;
  readonly from: NodeId | null;
  readonly acks: Set<NodeId>;
}

/**
 * The leader's pending ReadIndex requests, in arrival order (Raft thesis §6.4). A request is
 * answered once a quorum acknowledged a heartbeat sent after it; that also answers every earlier
 * request, because the quorum confirmed leadership at a later point in time.
 */
export class ReadOnly {
  #pending = new Map<string, ReadRequest>();
  #queue: string[] = [];

  /** Records a request at commit index `index`; a duplicate key is ignored (returns false). */
  add(key: string, context: string, index: number, from: NodeId | null): boolean {
    if (this.#pending.has(key)) return false;
    this.#pending.set(key, { key, context, index, from, acks: new Set() });
    this.#queue.push(key);
    return true;
  }

  /** Records `from`'s ack of the round for `key`; returns the ack set, or undefined if unknown. */
  recvAck(from: NodeId, key: string): ReadonlySet<NodeId> | undefined {
    const r = this.#pending.get(key);
    if (!r) return undefined;
    r.acks.add(from);
    return r.acks;
  }

  /** Removes and returns every request up to and including `key`. */
  advance(key: string): ReadRequest[] {
    const i = this.#queue.indexOf(key);
    if (i < 0) return [];
    const done = this.#queue.slice(0, i + 1);
    this.#queue = this.#queue.slice(i + 1);
    return done.map((c) => {
      const r = this.#pending.get(c)!;
      this.#pending.delete(c);
      return r;
    });
  }

  /** Key of the newest pending request, carried on heartbeats so a lost round is retried. */
  lastPendingKey(): string | undefined {
    return this.#queue[this.#queue.length - 1];
  }

  size(): number {
    return this.#queue.length;
  }
}
