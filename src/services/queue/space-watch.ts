import { everyOnGrid } from "../../host/grid.ts";
import { Gauge, type Registry } from "prom-client";
import { DsyncError, ErrorCode } from "../../../protocol/index.ts";
import type { Logger } from "../../host/logger.ts";
import type { Proposer } from "../../host/proposer.ts";
import type { SpaceAlarm } from "../cluster/machine/cluster-machine.ts";
import type { QueuePartitions } from "./partitions.ts";

/** How often a node compares its replicated state with its budget. */
const CHECK_EVERY_MS = 1000;
/** An alarm clears once the node is back under this share of its budget (no flapping at the edge). */
const CLEAR_BELOW = 0.9;

export interface SpaceWatchOptions {
  readonly nodeId: string;
  /** Bytes of replicated queue payload this node may hold. */
  readonly budgetBytes: number;
  readonly partitions: QueuePartitions;
  readonly proposer: Proposer;
  /** The alarms group 0 holds now. */
  readonly alarms: () => readonly SpaceAlarm[];
  readonly registry: Registry;
  readonly log: Logger;
}

/**
 * The space quota, as etcd's space alarm works: each node sums the queue payload its replicas
 * hold; past its budget it raises an alarm in group 0, and while any node's alarm is up every
 * node refuses writes that add state (NO_SPACE). Reads, acks, nacks and purges go on, so an
 * operator (or the consumers) can free space; the alarm clears below 90% of the budget.
 */
export class SpaceWatch {
  #stop: (() => void) | null = null;
  #busy = false;
  readonly #bytes: Gauge;
  readonly #alarm: Gauge;

  constructor(readonly o: SpaceWatchOptions) {
    const registers = [o.registry];
    this.#bytes = new Gauge({ name: "dsync_space_bytes", help: "Queue payload bytes this node's replicas hold.", registers });
    new Gauge({ name: "dsync_space_budget_bytes", help: "This node's budget of replicated queue payload (SPACE_BUDGET_BYTES).", registers }).set(o.budgetBytes);
    this.#alarm = new Gauge({ name: "dsync_space_alarm", help: "Nodes whose space alarm is up (replicated): while above 0, writes that add state get NO_SPACE.", registers });
  }

  start(): void {
    this.#stop = everyOnGrid(CHECK_EVERY_MS, () => void this.#check());
  }

  stop(): void {
    this.#stop?.();
  }

  refreshGauges(): void {
    this.#bytes.set(this.#used());
    this.#alarm.set(this.o.alarms().length);
  }

  /** @throws DsyncError NO_SPACE while any node's alarm is up. */
  checkWrite(what: string): void {
    const a = this.o.alarms()[0];
    if (a === undefined) return;
    throw new DsyncError(ErrorCode.NO_SPACE, `${what} refused: node ${a.node} holds ${a.bytes} bytes of queue payload, over its budget of ${a.budget} (SPACE_BUDGET_BYTES); consume and ack, or purge, to free space`);
  }

  #used(): number {
    return this.o.partitions.all().reduce((n, p) => n + p.machine.payloadBytes, 0);
  }

  async #check(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const bytes = this.#used();
      const mine = this.o.alarms().some((a) => a.node === this.o.nodeId);
      if (!mine && bytes > this.o.budgetBytes) {
        this.o.log.warn({ bytes, budget: this.o.budgetBytes }, "space alarm: this node holds more queue payload than its budget; writes are refused until space is freed");
        await this.o.proposer.proposeStamped(0, { op: "alarm.space", node: this.o.nodeId, bytes, budget: this.o.budgetBytes });
      } else if (mine && bytes <= this.o.budgetBytes * CLEAR_BELOW) {
        this.o.log.warn({ bytes, budget: this.o.budgetBytes }, "space alarm cleared");
        await this.o.proposer.proposeStamped(0, { op: "alarm.clear", node: this.o.nodeId });
      }
    } catch (err) {
      this.o.log.debug({ err: (err as Error).message }, "space alarm update failed; tried again");
    } finally {
      this.#busy = false;
    }
  }
}
