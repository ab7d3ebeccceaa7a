import { InvalidArgumentError } from "./errors.ts";

/** A plain MessagePack map decoded to an object. */
export type Fields = Readonly<Record<string, unknown>>;

/**
 * Returns `body` as a field map; nil is read as an empty map.
 * @throws InvalidArgumentError when `body` is not a map.
 */
export function asFields(body: unknown, what: string): Fields {
  if (body === null || body === undefined) return {};
  if (typeof body !== "object" || Array.isArray(body) || body instanceof Uint8Array) {
    throw new InvalidArgumentError(`${what}: body must be a map, got ${kindOf(body)}`);
  }
  return body as Fields;
}

/** A required or optional string field no longer than `maxBytes` UTF-8 bytes. */
export function str(f: Fields, name: string, what: string, opts: { optional: true; maxBytes?: number }): string | undefined;
export function str(f: Fields, name: string, what: string, opts?: { optional?: false; maxBytes?: number }): string;
export function str(f: Fields, name: string, what: string, opts: { optional?: boolean; maxBytes?: number } = {}): string | undefined {
  const v = f[name];
  if (v === undefined || v === null) {
    if (opts.optional) return undefined;
    throw new InvalidArgumentError(`${what}: field "${name}" is required (a string)`);
  }
  if (typeof v !== "string") throw new InvalidArgumentError(`${what}: field "${name}" must be a string, got ${kindOf(v)}`);
  const maxBytes = opts.maxBytes ?? 1024;
  // A UTF-16 code unit encodes to at most 3 UTF-8 bytes, so most strings skip the count.
  if (v.length * 3 > maxBytes && utf8Length(v) > maxBytes) {
    throw new InvalidArgumentError(`${what}: field "${name}" is longer than ${maxBytes} bytes`);
  }
  return v;
}

/** A required or optional integer field in `[min, max]`. */
export function int(f: Fields, name: string, what: string, opts: { optional: true; min?: number; max?: number }): number | undefined;
export function int(f: Fields, name: string, what: string, opts?: { optional?: false; min?: number; max?: number }): number;
export function int(f: Fields, name: string, what: string, opts: { optional?: boolean; min?: number; max?: number } = {}): number | undefined {
  const v = f[name];
  if (v === undefined || v === null) {
    if (opts.optional) return undefined;
    throw new InvalidArgumentError(`${what}: field "${name}" is required (an integer)`);
  }
  const min = opts.min ?? 0;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new InvalidArgumentError(`${what}: field "${name}" must be an integer, got ${kindOf(v)}`);
  }
  if (v < min || v > max) throw new InvalidArgumentError(`${what}: field "${name}" must be in [${min}, ${max}], got ${v}`);
  return v;
}

/** An optional boolean field (absent or nil: false); any other type is refused, never coerced. */
export function bool(f: Fields, name: string, what: string): boolean {
  const v = f[name];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw new InvalidArgumentError(`${what}: field "${name}" must be a boolean, got ${kindOf(v)}`);
  return v;
}

/**
 * A decoded value shown in an error message, shortened; never throws (a MessagePack uint64
 * decodes as a BigInt, which JSON.stringify refuses).
 */
export function shown(v: unknown, max = 80): string {
  let out: string;
  if (typeof v === "string") out = JSON.stringify(v.length > max ? v.slice(0, max) : v);
  else if (typeof v === "bigint") out = `${v}n`;
  else if (v === null || v === undefined || typeof v === "number" || typeof v === "boolean") out = String(v ?? "nil");
  else out = kindOf(v);
  return out.length > max + 2 ? `${out.slice(0, max)}…` : out;
}

/** Names the MessagePack kind of a decoded value for error messages. */
export function kindOf(v: unknown): string {
  if (v === null || v === undefined) return "nil";
  if (v instanceof Uint8Array) return "bin";
  if (Array.isArray(v)) return "array";
  if (typeof v === "object") return "map";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "float";
  if (typeof v === "bigint") return "integer (beyond 2^53)";
  return typeof v;
}

/**
 * The UTF-8 length of `s`, counted without encoding it (an encode allocates, and names and ids
 * are checked on every request). A lone surrogate counts 3, as the encoder writes U+FFFD for it.
 */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
