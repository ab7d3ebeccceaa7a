/**
 * A tiny synchronous in-process network for Raft tests (after etcd's raft_test.go `network`):
 * every node runs the Ready loop in the node layer's order (persist, send, apply, advance), and
 * messages are delivered until none are left. Links can be cut, nodes isolated, messages filtered.
 */
import { MemoryStorage } from "../../src/raft/memory-storage.ts";
import { RawNode, decodeConfChange } from "../../src/raft/raw-node.ts";
import { createRng } from "../../src/raft/rng.ts";
import { EntryType, type ConfState, type Entry, type Message, type NodeId, type RaftConfig, type ReadState } from "../../src/raft/types.ts";

export interface TestNode {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  /** Normal entries applied, in order (no-ops included). */
  applied: Entry[];
  readStates: ReadState[];
  conf: ConfState;
}

export type NodeOptions = Partial<Omit<RaftConfig, "id" | "storage" | "rng">>;

export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  readonly group = 0;
  /** Undirected cut links, as "a|b". */
  #cut = new Set<string>();
  /** Optional filter: return false to drop a message. */
  filter: ((m: Message) => boolean) | undefined;
  /** Every message delivered, for assertions. */
  delivered: Message[] = [];
  readonly opts: NodeOptions;
  #seed: number;

  constructor(ids: NodeId[], opts: NodeOptions = {}, seed = 1) {
    this.opts = opts;
    this.#seed = seed;
    for (const id of ids) this.add(id, new MemoryStorage({ voters: ids, learners: [] }));
  }

  /** Creates (or restarts) a node on `storage`. */
  add(id: NodeId, storage: MemoryStorage, applied = 0): TestNode {
    const cfg: RaftConfig = {
      id,
      group: this.group,
      electionTicks: 10,
      heartbeatTicks: 1,
      storage,
      rng: createRng(this.#seed++ * 7919),
      ...this.opts,
      ...(applied > 0 ? { applied } : {}),
    };
    const n: TestNode = { id, raw: new RawNode(cfg), storage, applied: [], readStates: [], conf: storage.initialState().confState };
    this.nodes.set(id, n);
    return n;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  cut(a: NodeId, b: NodeId): void {
    this.#cut.add(key(a, b));
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  isCut(a: NodeId, b: NodeId): boolean {
    return this.#cut.has(key(a, b));
  }

  heal(): void {
    this.#cut.clear();
  }

  /** Runs every node's Ready loop and delivers messages until the network is quiet. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      const inbox: Message[] = [];
      let busy = false;
      for (const n of this.nodes.values()) {
        while (n.raw.hasReady()) {
          busy = true;
          inbox.push(...this.processReady(n));
        }
      }
      for (const m of inbox) {
        if (this.#cut.has(key(m.from, m.to))) continue;
        if (this.filter && !this.filter(m)) continue;
        const to = this.nodes.get(m.to);
        if (!to) continue;
        this.delivered.push(m);
        to.raw.step(m);
      }
      if (!busy && inbox.length === 0) return;
    }
    throw new Error("network did not stabilize");
  }

  /** Ticks every node (or the given ones) `n` times, stabilizing after each tick. */
  tick(n = 1, ids?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids ?? this.nodes.keys()) this.node(id).raw.tick();
      this.stabilize();
    }
  }

  /** Campaigns `id` and stabilizes; returns it for chaining. */
  elect(id: NodeId): TestNode {
    this.node(id).raw.campaign();
    this.stabilize();
    return this.node(id);
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.raw.status().role === "leader").map((n) => n.id);
  }

  /** Runs one Ready cycle of `n` (persist, apply, advance) and returns the messages to send. */
  processReady(n: TestNode): Message[] {
    const rd = n.raw.ready();
    // Persist before send: a vote or an AppResp must reflect durable state.
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      n.conf = rd.snapshot.meta.conf;
    }
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) {
        n.conf = n.raw.applyConfChange(decodeConfChange(e.data));
        n.storage.setConfState(n.conf);
      } else {
        n.applied.push(e);
      }
    }
    n.readStates.push(...rd.readStates);
    n.raw.advance(rd);
    return [...rd.messages];
  }
}

function key(a: NodeId, b: NodeId): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Data of the non-empty (non-no-op) entries a node applied, decoded as strings. */
export function appliedData(n: TestNode): string[] {
  return n.applied.filter((e) => e.data.length > 0).map((e) => dec(e.data));
}
