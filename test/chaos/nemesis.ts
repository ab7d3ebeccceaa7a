/**
 * The fault injector: one fault at a time, chosen by a seeded PRNG, never more than a minority
 * of nodes down, each fault healed before the next; every action goes on a timeline.
 */
import type { Prng } from "../sim/prng.ts";
import type { ChaosCluster, ChaosNode } from "./cluster.ts";
import type { LinkMode } from "./link-proxy.ts";
import { sleep } from "./workloads/workload.ts";

/** How far past its end a "cycle" fault phase may run to inject each kind once. */
const CYCLE_OVERRUN_MS = 60_000;

/**
 * Every fault kind. `move` is a replica move (a job: learner, catch-up, promote, remove) started
 * and left running while the next faults strike; it needs more nodes than the replication factor.
 */
export const ALL_FAULT_KINDS = ["kill", "pause", "partition", "delay", "disk", "clock", "restart", "move"] as const;
export type FaultKind = (typeof ALL_FAULT_KINDS)[number];
/** The kinds a 3-node cluster (every node holding every partition) can take: all but `move`. */
export const FAULT_KINDS: readonly FaultKind[] = ALL_FAULT_KINDS.filter((k) => k !== "move");

/** Random order: at most one rolling restart per this long. */
const RESTART_EVERY_MS = 60_000;

export interface FaultEvent {
  readonly kind: FaultKind;
  /** e.g. "isolate-leader stall", "SIGKILL leader", "fsync EIO". */
  readonly detail: string;
  readonly nodes: readonly string[];
  readonly startMs: number;
  endMs: number;
  /** Set when the system misbehaved under this fault in a way no history shows (e.g. a node that kept running after a failed fsync). */
  problem?: string;
}

export interface NemesisOptions {
  readonly kinds: readonly FaultKind[];
  /** Quiet time between faults, ms [lo, hi). */
  readonly quietMs?: readonly [number, number];
  /** How long a fault lasts, ms [lo, hi): pauses and partitions outlast session TTLs and elections. */
  readonly faultMs?: readonly [number, number];
  /** Applies "power loss" to a killed node's data dir (drops bytes written after its last fsync). */
  readonly powerLoss?: (node: ChaosNode) => Promise<string>;
  /** Env that makes the next start of a node fail its fsyncs after `afterMs`. */
  readonly fsyncFailureEnv?: (afterMs: number) => Record<string, string>;
  readonly log?: (line: string) => void;
  /** Nodes the workloads find interesting, e.g. a queue partition's leader or a cache key's home. */
  readonly targets?: () => Promise<{ role: string; node: string }[]>;
  /** Starts one replica move and says which (null: no replica can move); see `move` in ALL_FAULT_KINDS. */
  readonly move?: (rng: Prng) => Promise<string | null>;
  /**
   * "random" (default): each fault's kind drawn at random. "cycle": every kind in turn (in an
   * order drawn from the seed), so a short run still injects each kind.
   */
  readonly order?: "random" | "cycle";
}

export class Nemesis {
  readonly timeline: FaultEvent[] = [];
  /** performance.now() at the start: event times are relative to it. */
  readonly #t0: number;

  get t0(): number {
    return this.#t0;
  }

  constructor(
    readonly cluster: ChaosCluster,
    readonly rng: Prng,
    readonly o: NemesisOptions,
  ) {
    this.#t0 = performance.now();
  }

  #lastRestartAt = -Infinity;

