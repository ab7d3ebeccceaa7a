/**
 * The simulated network: an in-flight set of messages with per-message delivery times.
 *
 * Faults: loss and duplication at send time; reordering falls out of random per-message delays;
 * partitions (symmetric or one-way) are a set of blocked directed links checked at *delivery*
 * time, so messages already in flight when a partition starts are lost too — like a TCP
 * connection reset taking its buffered bytes with it.
 */
import type { Message, NodeId } from "../../src/raft/types.ts";
import type { Prng } from "./prng.ts";

/** Tunables of the network. Rates in `[0, 1]`, delays in steps. */
export interface NetworkOptions {
  readonly lossRate: number;
  readonly dupRate: number;
  readonly delayMin: number;
  readonly delayMax: number;
  /** TCP-like links: messages on one directed link arrive in send order (no reordering). */
  readonly fifoLinks: boolean;
  /** Bound on messages in flight per directed link (a transport's send buffer); excess is dropped. */
  readonly linkBufferMax: number;
}

interface InFlight {
  readonly msg: Message;
  /** The directed link `from>to` (kept so delivery need not rebuild the key). */
  readonly link: string;
  readonly deliverAt: number;
  /** Tie-breaker drawn at send time, so equal delivery times are reordered too. */
  readonly order: number;
}

/** Why a message did not arrive, for the sender's transport feedback (reportUnreachable …). */
export type DropReason = "loss" | "partition" | "overflow";

/** Counters for the summary line. */
export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  partitioned: number;
  /** Messages dropped because their link's buffer was full (a message storm). */
  overflowed: number;
}

/** An in-process network between simulated nodes. Deterministic given its rng. */
export class SimNetwork {
  readonly #rng: Prng;
  #opts: NetworkOptions;
  #inFlight: InFlight[] = [];
  /** Messages in flight per directed link `from>to`, and the latest delivery time (FIFO mode). */
  readonly #linkCount = new Map<string, number>();
  readonly #linkLast = new Map<string, number>();
  #seq = 0;
  /** Blocked directed links, keyed `from>to`. */
  readonly #blocked = new Set<string>();
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, partitioned: 0, overflowed: 0 };

  constructor(rng: Prng, opts: NetworkOptions) {
    this.#rng = rng;
    this.#opts = opts;
  }

  /** Replace the fault options (the liveness phase switches to a clean network). */
  setOptions(opts: NetworkOptions): void {
    this.#opts = opts;
  }

  /** Number of messages currently in flight. */
  get inFlightCount(): number {
    return this.#inFlight.length;
  }

  /**
   * Queue `msg` for delivery at a random time in `[now + delayMin, now + delayMax]` (never before
   * an earlier message of the same link in FIFO mode), maybe losing or duplicating it. Returns
   * null when queued, else why it was dropped at send time.
   */
  send(msg: Message, now: number): DropReason | null {
    this.stats.sent++;
    if (this.#rng.chance(this.#opts.lossRate)) {
      this.stats.lost++;
      return "loss";
    }
    if (!this.#enqueue(msg, now)) return "overflow";
    if (this.#rng.chance(this.#opts.dupRate)) {
      this.stats.duplicated++;
      this.#enqueue(msg, now);
    }
    return null;
  }

  #enqueue(msg: Message, now: number): boolean {
    const link = `${msg.from}>${msg.to}`;
    const count = this.#linkCount.get(link) ?? 0;
    if (count >= this.#opts.linkBufferMax) {
      this.stats.overflowed++;
      return false;
    }
    this.#linkCount.set(link, count + 1);
    let deliverAt = now + this.#rng.between(this.#opts.delayMin, this.#opts.delayMax);
    let order = this.#rng.u32();
    if (this.#opts.fifoLinks) {
      deliverAt = Math.max(deliverAt, this.#linkLast.get(link) ?? 0);
      this.#linkLast.set(link, deliverAt);
      order = this.#seq++;
    }
    this.#inFlight.push({ msg, link, deliverAt, order });
    return true;
  }

  /**
   * Remove and return every message due at `now`, in a random order. Messages on a blocked link
   * are passed to `onDrop` instead (the transport would notice the broken connection).
   */
  takeDue(now: number, onDrop: (msg: Message, reason: DropReason) => void): Message[] {
    const due: InFlight[] = [];
    const keep: InFlight[] = [];
    for (const f of this.#inFlight) (f.deliverAt <= now ? due : keep).push(f);
    this.#inFlight = keep;
    due.sort((a, b) => a.order - b.order);
    const out: Message[] = [];
    for (const f of due) {
      this.#linkCount.set(f.link, this.#linkCount.get(f.link)! - 1);
      if (this.isBlocked(f.msg.from, f.msg.to)) {
        this.stats.partitioned++;
        onDrop(f.msg, "partition");
      } else {
        this.stats.delivered++;
        out.push(f.msg);
      }
    }
    return out;
  }

  /** Whether the directed link `from → to` is cut. */
  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.#blocked.size > 0 && this.#blocked.has(`${from}>${to}`);
  }

  /** Cut every link between `a` and `b` in both directions. */
  partitionSymmetric(a: readonly NodeId[], b: readonly NodeId[]): void {
    this.partitionOneWay(a, b);
    this.partitionOneWay(b, a);
  }

  /** Cut the links `a → b` only: `b` still reaches `a`. */
  partitionOneWay(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) for (const y of b) this.#blocked.add(`${x}>${y}`);
  }

  /** Whether any link is currently cut. */
  get isPartitioned(): boolean {
    return this.#blocked.size > 0;
  }

  /** Restore every link. */
  heal(): void {
    this.#blocked.clear();
  }
}
