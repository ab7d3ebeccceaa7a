import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { pack } from "msgpackr";
import {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameLengthError,
  decodeEnvelope,
  encodeEnvelope,
  encodeFrame,
  type Envelope,
} from "../../protocol/index.ts";

/**
 * Normalizes values so deepEqual compares content only: Buffer becomes Uint8Array, and -0
 * becomes 0 (MessagePack encoders, msgpackr included, send an integral -0 as the integer 0;
 * PROTOCOL.md says so).
 */
function plain(v: unknown): unknown {
  if (Object.is(v, -0)) return 0;
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

// A "__proto__" map key is renamed by the decoder (no prototype pollution; tested below), so
// the round-trip property leaves it out.
const body = fc.oneof(
  fc.jsonValue().filter((v) => !JSON.stringify(v ?? null).includes('"__proto__"')),
  fc.record({ key: fc.string(), data: fc.uint8Array({ maxLength: 300 }), n: fc.integer(), big: fc.maxSafeNat(), f: fc.double({ noNaN: true }) }),
);
const envelope: fc.Arbitrary<Envelope> = fc.record({ type: fc.integer({ min: 0, max: 255 }), id: fc.integer({ min: 0, max: 0xffff_ffff }), body });

/** Splits `data` at the given cut points (any order, duplicates allowed). */
function chunk(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, data.length]) {
    out.push(data.subarray(prev, p));
    prev = p;
  }
  return out;
}

test("frame - any envelopes round-trip through encode, arbitrary chunking and decode", () => {
  fc.assert(
    fc.property(fc.array(envelope, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 40 }), (envs, cuts) => {
      const frames = envs.map((e) => encodeFrame(encodeEnvelope(e)));
      const stream = Buffer.concat(frames);
      const decoder = new FrameDecoder();
      const bodies = chunk(stream, cuts).flatMap((c) => decoder.push(c).map((b) => new Uint8Array(b)));
      assert.equal(decoder.bufferedBytes, 0);
      assert.deepEqual(bodies.map((b) => plain(decodeEnvelope(b))), envs.map((e) => plain({ ...e, body: e.body ?? null })));
    }),
    { numRuns: 500 },
  );
});

test("frame - byte-at-a-time delivery yields the same frames", () => {
  const envs: Envelope[] = Array.from({ length: 50 }, (_, i) => ({ type: 3, id: i + 1, body: { i, s: "x".repeat(i) } }));
  const stream = Buffer.concat(envs.map((e) => encodeFrame(encodeEnvelope(e))));
  const decoder = new FrameDecoder();
  const got: Envelope[] = [];
  for (const byte of stream) for (const b of decoder.push(Uint8Array.of(byte))) got.push(decodeEnvelope(new Uint8Array(b)));
  assert.deepEqual(got, envs);
});

test("frame - a length above the maximum is refused before any body is buffered", () => {
  const decoder = new FrameDecoder(1024);
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(header.buffer).setUint32(0, 2 ** 31, false);
  assert.throws(() => decoder.push(header), (err: unknown) => err instanceof FrameLengthError && err.announcedBytes === 2 ** 31 && err.maxBytes === 1024);
});

test("frame - an empty frame is refused", () => {
  assert.throws(() => new FrameDecoder().push(new Uint8Array(4)), FrameLengthError);
  assert.throws(() => encodeFrame(new Uint8Array(0)), RangeError);
});

test("codec - non-envelope bodies are protocol errors", () => {
  const cases: unknown[] = [42, "hello", [1, 2], [1, 2, 3, 4], ["x", 1, null], [1, -1, null], [256, 1, null], { type: 1 }];
  for (const value of cases) {
    assert.throws(() => decodeEnvelope(pack(value)), { name: "ProtocolError" }, JSON.stringify(value));
  }
  assert.throws(() => decodeEnvelope(Uint8Array.of(0xc1)), { name: "ProtocolError" }, "0xc1 is never used in MessagePack");
  const twoValues = Buffer.concat([encodeEnvelope({ type: 3, id: 1, body: null }), Uint8Array.of(0x01)]);
  assert.throws(() => decodeEnvelope(twoValues), { name: "ProtocolError" }, "trailing bytes");
});

test("codec - a __proto__ map key cannot change a decoded body's prototype", () => {
  const body = pack([3, 1, new Map<string, unknown>([["__proto__", { token: "injected" }], ["a", 1]])]);
  const env = decodeEnvelope(body);
  const fields = env.body as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(fields), Object.prototype);
  assert.equal(fields.token, undefined);
  assert.equal(({} as Record<string, unknown>).token, undefined);
});
