import { decodeCommand, encodeCommand } from "../../command-codec.ts";
import { KvMachine } from "../../kv/machine/kv-machine.ts";
import { LockMachine } from "../../lock/machine/lock-machine.ts";
import type { LockEvent } from "../../lock/machine/types.ts";
import { isQueueLayout, type QueueLayout } from "../../queue/machine/layout.ts";
import { ShardMap, isShardCommand, isShardMapImage } from "./shard-map.ts";
import type { AppliedEntry, StateMachine } from "../../../host/state-machine.ts";

/** A group-0 command that records a member's peer address before it joins. */
/** A node id: what the member book, peer handshakes, metrics labels and log lines carry. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** How {@link NODE_ID_PATTERN} reads in an error message. */
export const NODE_ID_RULE = "1-64 characters of letters, digits, '_', '.' or '-'";

/** A node over its space budget, as it reported itself. */
export interface SpaceAlarm {
  readonly node: string;
  readonly bytes: number;
  readonly budget: number;
}

export interface MemberCommand {
  readonly op: "member";
  readonly id: string;
  readonly peerAddr: string;
}

/** Encodes a member command as a log entry payload. */
export function encodeMemberCommand(cmd: MemberCommand): Uint8Array {
  return encodeCommand(cmd);
}

const LOCK_OPS: ReadonlySet<unknown> = new Set(["session.open", "session.keepalive", "session.close", "expire", "acquire", "release"]);

/**
 * The state machine of group 0, the cluster's control group: the member address book that
 * every node needs to reach a new member, the lock manager, and the key-value register.
 */
export class ClusterMachine implements StateMachine {
  readonly kv = new KvMachine();
  readonly locks: LockMachine;
  #members = new Map<string, string>();
  #queueLayout: QueueLayout | null = null;
  #onLockEvent: (e: LockEvent) => void = () => {};
  #onQueueLayout: (l: QueueLayout) => void = () => {};
  #shards: ShardMap | null = null;
  /** Space alarms by node: a node over its budget of replicated state (see SpaceWatch). */
  #alarms = new Map<string, SpaceAlarm>();
  #onShards: (m: ShardMap) => void = () => {};

