/**
 * The reference model: what the committed log says the KV register and the queue hold, built
 * from the log alone — written from the services' documented semantics, not by running their
 * machines — so a machine bug, a stale read or a lost message shows up as a disagreement.
 *
 * It ingests each committed entry once, in index order (the first time any node applies it; the
 * chain-hash checkers make sure every node applies the same entry there), and keeps enough
 * history to answer for any index: a KV key's value at index i, the queue's placement at i.
 */
import { EntryType, type Entry } from "../../src/raft/types.ts";
import { decodeCommand } from "../../src/services/command-codec.ts";
import { backoffDelay } from "../../src/services/queue/machine/backoff.ts";
import type { QueueCommand } from "../../src/services/queue/machine/types.ts";
import { QUEUE_DEFAULTS, Tag } from "./services.ts";

const decoder = new TextDecoder();

/** What an entry was, as the reference model read it. */
export const EntryKind = { Other: 0, Kv: 1, Lock: 2, Queue: 3 } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

/** One key's writes: parallel arrays, indexes increasing; `null` = deleted. */
interface KeyHistory {
  readonly at: number[];
  readonly values: (string | null)[];
}

/** A KV value as the model states it: the value and the index that wrote it (0 = never). */
export interface KvVersion {
  readonly value: string | null;
  readonly index: number;
}

/** A message as the queue's documented semantics place it. */
interface RefMessage {
  readonly id: number;
  readonly queue: string;
  state: "ready" | "inflight" | "dead";
  visibleAt: number;
  deadline: number;
  seq: number;
  deliveryCount: number;
}

/**
 * The queue model: enqueue appends, consume takes the visible ready messages in (visibleAt, id)
 * order, ack removes a message whose receipt is current, nack and timeouts requeue it after a
 * delay (the configured backoff) or dead-letter it at maxDeliveries, purge of a DLQ drops its
 * messages. Time is the highest `now` seen.
 */
class RefQueue {
  clock = 0;
  nextId = 1;
  nextSeq = 1;
  readonly messages = new Map<number, RefMessage>();

  apply(cmd: QueueCommand): void {
    if (cmd.now > this.clock) this.clock = cmd.now;
    const now = this.clock;
    switch (cmd.op) {
      case "enqueue":
        for (let i = 0; i < cmd.messages.length; i++) {
          const delay = cmd.messages[i]!.delayMs ?? 0;
          const id = this.nextId++;
          this.messages.set(id, { id, queue: cmd.queue, state: "ready", visibleAt: now + delay, deadline: 0, seq: 0, deliveryCount: 0 });
        }
        return;
      case "consume": {
        const ready = [...this.messages.values()]
          .filter((m) => m.queue === cmd.queue && m.state === "ready" && m.visibleAt <= now)
          .sort((a, b) => a.visibleAt - b.visibleAt || a.id - b.id)
          .slice(0, cmd.max);
        const deadline = now + (cmd.visibilityMs ?? QUEUE_DEFAULTS.visibilityMs);
        for (const m of ready) {
          m.state = "inflight";
          m.deadline = deadline;
          m.seq = this.nextSeq++;
          m.deliveryCount++;
        }
        return;
      }
      case "ack":
        for (const r of cmd.receipts) {
          const m = this.#current(cmd.queue, r);
          if (m) this.messages.delete(m.id);
        }
        return;
      case "nack": {
        const m = this.#current(cmd.queue, cmd.receipt);
        if (m) this.#endDelivery(m, cmd.delayMs ?? null);
        return;
      }
      case "expire":
        for (const m of this.messages.values()) if (m.state === "inflight" && m.deadline <= now) this.#endDelivery(m, null);
        return;
      case "purge":
        if (cmd.dlq === true) {
          for (const m of this.messages.values()) if (m.state === "dead" && `${m.queue}.dlq` === cmd.queue) this.messages.delete(m.id);
        } else {
          for (const m of this.messages.values()) if (m.state === "ready" && m.queue === cmd.queue) this.messages.delete(m.id);
        }
        return;
      default:
        throw new Error(`the reference model does not model queue op ${cmd.op}`);
    }
  }

  /** The in-flight message a receipt `${id}:${seq}` names, if it is its current delivery. */
  #current(queue: string, receipt: string): RefMessage | undefined {
    const [id, seq] = receipt.split(":").map(Number);
    const m = this.messages.get(id!);
    return m && m.queue === queue && m.state === "inflight" && m.seq === seq ? m : undefined;
  }

  #endDelivery(m: RefMessage, delay: number | null): void {
    if (m.deliveryCount >= QUEUE_DEFAULTS.maxDeliveries) {
      m.state = "dead";
      return;
    }
    m.state = "ready";
    m.visibleAt = this.clock + (delay ?? backoffDelay(QUEUE_DEFAULTS.backoff, m.id, m.deliveryCount));
  }

  /** Same format as ServiceMachines.queueDigest. */
  digest(): string {
    let s = `${this.clock}|`;
    for (const [id, m] of this.messages) s += `${id}:${m.queue}:${m.state}:${m.deliveryCount}:${m.visibleAt},`;
    return s;
  }
}

