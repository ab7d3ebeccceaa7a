/**
 * Group 0's record of where the queue partitions live (the shard map) and of the replica moves
 * under way (jobs). Pure and deterministic: every replica of group 0 applies the same commands in
 * the same order and holds the same map, so any node can answer "where is partition p" and any
 * partition leader can resume a job after a restart.
 *
 * A move of partition p from node A to node B is one job, run by p's leader (see the queue
 * service's move driver): B joins p's Raft group as a learner, catches up, is promoted, and only
 * then is A removed, so p never has fewer replicas than before the move. The map's replica set
 * changes when the job is done, after the group's own membership already did.
 */
import type { JobReason, JobStep, MoveJob, NodeState, ShardNode } from "../../../../protocol/shard-messages.ts";
import { assignLeaders, place, type PartitionPlacement, type Placement } from "./placement.ts";

export type { JobReason, JobStep, MoveJob, NodeState, ShardNode };

/** A move the planner wants: one replica of `partition` from `from` (or none) to `to`. */
export interface Move {
  readonly partition: number;
  readonly from: string | null;
  readonly to: string;
}

export interface ShardMapImage {
  readonly version: number;
  readonly rf: number;
  readonly partitions: Placement;
  /** Each partition's founding replicas: the voters a founder bootstraps its group with. */
  readonly founders: readonly (readonly string[])[];
  readonly nodes: readonly ShardNode[];
  readonly jobs: readonly MoveJob[];
  readonly nextJobId: number;
}

/** How many finished jobs the map keeps for `dsync admin jobs`. */
export const FINISHED_JOBS_KEPT = 100;

const FINISHED: ReadonlySet<JobStep> = new Set(["done", "cancelled"]);

export function isFinished(j: MoveJob): boolean {
  return FINISHED.has(j.step);
}

export class ShardMap {
  #s: ShardMapImage;

  private constructor(s: ShardMapImage) {
    this.#s = s;
  }

  /** A new cluster's map: `partitions` partitions with `rf` replicas over `members`. */
  static create(members: readonly string[], partitions: number, rf: number): ShardMap {
    const nodes = [...new Set(members)].sort().map((id): ShardNode => ({ id, state: "active" }));
    const r = Math.min(rf, nodes.length);
    const placement = place(nodes, partitions, r);
    return new ShardMap({ version: 1, rf: r, partitions: placement, founders: placement.map((p) => p.replicas), nodes, jobs: [], nextJobId: 1 });
  }

  /** From a snapshot image (checked by {@link isShardMapImage}). */
  static fromImage(s: ShardMapImage): ShardMap {
    return new ShardMap(s);
  }

  image(): ShardMapImage {
    return this.#s;
  }

  get version(): number {
    return this.#s.version;
  }

  get rf(): number {
    return this.#s.rf;
  }

  get partitionCount(): number {
    return this.#s.partitions.length;
  }

  partition(p: number): PartitionPlacement | undefined {
    return this.#s.partitions[p - 1];
  }

  nodes(): readonly ShardNode[] {
    return this.#s.nodes;
  }

  node(id: string): ShardNode | undefined {
    return this.#s.nodes.find((n) => n.id === id);
  }

  jobs(): readonly MoveJob[] {
    return this.#s.jobs;
  }

  /** Jobs not yet done or cancelled, oldest first. */
  activeJobs(): MoveJob[] {
    return this.#s.jobs.filter((j) => !isFinished(j));
  }

  /** The job that runs now for each partition that has one: its oldest unfinished job. */
  runningJobs(): MoveJob[] {
    const seen = new Set<number>();
    return this.activeJobs().filter((j) => !seen.has(j.partition) && (seen.add(j.partition), true));
  }

  /** The founding voters of partition p, when `node` is one of them (else none: it joins as a learner). */
  bootstrapVoters(p: number, node: string): readonly string[] {
    const f = this.#s.founders[p - 1] ?? [];
    return f.includes(node) ? f : [];
  }

