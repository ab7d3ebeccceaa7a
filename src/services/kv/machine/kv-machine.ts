import { decodeCommand, encodeCommand } from "../../command-codec.ts";
import type { KvWriteReply } from "../../../../protocol/kv-messages.ts";
import type { AppliedEntry, StateMachine } from "../../../host/state-machine.ts";

/** Commands of the replicated key-value register. */
export type KvCommand =
  | { readonly op: "put"; readonly key: string; readonly value: Uint8Array }
  | { readonly op: "delete"; readonly key: string };

/** The result a proposer of a KV command receives (the KV_PUT / KV_DELETE reply). */
export type KvResult = KvWriteReply;

/** Encodes a KV command as a log entry payload. */
export function encodeKvCommand(cmd: KvCommand): Uint8Array {
  return encodeCommand(cmd);
}

/**
 * A small replicated key-value register in group 0: the simplest state machine on the log, used
 * by tests and benchmarks to observe replication end to end (put, linearizable get, delete).
 */
export class KvMachine implements StateMachine {
  #data = new Map<string, { value: Uint8Array; revision: number }>();

  get size(): number {
    return this.#data.size;
  }

  /** The value and the revision that last wrote it, or null. */
  get(key: string): { value: Uint8Array; revision: number } | null {
    return this.#data.get(key) ?? null;
  }

  apply(entry: AppliedEntry): KvResult | null {
    if (entry.data.length === 0) return null; // A leader's no-op.
    const cmd = decodeCommand(entry.data) as KvCommand;
    if (cmd.op === "put") {
      const existed = this.#data.has(cmd.key);
      this.#data.set(cmd.key, { value: cmd.value, revision: entry.index });
      return { revision: entry.index, existed };
    }
    if (cmd.op === "delete") {
      return { revision: entry.index, existed: this.#data.delete(cmd.key) };
    }
    return null;
  }

  snapshot(): Uint8Array {
    return encodeCommand([...this.#data.entries()].map(([k, v]) => [k, v.value, v.revision]));
  }

  restore(data: Uint8Array): void {
    const rows = decodeCommand(data) as [string, Uint8Array, number][];
    this.#data = new Map(rows.map(([k, value, revision]) => [k, { value, revision }]));
  }
}
