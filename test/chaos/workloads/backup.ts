/**
 * Backups under faults: writers keep changing a few KV keys while `dsync admin backup`'s
 * exchange (takeBackup) runs against a random node every few seconds. Each finished backup must
 * verify (checksums), and each key's value in its group-0 image joins the KV history as a read
 * spanning the backup: the linearizability checker then proves every image held every write
 * acknowledged before the backup began and nothing that was never written.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import { BackupFileError, readBackupFile } from "../../../protocol/index.ts";
import { takeBackup } from "../../../src/client/index.ts";
import { ClusterMachine } from "../../../src/services/cluster/machine/cluster-machine.ts";
import type { CheckReport, WorkloadContext } from "./workload.ts";
import { nodeClient } from "./workload.ts";
import { kvDriver } from "./kv.ts";
import { RegisterWorkload } from "./register.ts";

const text = new TextDecoder();

export class BackupWorkload extends RegisterWorkload {
  readonly #corrupt: string[] = [];
  #taken = 0;

  constructor() {
    super({
      name: "backup",
      clients: 3,
      keys: 2,
      driver: (c) => kvDriver(c, false),
      mix: { write: 0.8, delete: 0.1, invalidate: 0 },
      sideRead: { name: "backup-image", everyMs: 2500, read: (ctx, n, keys) => this.#backup(ctx, n, keys) },
    });
  }

  async #backup(ctx: WorkloadContext, n: number, keys: readonly string[]): Promise<ReadonlyMap<string, string | null>> {
    const conn = nodeClient(ctx, n, `backup-taker-${n}`, 5000);
    const file = path.join(ctx.dir, `backup-${n}.dsb`);
    try {
      await takeBackup(conn, file);
      let contents;
      try {
        contents = await readBackupFile(file);
      } catch (err) {
        // A backup the client finished writing must verify: anything else is a defect.
        if (err instanceof BackupFileError) this.#corrupt.push(`backup ${n}: ${err.message}`);
        throw err;
      }
      this.#taken++;
      const machine = new ClusterMachine();
      machine.restore(contents.images.get(0)!);
      return new Map(keys.map((k) => {
        const v = machine.kv.get(k);
        return [k, v ? text.decode(v.value) : null];
      }));
    } finally {
      await conn.close();
      await rm(file, { force: true });
    }
  }

  override check(): CheckReport {
    const r = super.check();
    const lines = [`backups taken and verified: ${this.#taken}; corrupt: ${this.#corrupt.length}`, ...this.#corrupt, ...r.lines];
    const ok = r.ok && this.#corrupt.length === 0 && this.#taken > 0;
    if (this.#taken === 0) lines.push("no backup completed during the run");
    return { ok, violations: r.violations + this.#corrupt.length, lines };
  }
}

export function backupWorkload(): BackupWorkload {
  return new BackupWorkload();
}
