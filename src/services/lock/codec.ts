import { Packr } from "msgpackr";
import type { LockCommand } from "./types.ts";

/**
 * One MessagePack codec for commands and snapshots. Plain maps (no records) keep the encoding
 * independent of the order in which a process first saw a shape, so every replica and every
 * restart produce the same bytes.
 */
export const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** Encodes a lock command as a log entry payload. */
export function encodeLockCommand(cmd: LockCommand): Uint8Array {
  return packr.pack(cmd);
}

/**
 * Decodes a log entry payload. Throws on bytes that are not MessagePack; it does not validate
 * the command (the state machine does, answering INVALID_ARGUMENT rather than throwing).
 */
export function decodeLockCommand(b: Uint8Array): LockCommand {
  return packr.unpack(b) as LockCommand;
}