  /** Injects faults until `untilMs` (harness clock) or `isStopped()`. */
  async run(untilMs: number, isStopped: () => boolean): Promise<void> {
    const [qlo, qhi] = this.o.quietMs ?? [1000, 3000];
    if (this.o.kinds.length === 0) {
      // No faults: the load still runs for the whole phase.
      while (!isStopped() && performance.now() < untilMs) await sleep(Math.min(500, untilMs - performance.now()));
      return;
    }
    const cycle = [...this.o.kinds].sort(() => this.rng.float() - 0.5);
    let turn = 0;
    // "cycle" promises every kind once: on a slow machine the phase runs on until each kind
    // came up, for at most CYCLE_OVERRUN_MS more.
    const hardEnd = this.o.order === "cycle" ? untilMs + CYCLE_OVERRUN_MS : untilMs;
    const more = (): boolean => performance.now() < untilMs || (performance.now() < hardEnd && turn < cycle.length);
    while (!isStopped() && more()) {
      await sleep(this.rng.between(qlo, qhi));
      if (isStopped() || !more()) break;
      let kind = this.o.order === "cycle" ? cycle[turn++ % cycle.length]! : this.o.kinds[this.rng.nextInt(this.o.kinds.length)]!;
      // A rolling restart lasts ~15 s: at most one a minute in random order, or it would crowd
      // out the short faults.
      const others = this.o.kinds.filter((k) => k !== "restart");
      if (kind === "restart" && this.o.order !== "cycle" && performance.now() - this.#lastRestartAt < RESTART_EVERY_MS && others.length > 0) kind = others[this.rng.nextInt(others.length)]!;
      if (kind === "restart") this.#lastRestartAt = performance.now();
      await this.#inject(kind, Math.max(untilMs, performance.now() + 1000));
    }
  }

  /** Brings everything back: links healed, nodes resumed and restarted, clocks reset. */
  async healAll(): Promise<void> {
    this.cluster.heal();
    for (const n of this.cluster.nodes) {
      n.resume();
      await n.setClockOffset(0);
      if (!n.alive) await n.start();
    }
  }

  counts(): Record<string, number> {
    const c: Record<string, number> = {};
    for (const e of this.timeline) c[e.kind] = (c[e.kind] ?? 0) + 1;
    return c;
  }

  #duration(untilMs: number): number {
    const [lo, hi] = this.o.faultMs ?? [1000, 6000];
    // A fault never outlives the fault phase by much: the heal must come before the checks.
    return Math.max(200, Math.min(this.rng.between(lo, hi), untilMs - performance.now() + 500));
  }

  #event(kind: FaultKind, detail: string, nodes: readonly string[]): FaultEvent {
    const e: FaultEvent = { kind, detail, nodes, startMs: performance.now() - this.#t0, endMs: NaN };
    this.timeline.push(e);
    this.o.log?.(`+${(e.startMs / 1000).toFixed(1)}s ${kind}: ${detail} [${nodes.join(", ")}]`);
    return e;
  }

