import { Packr } from "msgpackr";

// Plain MessagePack (no records extension), so a log entry decodes the same on every version.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** Encodes a state-machine command (a plain object) as a log entry payload. */
export function encodeCommand(cmd: object): Uint8Array {
  return packr.pack(cmd);
}

/** Decodes a log entry payload written by {@link encodeCommand}. */
export function decodeCommand(data: Uint8Array): unknown {
  return packr.unpack(data);
}
