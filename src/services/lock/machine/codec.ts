import { decodeCommand, encodeCommand } from "../../command-codec.ts";
import type { LockCommand } from "./types.ts";

/** Encodes a lock command as a log entry payload (the services' one MessagePack setup). */
export function encodeLockCommand(cmd: LockCommand): Uint8Array {
  return encodeCommand(cmd);
}

/**
 * Decodes a log entry payload. Throws on bytes that are not MessagePack; it does not validate
 * the command (the state machine does, answering INVALID_ARGUMENT rather than throwing).
 */
export function decodeLockCommand(b: Uint8Array): LockCommand {
  return decodeCommand(b) as LockCommand;
}
