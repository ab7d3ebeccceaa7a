/**
 * How FramedSocket turns sends into write calls: by default one write per event-loop turn; with
 * flushAfterFrames N, replies made while one read's frames are handled go out every N frames (the
 * rest at the end of the turn), while sends made outside a read still go out once per turn. Every
 * frame arrives once and in order either way.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Op, type Envelope } from "../../protocol/index.ts";
import { FramedSocket } from "../../src/transport/framed-socket.ts";

interface Echo {
  /** The requesting side. */
  client: FramedSocket;
  /** The answering side (answers each request of type 1 at once with a REPLY of the same id). */
  server(): FramedSocket;
  /** write() calls on the answering side's socket so far. */
  serverWrites(): number;
  /** Resolves with the first `n` envelopes the requesting side decodes. */
  replies(n: number): Promise<Envelope[]>;
  close(): Promise<void>;
}

async function echo(flushAfterFrames?: number): Promise<Echo> {
  const got: Envelope[] = [];
  let wake: (() => void) | null = null;
  let want = 0;
  let answering: FramedSocket | null = null;
  let writes = 0;
  const accepted = new Set<net.Socket>();
  const server = net.createServer((s) => {
    accepted.add(s);
    const write = s.write.bind(s) as (data: Uint8Array) => boolean;
    s.write = ((data: Uint8Array) => {
      writes++;
      return write(data);
    }) as typeof s.write;
    const framed = new FramedSocket(s, flushAfterFrames === undefined ? { maxFrameBytes: 1 << 20 } : { maxFrameBytes: 1 << 20, flushAfterFrames });
    framed.onMessage((env) => {
      if (env.type === 1) framed.send({ type: Op.REPLY, id: env.id, body: env.body });
    });
    answering = framed;
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  await new Promise<void>((r, j) => socket.once("connect", r).once("error", j));
  const client = new FramedSocket(socket, { maxFrameBytes: 1 << 20 }).onMessage((env) => {
    got.push(env);
    if (got.length >= want) wake?.();
  });
  while (answering === null) await new Promise((r) => setImmediate(r));
  return {
    client,
    server: () => answering!,
    serverWrites: () => writes,
    replies: (n) =>
      new Promise((r) => {
        want = n;
        wake = () => r(got.slice(0, n));
        if (got.length >= n) wake();
      }),
    close: () =>
      new Promise<void>((r) => {
        client.destroy();
        for (const s of accepted) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Sends requests 1..n in one turn (one write) and returns the ids of the n replies. */
async function roundTrip(e: Echo, n: number): Promise<number[]> {
  for (let i = 1; i <= n; i++) e.client.send({ type: 1, id: i, body: { i } });
  return (await e.replies(n)).map((r) => r.id);
}

const ids = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

test("framed-socket - by default the replies to one read go out in one write", async () => {
  const e = await echo();
  try {
    assert.deepEqual(await roundTrip(e, 10), ids(10));
    assert.equal(e.serverWrites(), 1);
  } finally {
    await e.close();
  }
});

test("framed-socket - flushAfterFrames writes the replies to one read every N frames, the rest at the end of the turn, in order", async () => {
  const e = await echo(4);
  try {
    assert.deepEqual(await roundTrip(e, 10), ids(10));
    // 1–4 and 5–8 while the read is handled, 9–10 at the end of the turn. (Ten small frames
    // sent in one write arrive in one read on loopback.)
    assert.equal(e.serverWrites(), 3);
  } finally {
    await e.close();
  }
});

test("framed-socket - flushAfterFrames leaves sends made outside a read to one write per turn", async () => {
  const e = await echo(4);
  try {
    for (let i = 1; i <= 10; i++) e.server().send({ type: Op.REPLY, id: i, body: null });
    assert.equal(e.serverWrites(), 0, "nothing is written before the turn ends");
    assert.deepEqual((await e.replies(10)).map((r) => r.id), ids(10));
    assert.equal(e.serverWrites(), 1);
  } finally {
    await e.close();
  }
});