  constructor(readonly onMember: (id: string, peerAddr: string) => void = () => {}) {
    this.locks = new LockMachine({ onEvent: (e) => this.#onLockEvent(e) });
  }

  /** Routes lock events (grants, refusals, losses) to the node's push channel. */
  setLockEventListener(fn: (e: LockEvent) => void): void {
    this.#onLockEvent = fn;
  }

  /** Called once the queue layout is known (applied or restored), and at once if it already is. */
  setQueueLayoutListener(fn: (l: QueueLayout) => void): void {
    this.#onQueueLayout = fn;
    if (this.#queueLayout) fn(this.#queueLayout);
  }

  /** Called on every change of the shard map (and at once if there is one). */
  setShardMapListener(fn: (m: ShardMap) => void): void {
    this.#onShards = fn;
    if (this.#shards) fn(this.#shards);
  }

  /** Where each queue partition's replicas live, and the moves under way; null before the layout. */
  get shards(): ShardMap | null {
    return this.#shards;
  }

  /** The queue partitions and their ring, once group 0's first leader has recorded them. */
  get queueLayout(): QueueLayout | null {
    return this.#queueLayout;
  }

  /** Nodes over their space budget: while any is, writes that add state are refused everywhere. */
  spaceAlarms(): readonly SpaceAlarm[] {
    return [...this.#alarms.values()];
  }

  /** Peer addresses learnt through the log, by node id. */
  members(): ReadonlyMap<string, string> {
    return this.#members;
  }

  /**
   * Moves a restored image onto another cluster's nodes: the member book and the queue layout's
   * members become `members` (id → peer address); locks, sessions and KV stay as they were.
   */
  rebase(members: ReadonlyMap<string, string>): void {
    this.#members = new Map(members);
    // The old nodes' alarms say nothing of the new ones.
    this.#alarms.clear();
    if (this.#queueLayout) {
      // A restored node holds every group's image: every node is a replica of every partition.
      const ids = [...members.keys()].sort();
      this.#queueLayout = { ...this.#queueLayout, members: ids, replicationFactor: ids.length };
      this.#shards = ShardMap.create(ids, this.#queueLayout.partitions, ids.length);
    }
  }

  apply(entry: AppliedEntry): unknown {
    if (entry.data.length === 0) return null;
    const cmd = decodeCommand(entry.data) as { op?: unknown };
    if (LOCK_OPS.has(cmd.op)) return this.locks.apply(entry);
    if (cmd.op === "member") {
      const m = cmd as MemberCommand;
      this.#members.set(m.id, m.peerAddr);
      this.onMember(m.id, m.peerAddr);
      return { index: entry.index };
    }
    if (cmd.op === "queue.layout") {
      // The first layout wins: partitions are fixed for the life of the cluster.
      const l = (cmd as { layout?: unknown }).layout;
      if (this.#queueLayout === null && isQueueLayout(l)) {
        // A layout from before replication factors: every member holds every partition.
        const rf = l.replicationFactor ?? l.members.length;
        this.#queueLayout = { partitions: l.partitions, virtualNodes: l.virtualNodes, members: [...l.members], replicationFactor: rf, ...(l.cacheOnShards === true && { cacheOnShards: true }) };
        this.#shards = ShardMap.create(l.members, l.partitions, rf);
        this.#onQueueLayout(this.#queueLayout);
        this.#onShards(this.#shards);
      }
      return { layout: this.#queueLayout };
    }
    if (cmd.op === "alarm.space" || cmd.op === "alarm.clear") {
      const a = cmd as Partial<SpaceAlarm> & { op: string };
      if (typeof a.node !== "string") return { error: "alarm: node must be a string" };
      if (cmd.op === "alarm.clear") this.#alarms.delete(a.node);
      else if (Number.isInteger(a.bytes) && Number.isInteger(a.budget)) this.#alarms.set(a.node, { node: a.node, bytes: a.bytes!, budget: a.budget! });
      return { alarms: this.#alarms.size };
    }
    if (isShardCommand(cmd as Record<string, unknown>)) {
      const shards = this.#shards;
      if (shards === null) return { error: "the queue layout is not recorded yet" };
      const before = shards.version;
      const r = shards.apply(cmd as Parameters<ShardMap["apply"]>[0], typeof (cmd as { now?: unknown }).now === "number" ? (cmd as { now: number }).now : 0);
      // A node that left the cluster can no longer clear its own space alarm.
      if (cmd.op === "shards.forget" && (r as { forgotten?: boolean }).forgotten === true) this.#alarms.delete((cmd as { id: string }).id);
      if (shards.version !== before) this.#onShards(shards);
      return r;
    }
    return this.kv.apply(entry);
  }

  snapshot(): Uint8Array {
    return encodeCommand({ members: [...this.#members.entries()], kv: this.kv.snapshot(), locks: this.locks.snapshot(), queueLayout: this.#queueLayout, shards: this.#shards?.image() ?? null, alarms: [...this.#alarms.values()] });
  }

  restore(data: Uint8Array): void {
    const s = decodeCommand(data) as { members: [string, string][]; kv: Uint8Array; locks?: Uint8Array; queueLayout?: unknown; shards?: unknown; alarms?: SpaceAlarm[] };
    this.#alarms = new Map((s.alarms ?? []).map((a) => [a.node, a]));
    this.#members = new Map(s.members);
    for (const [id, addr] of this.#members) this.onMember(id, addr);
    this.kv.restore(s.kv);
    // A snapshot from before the lock service existed has no lock state: start empty.
    if (s.locks) this.locks.restore(s.locks);
    const hadLayout = this.#queueLayout !== null;
    this.#queueLayout = isQueueLayout(s.queueLayout) ? s.queueLayout : null;
    const l = this.#queueLayout;
    // A snapshot from before the shard map: every member holds every partition.
    this.#shards = isShardMapImage(s.shards) ? ShardMap.fromImage(s.shards) : l ? ShardMap.create(l.members, l.partitions, l.replicationFactor ?? l.members.length) : null;
    if (l && !hadLayout) this.#onQueueLayout(l);
    if (this.#shards) this.#onShards(this.#shards);
  }
}