  /** The partitions `node` must hold a replica of: the map's, and those a running job moves onto it. */
  partitionsOn(node: string): number[] {
    const out = new Set<number>();
    for (const p of this.#s.partitions) if (p.replicas.includes(node)) out.add(p.partition);
    for (const j of this.runningJobs()) if (j.to === node) out.add(j.partition);
    return [...out].sort((a, b) => a - b);
  }

  /** Replicas each node holds, with the partitions it is the preferred leader of. */
  load(): Map<string, { replicas: number; leaders: number }> {
    const m = new Map(this.#s.nodes.map((n) => [n.id, { replicas: 0, leaders: 0 }]));
    for (const p of this.#s.partitions) {
      for (const id of p.replicas) m.get(id)!.replicas++;
      m.get(p.leader)!.leaders++;
    }
    return m;
  }

  /**
   * The moves that would balance the replicas over the active nodes, on top of the jobs already
   * queued: minimal (see place()), and each job takes a partition one replica further.
   */
  plan(): Move[] {
    const active = this.#s.nodes.filter((n) => n.state === "active");
    if (active.length < this.#s.rf) return [];
    const effective = this.#afterJobs();
    const target = place(active, this.#s.partitions.length, this.#s.rf, effective);
    const moves: Move[] = [];
    for (const t of target) {
      const now = effective[t.partition - 1]!.replicas;
      // A leaving node's replicas are paired first: a decommission takes exactly those moves.
      const leaving = (id: string): number => (this.node(id)?.state === "leaving" ? 0 : 1);
      const gone = now.filter((id) => !t.replicas.includes(id)).sort((a, b) => leaving(a) - leaving(b));
      const come = t.replicas.filter((id) => !now.includes(id));
      come.forEach((to, i) => moves.push({ partition: t.partition, from: gone[i] ?? null, to }));
    }
    return moves;
  }

  /** Applies one shard-map command; returns its result (what the proposer's caller gets). */
  apply(cmd: ShardCommand, now: number): unknown {
    switch (cmd.op) {
      case "shards.node":
        return this.#addNode(cmd.id, cmd.zone);
      case "shards.leave":
        return this.#leave(cmd.id, now, cmd.reason ?? "decommission");
      case "shards.rebalance":
        return { jobs: this.#queueJobs(this.plan(), "rebalance", now) };
      case "shards.forget":
        return this.#forget(cmd.id);
      case "shards.move":
        return this.#move(cmd.partition, cmd.from, cmd.to, now);
      case "job.step":
        return this.#step(cmd, now);
      case "job.done":
        return this.#done(cmd.id, now);
      case "job.cancel":
        return this.#cancel(cmd.id, now, cmd.note ?? "cancelled");
    }
  }

  #addNode(id: string, zone: string | undefined): unknown {
    const existing = this.node(id);
    if (existing?.state === "active" && existing.zone === zone) return { added: false };
    const nodes = this.#s.nodes.filter((n) => n.id !== id);
    nodes.push({ id, state: "active", ...(zone !== undefined && { zone }) });
    nodes.sort((a, b) => (a.id < b.id ? -1 : 1));
    this.#set({ nodes });
    return { added: true };
  }

  /** Marks `id` leaving and queues the moves that take every replica off it. */
  #leave(id: string, now: number, reason: JobReason): unknown {
    const n = this.node(id);
    if (!n) return { error: `${id} is not a node of the shard map` };
    const others = this.#s.nodes.filter((o) => o.id !== id && o.state === "active").length;
    if (others < this.#s.rf && this.partitionsOn(id).length > 0) return { error: `${id} cannot leave: ${others} other active node(s) cannot hold ${this.#s.rf} replicas of each partition; add a node first` };
    this.#set({ nodes: this.#s.nodes.map((o) => (o.id === id ? { ...o, state: "leaving" as const } : o)) });
    // Only the moves off the leaving node: the rest of the cluster stays as it is.
    const moves = this.plan().filter((m) => m.from === id);
    return { jobs: this.#queueJobs(moves, reason, now) };
  }

  /**
   * An operator's move of one replica: `from` must hold it (once queued jobs are done), `to` must
   * be active and not hold it. Queued behind the partition's other jobs.
   */
  #move(partition: number, from: string, to: string, now: number): unknown {
    const replicas = this.#afterJobs()[partition - 1]?.replicas;
    if (replicas === undefined) return { error: `there is no partition ${partition} (partitions 1..${this.partitionCount})` };
    if (!replicas.includes(from)) return { error: `${from} holds no replica of partition ${partition} (replicas: ${replicas.join(", ")})` };
    if (this.node(to)?.state !== "active") return { error: `${to} is not an active node` };
    if (replicas.includes(to)) return { error: `${to} already holds a replica of partition ${partition}` };
    return { jobs: this.#queueJobs([{ partition, from, to }], "manual", now) };
  }

  /** Drops a node that left: it must hold no replica and be no job's target. */
  #forget(id: string): unknown {
    if (!this.node(id)) return { forgotten: false };
    if (this.partitionsOn(id).length > 0 || this.activeJobs().some((j) => j.from === id || j.to === id)) return { error: `${id} still holds replicas` };
    this.#set({ nodes: this.#s.nodes.filter((n) => n.id !== id) });
    return { forgotten: true };
  }

  #queueJobs(moves: readonly Move[], reason: JobReason, now: number): MoveJob[] {
    if (moves.length === 0) return [];
    let next = this.#s.nextJobId;
    const busy = new Set(this.activeJobs().map((j) => j.partition));
    const jobs = moves.map((m): MoveJob => {
      const step: JobStep = busy.has(m.partition) ? "queued" : "adding";
      busy.add(m.partition);
      return { id: next++, partition: m.partition, from: m.from, to: m.to, reason, step, createdAt: now, updatedAt: now, caughtUp: 0, target: 0 };
    });
    this.#set({ jobs: [...this.#s.jobs, ...jobs], nextJobId: next });
    return jobs;
  }

  #step(cmd: JobStepCommand, now: number): unknown {
    const j = this.#job(cmd.id);
    if (!j || isFinished(j)) return { ok: false };
    this.#replaceJob({ ...j, step: cmd.step, caughtUp: cmd.caughtUp ?? j.caughtUp, target: cmd.target ?? j.target, updatedAt: now, ...(cmd.note !== undefined && { note: cmd.note }) });
    return { ok: true };
  }

  /** The group's membership already changed: the map follows, and leaders are spread again. */
  #done(id: number, now: number): unknown {
    const j = this.#job(id);
    if (!j || isFinished(j)) return { ok: false };
    const replicas = this.#s.partitions.map((p) => {
      if (p.partition !== j.partition) return new Set(p.replicas);
      const r = new Set(p.replicas);
      if (j.from !== null) r.delete(j.from);
      r.add(j.to);
      return r;
    });
    const ids = [...new Set([...this.#s.nodes.map((n) => n.id), ...replicas.flatMap((r) => [...r])])].sort();
    const partitions = assignLeaders(ids, replicas, this.#s.partitions);
    this.#replaceJob({ ...j, step: "done", updatedAt: now, caughtUp: Math.max(j.caughtUp, j.target) });
    this.#set({ partitions });
    this.#startNext(j.partition, now);
    return { ok: true };
  }

  #cancel(id: number, now: number, note: string): unknown {
    const j = this.#job(id);
    if (!j || isFinished(j)) return { ok: false };
    this.#replaceJob({ ...j, step: "cancelled", updatedAt: now, note });
    this.#startNext(j.partition, now);
    return { ok: true };
  }

  #startNext(partition: number, now: number): void {
    const next = this.activeJobs().find((j) => j.partition === partition);
    if (next?.step === "queued") this.#replaceJob({ ...next, step: "adding", updatedAt: now });
  }

  #job(id: number): MoveJob | undefined {
    return this.#s.jobs.find((j) => j.id === id);
  }