/** The reference model of one run. */
export class Reference {
  /** Highest index ingested. */
  index = 0;
  readonly #kv = new Map<string, KeyHistory>();
  readonly #queue = new RefQueue();
  /** Indexes of queue entries (increasing) and the queue digest after each. */
  readonly #queueAt: number[] = [0];
  readonly #queueDigests: string[] = [new RefQueue().digest()];
  /** Per index: the entry's kind, and the key of a KV write. */
  readonly #kinds: EntryKind[] = [EntryKind.Other];
  readonly #keys = new Map<number, string>();

  /** @param onPut sees every committed put (the liveness phase waits for its probes). */
  constructor(readonly onPut: (key: string, value: string) => void = () => {}) {}

  /**
   * Ingest the entry after the last one. Throws an Error (which the caller reports) on a gap or
   * on a payload that is not a simulator command.
   */
  ingest(e: Entry): void {
    if (e.index !== this.index + 1) throw new Error(`reference model: entry ${e.index} after ${this.index}`);
    this.index = e.index;
    this.#kinds.push(EntryKind.Other);
    if (e.type !== EntryType.Normal || e.data.length === 0) return;
    const body = e.data.subarray(1);
    if (e.data[0] === Tag.Cluster) {
      const cmd = decodeCommand(body) as { op: string; key?: string; value?: Uint8Array };
      if (cmd.op === "put" || cmd.op === "delete") {
        const key = cmd.key!;
        this.#kinds[e.index] = EntryKind.Kv;
        this.#keys.set(e.index, key);
        let h = this.#kv.get(key);
        if (!h) this.#kv.set(key, (h = { at: [], values: [] }));
        const value = cmd.op === "put" ? decoder.decode(cmd.value!) : null;
        h.at.push(e.index);
        h.values.push(value);
        if (value !== null) this.onPut(key, value);
      } else this.#kinds[e.index] = EntryKind.Lock;
    } else if (e.data[0] === Tag.Queue) {
      this.#kinds[e.index] = EntryKind.Queue;
      this.#queue.apply(decodeCommand(body) as QueueCommand);
      this.#queueAt.push(e.index);
      this.#queueDigests.push(this.#queue.digest());
    } else {
      throw new Error(`entry ${e.index} has unknown tag ${e.data[0]}`);
    }
  }

  /** The kind of the (ingested) entry at `index`. */
  kindAt(index: number): EntryKind {
    return this.#kinds[index] ?? EntryKind.Other;
  }

  /** The key the KV entry at `index` wrote. */
  kvKeyAt(index: number): string | undefined {
    return this.#keys.get(index);
  }

  /** The value of `key` after entry `index` (which must be ingested). */
  kvAt(key: string, index: number): KvVersion {
    const h = this.#kv.get(key);
    if (!h) return { value: null, index: 0 };
    const k = lastAtOrBelow(h.at, index);
    return k < 0 ? { value: null, index: 0 } : { value: h.values[k]!, index: h.at[k]! };
  }

  /**
   * Every version of `key` a linearizable read may return when it was issued after index `lo`
   * was acknowledged and answered while at most index `hi` had been applied anywhere: the value
   * at `lo` and every write in `(lo, hi]`.
   */
  kvAllowed(key: string, lo: number, hi: number): KvVersion[] {
    const out = [this.kvAt(key, lo)];
    const h = this.#kv.get(key);
    if (!h) return out;
    for (let k = lastAtOrBelow(h.at, lo) + 1; k < h.at.length && h.at[k]! <= hi; k++) out.push({ value: h.values[k]!, index: h.at[k]! });
    return out;
  }

  /** Every key ever written, with its value after `index` (deleted keys omitted). */
  kvStateAt(index: number): Map<string, string> {
    const out = new Map<string, string>();
    for (const key of this.#kv.keys()) {
      const v = this.kvAt(key, index).value;
      if (v !== null) out.set(key, v);
    }
    return out;
  }

  /** The queue digest after entry `index` (as of the last queue entry at or below it). */
  queueDigestAt(index: number): string {
    return this.#queueDigests[lastAtOrBelow(this.#queueAt, index)]!;
  }

  /** Live messages (ready, in flight or dead) at the head of the log: for the workload's load limit. */
  get queueSize(): number {
    return this.#queue.messages.size;
  }
}

/** Position of the last element ≤ `x` in the increasing array `a`, or -1. */
function lastAtOrBelow(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! <= x) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

/** A KV value for a message: the unique part before the padding. */
export function showValue(v: string | null): string {
  return v === null ? "(absent)" : JSON.stringify(v.replace(/-+$/, ""));
}

/** A KV version for a message. */
export function showVersion(v: KvVersion): string {
  return v.index === 0 ? "(absent, never written)" : `${showValue(v.value)} (index ${v.index})`;
}
