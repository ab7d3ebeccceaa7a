import { Packr } from "msgpackr";
import { ErrorCode } from "./error-codes.ts";
import { ProtocolError } from "./errors.ts";

/**
 * The envelope carried by every frame: a MessagePack array `[type, id, body]`.
 * `id` is chosen by the requester (a u32, 0 for one-way messages and pushes) and echoed in the
 * REPLY or ERROR; `body` is a map (or nil) whose fields depend on `type`.
 */
export interface Envelope {
  readonly type: number;
  readonly id: number;
  readonly body: unknown;
}

// Plain MessagePack only: records and other msgpackr extensions would break clients in other
// languages, so they are off. Maps decode to plain objects, bin to Uint8Array/Buffer; map
// headers use the smallest form (fixmap) as other encoders do.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, bundleStrings: false, variableMapSize: true });

/** Encodes an envelope to a MessagePack body (without the length prefix). */
export function encodeEnvelope(env: Envelope): Uint8Array {
  return packr.pack([env.type, env.id, env.body ?? null]);
}

/**
 * Decodes one frame body into an envelope.
 * @throws ProtocolError (PROTOCOL_ERROR) when the body is not valid MessagePack, has trailing
 * bytes, or is not an array `[uint type, uint id, body]`.
 */
export function decodeEnvelope(body: Uint8Array): Envelope {
  let value: unknown;
  try {
    const values = packr.unpackMultiple(body as Buffer) as unknown[];
    if (values.length !== 1) throw new Error(`expected one MessagePack value, found ${values.length}`);
    value = values[0];
  } catch (cause) {
    throw new ProtocolError(`frame body is not one valid MessagePack value: ${(cause as Error).message}`, ErrorCode.PROTOCOL_ERROR, { cause });
  }
  if (!Array.isArray(value) || value.length !== 3) {
    throw new ProtocolError("envelope must be a MessagePack array [type, id, body]");
  }
  const [type, id, payload] = value as [unknown, unknown, unknown];
  if (!isUint(type, 0xff) || !isUint(id, 0xffff_ffff)) {
    throw new ProtocolError("envelope type must be an integer in [0, 255] and id an integer in [0, 2^32)");
  }
  return { type, id, body: payload };
}

function isUint(v: unknown, max: number): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max;
}
