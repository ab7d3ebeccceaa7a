/**
 * A register workload: clients read, write unique values, delete (and, for the cache,
 * invalidate) a few hot keys through every node; the history is checked for linearizability per
 * key. The KV and cache workloads differ only in their driver.
 */
import type { DsyncClient } from "../../../src/client/index.ts";
import { checkLinearizable, formatLinearizable } from "../checkers/linearizable.ts";
import { History, type RegisterOp } from "../history.ts";
import { loop, nodeClient, sleep, type CheckReport, type Workload, type WorkloadContext } from "./workload.ts";

/** One client's way to reach the register. */
export interface RegisterDriver {
  read(key: string): Promise<string | null>;
  write(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** Cache only: drop cached copies without changing the value. */
  invalidate?(key: string): Promise<void>;
  close(): Promise<void>;
}

export interface RegisterOptions {
  readonly name: string;
  readonly clients: number;
  readonly keys: number;
  /** Builds the driver of client `i` on its own connection. */
  readonly driver: (client: DsyncClient, i: number) => RegisterDriver;
  /** Where the fault injector should aim for this service, if anywhere in particular. */
  readonly targets?: (client: DsyncClient, keys: readonly string[]) => Promise<{ role: string; node: string }[]>;
  /** Share of writes, deletes and invalidates; the rest are reads. */
  readonly mix: { write: number; delete: number; invalidate: number };
  /**
   * Another way to read every key at once (a backup's image), every `everyMs`: each key's value
   * goes into the history as a read spanning the whole call, so the checker judges it too.
   */
  readonly sideRead?: { readonly name: string; readonly everyMs: number; read(ctx: WorkloadContext, n: number, keys: readonly string[]): Promise<ReadonlyMap<string, string | null>> };
}

/**
 * A stretch of time around a crash that may have lost acknowledged writes (cache write-back):
 * writes completed in [fromMs, atMs] may never have taken effect, and reads completed in
 * [fromMs, readsToMs] may have seen such a write. Times are performance.now().
 */
export interface LossWindow {
  readonly fromMs: number;
  readonly atMs: number;
  readonly readsToMs: number;
}

export class RegisterWorkload implements Workload {
  readonly name: string;
  readonly #o: RegisterOptions;
  readonly #history = new History<RegisterOp>();
  #losses: readonly LossWindow[] = [];
  readonly #drivers: { driver: RegisterDriver; conn: DsyncClient }[] = [];
  readonly #loops: Promise<void>[] = [];
  #stopped = false;
  #checked: CheckReport | null = null;

  constructor(o: RegisterOptions) {
    this.#o = o;
    this.name = o.name;
  }

