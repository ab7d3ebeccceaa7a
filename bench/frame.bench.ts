/**
 * Micro-benchmark of the wire codec: encode an envelope into a frame, then stream-decode it.
 * Run: npm run bench:micro
 */
import { Bench } from "tinybench";
import { FrameDecoder, decodeEnvelope, encodeEnvelope, encodeFrame, type Envelope } from "../protocol/index.ts";

const small: Envelope = { type: 3, id: 12345, body: { resource: "orders/42", mode: "exclusive", ttlMs: 30_000 } };
const value1k: Envelope = { type: 3, id: 12345, body: { key: "user:42", value: new Uint8Array(1024) } };
const batch = Buffer.concat(Array.from({ length: 64 }, (_, i) => encodeFrame(encodeEnvelope({ ...small, id: i + 1 }))));

const bench = new Bench({ time: 1500, warmupTime: 300 });
const decoder = new FrameDecoder();
bench
  .add("small request: encode + frame + decode", () => {
    for (const b of decoder.push(encodeFrame(encodeEnvelope(small)))) decodeEnvelope(b);
  })
  .add("1 KiB value: encode + frame + decode", () => {
    for (const b of decoder.push(encodeFrame(encodeEnvelope(value1k)))) decodeEnvelope(b);
  })
  .add("decode 64 small frames from one chunk (per frame ÷ 64)", () => {
    for (const b of decoder.push(batch)) decodeEnvelope(b);
  });

await bench.run();

const rows = bench.tasks.map((t) => {
  const r = t.result as unknown as { throughput?: { mean: number; p50?: number }; hz?: number; latency?: { p50?: number; p99?: number } };
  const opsPerSec = r.throughput?.mean ?? r.hz ?? 0;
  const framesPerSec = t.name.startsWith("decode 64") ? opsPerSec * 64 : opsPerSec;
  return { case: t.name, "frames/s": Math.round(framesPerSec).toLocaleString("en-US"), "p99 µs (per op)": ((r.latency?.p99 ?? 0) * 1000).toFixed(2) };
});
console.table(rows);
console.log(`node ${process.version}, ${new Date().toISOString()}`);
