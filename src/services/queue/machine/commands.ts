import { decodeCommand, encodeCommand } from "../../command-codec.ts";
import type { QueueCommand } from "./types.ts";

// The forms the machine shares with its callers (the service batches commands, consumers hold
// receipts), kept apart from the state transitions that interpret them.

/** Commands one batch entry carries at most. */
export const BATCH_MAX = 4096;

export function isBatch(c: unknown): c is { op: "batch"; cmds?: unknown; now?: unknown } {
  return c !== null && typeof c === "object" && (c as { op?: unknown }).op === "batch";
}

/** Encodes a queue command as a log entry payload. */
export function encodeQueueCommand(cmd: QueueCommand): Uint8Array {
  return encodeCommand(cmd);
}

/** Decodes a log entry payload; throws on bytes that are not MessagePack (it does not validate). */
export function decodeQueueCommand(data: Uint8Array): QueueCommand {
  return decodeCommand(data) as QueueCommand;
}

/** A receipt: the message id and the partition-wide sequence number of the delivery. */
export function receiptOf(id: number, seq: number): string {
  return `${id}:${seq}`;
}

export function parseReceipt(r: unknown): { id: number; seq: number } | null {
  if (typeof r !== "string" || r.length > 40) return null;
  const m = /^(\d{1,16}):(\d{1,16})$/.exec(r);
  if (m === null) return null;
  const id = Number(m[1]);
  const seq = Number(m[2]);
  return Number.isSafeInteger(id) && Number.isSafeInteger(seq) ? { id, seq } : null;
}