  async start(ctx: WorkloadContext): Promise<void> {
    const keys = Array.from({ length: this.#o.keys }, (_, i) => `${this.name}-k${i}`);
    for (let i = 0; i < this.#o.clients; i++) {
      const conn = nodeClient(ctx, i, `${this.name}-${i}`);
      const driver = this.#o.driver(conn, i);
      this.#drivers.push({ driver, conn });
      const rng = ctx.rng.fork();
      let gen = 0;
      let seq = 0;
      this.#loops.push(
        loop(
          () => this.#stopped,
          async () => {
            // A client whose last operation has an unknown outcome is, for the checker, a new
            // process: the old one may still be "running" that operation forever.
            const client = `${this.name}-${i}.${gen}`;
            const key = keys[rng.nextInt(keys.length)]!;
            const p = rng.float();
            const m = this.#o.mix;
            let op: RegisterOp | undefined;
            try {
              if (p < m.write) {
                const value = `${client}#${seq++}`;
                op = this.#history.invoke(client, "write", key, value);
                await driver.write(key, value);
                this.#history.complete(op, null);
              } else if (p < m.write + m.delete) {
                op = this.#history.invoke(client, "delete", key, null);
                await driver.delete(key);
                this.#history.complete(op, null);
              } else if (driver.invalidate && p < m.write + m.delete + m.invalidate) {
                op = this.#history.invoke(client, "invalidate", key, null);
                await driver.invalidate(key);
                this.#history.complete(op, null);
              } else {
                op = this.#history.invoke(client, "read", key, null);
                const v = await driver.read(key);
                this.#history.complete(op, v);
              }
            } catch (err) {
              if (!op) throw err;
              this.#history.failed(op, err);
              if (op.outcome === "unknown") gen++;
              await sleep(20 + rng.nextInt(50));
            }
            await sleep(rng.nextInt(5));
          },
        ),
      );
    }
    if (this.#o.sideRead) this.#loops.push(this.#sideReads(ctx, keys));
  }

  #sideReads(ctx: WorkloadContext, keys: readonly string[]): Promise<void> {
    const side = this.#o.sideRead!;
    let n = 0;
    return loop(
      () => this.#stopped,
      async () => {
        await sleep(side.everyMs);
        if (this.#stopped) return;
        const client = `${side.name}-${n}`;
        const ops = keys.map((key) => this.#history.invoke(client, "read", key, null));
        try {
          const values = await side.read(ctx, n++, keys);
          for (const op of ops) this.#history.complete(op, values.get(op.key) ?? null);
        } catch (err) {
          for (const op of ops) this.#history.failed(op, err);
        }
      },
    );
  }

  async targets(): Promise<{ role: string; node: string }[]> {
    const first = this.#drivers[0];
    if (!this.#o.targets || !first) return [];
    return this.#o.targets(first.conn, Array.from({ length: this.#o.keys }, (_, i) => `${this.name}-k${i}`));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.race([Promise.all(this.#loops), sleep(15_000)]);
  }

  /** A final linearizable read of every key from every node, so late effects are seen. */
  async final(ctx: WorkloadContext): Promise<void> {
    const keys = Array.from({ length: this.#o.keys }, (_, i) => `${this.name}-k${i}`);
    for (let n = 0; n < ctx.addrs.length; n++) {
      const conn = nodeClient(ctx, n, `${this.name}-final-${n}`, 5000);
      const driver = this.#o.driver(conn, 1_000 + n);
      for (const key of keys) {
        const op = this.#history.invoke(`${this.name}-final-${n}`, "read", key, null);
        try {
          this.#history.complete(op, await driver.read(key));
        } catch (err) {
          this.#history.failed(op, err);
        }
      }
      await driver.close();
      await conn.close();
    }
  }

  async close(): Promise<void> {
    for (const { driver, conn } of this.#drivers) {
      await driver.close().catch(() => {});
      await conn.close().catch(() => {});
    }
  }

  outcomes() {
    return this.#history.outcomes();
  }

  okTimes(): number[] {
    return this.#history.ops.filter((o) => o.outcome === "ok").map((o) => o.completeMs);
  }

  /**
   * Declares crashes that may have lost acknowledged writes: the checker then treats the writes
   * and reads of each window as of unknown outcome (a write may never have happened; such a read
   * constrains nothing). Returns how many operations that affects.
   */
  allowLosses(windows: readonly LossWindow[]): { writes: number; reads: number } {
    this.#losses = windows;
    this.#checked = null;
    let writes = 0;
    let reads = 0;
    for (const op of this.#history.ops) {
      if (!this.#mayBeLost(op)) continue;
      if (op.f === "read") reads++;
      else writes++;
    }
    return { writes, reads };
  }

  #mayBeLost(op: RegisterOp): boolean {
    if (op.outcome !== "ok") return false;
    return this.#losses.some((w) => op.completeMs >= w.fromMs && op.completeMs <= (op.f === "read" ? w.readsToMs : w.atMs));
  }

  check(): CheckReport {
    if (this.#checked) return this.#checked;
    const ops = this.#losses.length === 0 ? this.#history.ops : this.#history.ops.map((op) => (this.#mayBeLost(op) ? { ...op, outcome: "unknown" as const, completeMs: Infinity } : op));
    const r = checkLinearizable(ops);
    this.#checked = { ok: r.ok, violations: r.violations.length, lines: formatLinearizable(r) };
    return this.#checked;
  }

  history(): unknown {
    return this.#history.ops;
  }
}