  #end(e: FaultEvent): void {
    e.endMs = performance.now() - this.#t0;
  }

  /** Half the time group 0's leader, a quarter a node a workload named, else any live node. */
  async #pickTarget(): Promise<{ node: ChaosNode; role: string }> {
    const alive = this.cluster.nodes.filter((n) => n.alive && !n.paused);
    const live = (id: string | null | undefined): ChaosNode | undefined => (id ? alive.find((x) => x.spec.id === id) : undefined);
    const roll = this.rng.float();
    if (roll < 0.5) {
      const n = live(await this.cluster.leader());
      if (n) return { node: n, role: "leader" };
    } else if (roll < 0.75 && this.o.targets) {
      const named = await this.o.targets().catch(() => []);
      const pick = named[this.rng.nextInt(Math.max(1, named.length))];
      const n = live(pick?.node);
      if (n && pick) return { node: n, role: pick.role };
    }
    return { node: alive[this.rng.nextInt(alive.length)] ?? this.cluster.nodes[0]!, role: "node" };
  }

  async #inject(kind: FaultKind, untilMs: number): Promise<void> {
    const ids = this.cluster.nodes.map((n) => n.spec.id);
    const ms = this.#duration(untilMs);
    switch (kind) {
      case "kill": {
        const { node, role } = await this.#pickTarget();
        const e = this.#event(kind, `SIGKILL ${role}, restart after ${ms.toFixed(0)} ms`, [node.spec.id]);
        await node.kill("SIGKILL");
        await sleep(ms);
        await node.start();
        this.#end(e);
        return;
      }
      case "pause": {
        const { node, role } = await this.#pickTarget();
        const e = this.#event(kind, `SIGSTOP ${role} for ${ms.toFixed(0)} ms`, [node.spec.id]);
        node.pause();
        await sleep(ms);
        node.resume();
        this.#end(e);
        return;
      }
      case "partition": {
        const mode: LinkMode = this.rng.chance(0.5) ? "stall" : "reset";
        const shape = this.rng.nextInt(4);
        let a: string[];
        let b: string[];
        let detail: string;
        if (shape === 0) {
          const leader = (await this.cluster.leader()) ?? ids[0]!;
          a = [leader];
          b = ids.filter((x) => x !== leader);
          detail = "isolate leader";
        } else if (shape === 1) {
          const leader = await this.cluster.leader();
          const followers = ids.filter((x) => x !== leader);
          const f = followers[this.rng.nextInt(followers.length)]!;
          a = [f];
          b = ids.filter((x) => x !== f);
          detail = "isolate follower";
        } else if (shape === 2) {
          // One link only: both ends still reach everyone else (non-transitive).
          const i = this.rng.nextInt(ids.length);
          const j = (i + 1 + this.rng.nextInt(ids.length - 1)) % ids.length;
          a = [ids[i]!];
          b = [ids[j]!];
          detail = "cut one link";
        } else {
          const shuffled = [...ids].sort(() => this.rng.float() - 0.5);
          const minority = Math.floor((ids.length - 1) / 2);
          a = shuffled.slice(0, minority);
          b = shuffled.slice(minority);
          detail = `split ${a.length}|${b.length}`;
        }
        const e = this.#event(kind, `${detail} (${mode}) for ${ms.toFixed(0)} ms: ${a.join(",")} | ${b.join(",")}`, [...a]);
        this.cluster.cut(a, b, mode);
        await sleep(ms);
        this.cluster.cut(a, b, "pass");
        this.#end(e);
        return;
      }
      case "delay": {
        const delayMs = this.rng.between(50, 200);
        const { node } = await this.#pickTarget();
        const e = this.#event(kind, `${delayMs.toFixed(0)} ms on every link of ${node.spec.id} for ${ms.toFixed(0)} ms`, [node.spec.id]);
        this.cluster.cut([node.spec.id], ids.filter((x) => x !== node.spec.id), "delay", delayMs);
        await sleep(ms);
        this.cluster.cut([node.spec.id], ids.filter((x) => x !== node.spec.id), "pass");
        this.#end(e);
        return;
      }
      case "clock": {
        const { node, role } = await this.#pickTarget();
        const jump = (this.rng.chance(0.5) ? 1 : -1) * this.rng.between(500, 3000);
        const e = this.#event(kind, `${role}'s wall clock ${jump > 0 ? "+" : ""}${jump.toFixed(0)} ms for ${ms.toFixed(0)} ms`, [node.spec.id]);
        await node.setClockOffset(jump);
        await sleep(ms);
        await node.setClockOffset(0);
        this.#end(e);
        return;
      }
      case "disk": {
        const { node, role } = await this.#pickTarget();
        if (this.o.powerLoss && this.rng.chance(0.5)) {
          const e = this.#event(kind, `power loss of ${role} (SIGKILL, unsynced bytes dropped)`, [node.spec.id]);
          await node.kill("SIGKILL");
          const what = await this.o.powerLoss(node);
          this.o.log?.(`  power loss on ${node.spec.id}: ${what}`);
          await sleep(Math.min(ms, 1500));
          await node.start();
          this.#end(e);
          return;
        }
        if (!this.o.fsyncFailureEnv) return;
        const afterMs = this.rng.between(300, 1500);
        const e = this.#event(kind, `fsync EIO on ${role} ${afterMs.toFixed(0)} ms after its restart`, [node.spec.id]);
        await node.kill("SIGKILL");
        node.nextStartEnv = this.o.fsyncFailureEnv(afterMs);
        await node.start();
        // The node must stop by itself on the failed fsync; give it a bounded time.
        const deadline = performance.now() + afterMs + 8000;
        while (node.alive && performance.now() < deadline) await sleep(50);
        const stopped = !node.alive;
        if (!stopped) {
          e.problem = `${node.spec.id} kept running ${(afterMs + 8000).toFixed(0)} ms after its fsyncs started failing`;
          await node.kill("SIGKILL");
        }
        const exit = node.exits[node.exits.length - 1];
        this.o.log?.(`  ${node.spec.id} ${stopped ? `stopped by itself (exit ${exit?.code ?? exit?.signal})` : "did NOT stop after its fsync failed; killed"}`);
        await node.start();
        this.#end(e);
        return;
      }
      case "move": {
        // Started, not awaited: the move runs on while the next faults strike.
        const what = this.o.move ? await this.o.move(this.rng).catch((err: Error) => `could not start a move: ${err.message}`) : null;
        const e = this.#event(kind, what ?? "no replica can move (every node holds every partition)", []);
        await sleep(ms);
        this.#end(e);
        return;
      }
      case "restart": {
        // A rolling restart, as an operator does it: one node at a time, a graceful stop
        // (SIGTERM: leadership handed over, replies flushed), a start, and the next node only
        // once this one serves again.
        const order = [...this.cluster.nodes].sort(() => this.rng.float() - 0.5);
        for (const node of order) {
          const e = this.#event(kind, `rolling restart: SIGTERM, start, wait until it serves`, [node.spec.id]);
          await node.kill("SIGTERM");
          await node.start();
          const deadline = performance.now() + 20_000;
          while (performance.now() < deadline && (await fetch(`http://127.0.0.1:${node.spec.httpPort}/health`).then((r) => r.status, () => 0)) !== 200) await sleep(100);
          if (performance.now() >= deadline) e.problem = `${node.spec.id} did not serve within 20 s of its restart`;
          this.#end(e);
          await sleep(500);
        }
        return;
      }
    }
  }
}