  #replaceJob(j: MoveJob): void {
    let jobs = this.#s.jobs.map((o) => (o.id === j.id ? j : o));
    const finished = jobs.filter(isFinished);
    // Bounded history: the oldest finished jobs go first.
    if (finished.length > FINISHED_JOBS_KEPT) {
      const drop = new Set(finished.slice(0, finished.length - FINISHED_JOBS_KEPT).map((o) => o.id));
      jobs = jobs.filter((o) => !drop.has(o.id));
    }
    this.#set({ jobs });
  }

  /** The placement once every queued job is done. */
  #afterJobs(): Placement {
    const replicas = this.#s.partitions.map((p) => new Set(p.replicas));
    for (const j of this.activeJobs()) {
      const r = replicas[j.partition - 1]!;
      if (j.from !== null) r.delete(j.from);
      r.add(j.to);
    }
    return this.#s.partitions.map((p, i) => ({ ...p, replicas: [...replicas[i]!].sort() }));
  }

  #set(patch: Partial<ShardMapImage>): void {
    this.#s = { ...this.#s, ...patch, version: this.#s.version + 1 };
  }
}

export interface JobStepCommand {
  readonly op: "job.step";
  readonly id: number;
  readonly step: Exclude<JobStep, "done" | "cancelled">;
  readonly caughtUp?: number;
  readonly target?: number;
  readonly note?: string;
}

