/**
 * The real service state machines one simulated node runs on its committed log: group 0's
 * {@link ClusterMachine} (KV register + lock manager + member book) and a {@link QueueMachine}
 * (in production a queue partition has a Raft group of its own; here both share the one log).
 *
 * A client entry is one tag byte and a MessagePack command: `C` + a ClusterMachine command (KV
 * put/delete or a lock command, routed by ClusterMachine itself), `Q` + a queue command. The tag
 * keeps the routing to one byte look-up, so every entry is decoded only by the machines.
 */
import type { Entry } from "../../src/raft/types.ts";
import { ClusterMachine } from "../../src/services/cluster/machine/cluster-machine.ts";
import { encodeCommand } from "../../src/services/command-codec.ts";
import type { KvCommand } from "../../src/services/kv/machine/kv-machine.ts";
import { LockInvariantChecker } from "../../src/services/lock/machine/invariants.ts";
import type { LockCommand, LockEvent } from "../../src/services/lock/machine/types.ts";
import { QueueMachine } from "../../src/services/queue/machine/queue-machine.ts";
import type { QueueCommand, QueueConfig } from "../../src/services/queue/machine/types.ts";
import type { ServiceImage } from "./state-machine.ts";

/** First byte of a client entry: which machine it is for. */
export const Tag = { Cluster: 0x43, Queue: 0x51 } as const;
export type Tag = (typeof Tag)[keyof typeof Tag];

/** A command of the simulated workload, with the machine it goes to. */
export type SimCommand =
  | { readonly tag: typeof Tag.Cluster; readonly cmd: KvCommand | LockCommand }
  | { readonly tag: typeof Tag.Queue; readonly cmd: QueueCommand };

/** The entry payload of a command. */
export function encodeEntry(c: SimCommand): Uint8Array {
  const body = encodeCommand(c.cmd);
  const out = new Uint8Array(body.length + 1);
  out[0] = c.tag;
  out.set(body, 1);
  return out;
}

/**
 * Every replica's queue settings (QueueMachine options must be equal on every replica). Short
 * timeouts and few deliveries, so that redelivery, backoff and dead-lettering happen in a run.
 * No dedup window: the reference model (reference.ts) does not model dedup.
 */
export const QUEUE_DEFAULTS: Omit<QueueConfig, "dlq"> = {
  maxDeliveries: 3,
  visibilityMs: 600,
  backoff: { baseMs: 100, factor: 2, capMs: 800, jitter: 0.3 },
  dedupWindowMs: 0,
};

/** What applying one entry produced, for the client that proposed it. */
export interface ApplyOutcome {
  readonly tag: Tag | null;
  readonly result: unknown;
  /** Lock events the entry caused (grants to waiters, losses, expiries). */
  readonly events: readonly LockEvent[];
}

const NO_EVENTS: readonly LockEvent[] = [];

/** The service machines of one node incarnation. */
export class ServiceMachines {
  readonly cluster = new ClusterMachine();
  readonly queue = new QueueMachine({ defaults: QUEUE_DEFAULTS });
  /** Keeps fencing history across checks, so it belongs to this incarnation's lock machine. */
  readonly #lockCheck = new LockInvariantChecker();
  #events: LockEvent[] = [];

  constructor() {
    this.cluster.setLockEventListener((e) => this.#events.push(e));
  }

  /** Machines restored, with their real `restore()`, from a snapshot's service image. */
  static restore(img: ServiceImage): ServiceMachines {
    const m = new ServiceMachines();
    m.cluster.restore(img.cluster);
    m.queue.restore(img.queue);
    return m;
  }

  /**
   * Apply a committed Normal entry. An empty one (a leader's no-op) goes to the queue machine
   * (its index advances) and to ClusterMachine (which ignores it). Throws on an entry that is not
   * a simulator command, and whatever a machine's own assertions throw.
   */
  apply(e: Entry): ApplyOutcome {
    const data = e.data;
    if (data.length === 0) {
      this.cluster.apply(e);
      this.queue.apply(e);
      return { tag: null, result: null, events: NO_EVENTS };
    }
    const tag = data[0];
    const entry = { index: e.index, term: e.term, data: data.subarray(1) };
    if (tag === Tag.Cluster) {
      this.#events = [];
      const result = this.cluster.apply(entry);
      const events = this.#events.length > 0 ? this.#events : NO_EVENTS;
      this.#events = [];
      return { tag, result, events };
    }
    if (tag === Tag.Queue) return { tag, result: this.queue.apply(entry), events: NO_EVENTS };
    throw new Error(`entry ${e.index} has unknown tag ${tag}`);
  }

  /** The lock invariants (src/services/lock/invariants.ts); throws on the first broken one. */
  checkLocks(): void {
    this.#lockCheck.check(this.cluster.locks);
  }

  /** The queue invariants (src/services/queue/invariants.ts); throws on the first broken one. */
  checkQueue(): void {
    this.queue.checkInvariants();
  }

  /** Both machines' real snapshots. */
  snapshot(): ServiceImage {
    return { cluster: this.cluster.snapshot(), queue: this.queue.snapshot() };
  }

  /**
   * The queue's observable placement — its clock, then every message's queue, state, delivery
   * count and visibility time in id order — in the same format as the reference model's digest.
   */
  queueDigest(): string {
    let s = `${this.queue.clock}|`;
    for (const [id, p] of this.queue.placements()) s += `${id}:${p.queue}:${p.state}:${p.deliveryCount}:${p.visibleAt},`;
    return s;
  }
}
