import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeEnvelope, encodeEnvelope, Op } from "../../protocol/index.ts";
import { parseRaftBatch } from "../../src/host/raft-codec.ts";
import { copyBytes, encodeCommand, ownBytes } from "../../src/services/command-codec.ts";
import { QueueMachine } from "../../src/services/queue/machine/queue-machine.ts";
import { encodeQueueCommand } from "../../src/services/queue/machine/commands.ts";
import type { DeliveredMessage } from "../../protocol/index.ts";

// A 256 KiB message once kept a 1–4 MiB encoder scratch buffer resident, and a small entry a
// 64 KiB socket chunk: RSS grew 4× the queued payload (npm run bench:idle -- --fill-mib 128).

test("own bytes - a view into a much larger buffer is copied to exactly its length, of the same class and not from Buffer's pool", () => {
  const big = new Uint8Array(64 * 1024);
  big.set([1, 2, 3], 1000);
  const view = big.subarray(1000, 1100);
  const own = ownBytes(view);
  assert.notEqual(own.buffer, big.buffer);
  assert.equal(own.buffer.byteLength, 100);
  assert.deepEqual([...own.subarray(0, 3)], [1, 2, 3]);
  assert.ok(!Buffer.isBuffer(own));

  const bufView = Buffer.from(big.buffer, 1000, 100);
  const ownBuf = ownBytes(bufView);
  assert.ok(Buffer.isBuffer(ownBuf), "a Buffer stays a Buffer (decoded values are Buffers)");
  assert.equal(ownBuf.buffer.byteLength, 100, "not a slice of Buffer's shared pool");

  const whole = new Uint8Array(100);
  assert.equal(ownBytes(whole), whole, "a buffer of its own is kept as it is");
  const nearlyWhole = new Uint8Array(5000).subarray(0, 1000);
  assert.equal(ownBytes(nearlyWhole), nearlyWhole, "a few KiB of spare is not worth a copy");
  const copied = copyBytes(whole);
  assert.notEqual(copied.buffer, whole.buffer);
  assert.equal(copied.byteLength, 100);
});

test("own bytes - a log entry received from a peer does not keep the frame it arrived in", () => {
  const payload = new Uint8Array(300).fill(7);
  const entry = { term: 1, index: 1, type: 0, data: payload };
  const msg = { type: 3, group: 1, from: "a", to: "b", term: 1, logTerm: 0, index: 0, entries: [entry], commit: 0, reject: false, rejectHint: 0 };
  // Frames arrive inside larger socket chunks: decode the envelope from a view into one.
  const encoded = encodeEnvelope({ type: Op.RAFT, id: 0, body: { msgs: [msg] } });
  const chunk = new Uint8Array(64 * 1024);
  chunk.set(encoded, 10);
  const env = decodeEnvelope(chunk.subarray(10, 10 + encoded.length));
  const [parsed] = parseRaftBatch(env.body);
  const data = parsed!.entries[0]!.data;
  assert.deepEqual([...data], [...payload]);
  assert.ok(data.buffer.byteLength <= data.byteLength + 4096, `entry data pins ${data.buffer.byteLength} bytes for ${data.byteLength}`);
});

test("own bytes - a queued message shares its log entry's bytes (one copy, not two) and never pins a larger buffer", () => {
  const m = new QueueMachine({});
  const payload = new Uint8Array(256 * 1024).fill(97);
  const data = copyBytes(encodeQueueCommand({ op: "enqueue", queue: "q", messages: [{ payload }], now: 1 }));
  assert.equal(m.apply({ index: 1, term: 1, data })?.ok, true);
  const consumed = m.apply({ index: 2, term: 1, data: encodeCommand({ op: "consume", queue: "q", consumerId: "c", max: 1, now: 2 }) });
  const [delivered] = (consumed as { messages: DeliveredMessage[] }).messages;
  assert.equal(delivered!.payload.buffer, data.buffer, "the payload is a view into the entry's own buffer");

  // An entry that is itself a view into an encoder's scratch buffer: the message keeps only its bytes.
  const scratch = new Uint8Array(4 * 1024 * 1024);
  const enc = encodeQueueCommand({ op: "enqueue", queue: "r", messages: [{ payload }], now: 3 });
  scratch.set(enc, 12345);
  assert.equal(m.apply({ index: 3, term: 1, data: scratch.subarray(12345, 12345 + enc.length) })?.ok, true);
  const r = m.apply({ index: 4, term: 1, data: encodeCommand({ op: "consume", queue: "r", consumerId: "c", max: 1, now: 4 }) });
  const [other] = (r as { messages: DeliveredMessage[] }).messages;
  assert.equal(other!.payload.byteLength, payload.byteLength);
  assert.ok(other!.payload.buffer.byteLength <= payload.byteLength + 4096, `the message pins ${other!.payload.buffer.byteLength} bytes`);
});