/** The group-0 commands that change the shard map. */
export type ShardCommand =
  | { readonly op: "shards.node"; readonly id: string; readonly zone?: string }
  | { readonly op: "shards.leave"; readonly id: string; readonly reason?: JobReason }
  | { readonly op: "shards.rebalance" }
  | { readonly op: "shards.forget"; readonly id: string }
  | { readonly op: "shards.move"; readonly partition: number; readonly from: string; readonly to: string }
  | JobStepCommand
  | { readonly op: "job.done"; readonly id: number }
  | { readonly op: "job.cancel"; readonly id: number; readonly note?: string };

const SHARD_OPS: ReadonlySet<unknown> = new Set(["shards.node", "shards.leave", "shards.rebalance", "shards.forget", "shards.move", "job.step", "job.done", "job.cancel"]);
const JOB_STEPS: ReadonlySet<unknown> = new Set(["queued", "adding", "catching-up", "promoting", "removing"]);
const REASONS: ReadonlySet<unknown> = new Set(["rebalance", "decommission", "replace"]);

/** Whether a decoded log entry is a well-formed shard-map command (entries are checked, never trusted). */
export function isShardCommand(c: { op?: unknown } & Record<string, unknown>): c is ShardCommand & Record<string, unknown> {
  if (!SHARD_OPS.has(c.op)) return false;
  const str = (v: unknown): boolean => typeof v === "string" && v.length > 0 && v.length <= 128;
  const id = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;
  const count = (v: unknown): boolean => v === undefined || (Number.isInteger(v) && (v as number) >= 0);
  switch (c.op) {
    case "shards.node":
      return str(c.id) && (c.zone === undefined || str(c.zone));
    case "shards.leave":
      return str(c.id) && (c.reason === undefined || REASONS.has(c.reason));
    case "shards.forget":
      return str(c.id);
    case "shards.move":
      return id(c.partition) && str(c.from) && str(c.to);
    case "job.step":
      return id(c.id) && JOB_STEPS.has(c.step) && count(c.caughtUp) && count(c.target) && (c.note === undefined || typeof c.note === "string");
    case "job.done":
      return id(c.id);
    case "job.cancel":
      return id(c.id) && (c.note === undefined || typeof c.note === "string");
    default:
      return true;
  }
}

/** Whether a snapshot's shard map is well-formed enough to use. */
export function isShardMapImage(v: unknown): v is ShardMapImage {
  if (v === null || typeof v !== "object") return false;
  const s = v as Record<string, unknown>;
  return (
    Number.isInteger(s.version) &&
    Number.isInteger(s.rf) &&
    Array.isArray(s.partitions) &&
    Array.isArray(s.founders) &&
    Array.isArray(s.nodes) &&
    Array.isArray(s.jobs) &&
    Number.isInteger(s.nextJobId) &&
    s.partitions.every((p: unknown) => {
      const q = p as Partial<PartitionPlacement> | null;
      return q !== null && typeof q === "object" && Number.isInteger(q.partition) && Array.isArray(q.replicas) && typeof q.leader === "string";
    })
  );
}
