import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { randomBytes } from "node:crypto";
import {
  ErrorCode,
  FrameDecoder,
  Op,
  PROTOCOL_VERSION,
  decodeEnvelope,
  encodeEnvelope,
  encodeFrame,
  type Envelope,
} from "../../protocol/index.ts";
import { connect } from "../../src/client/index.ts";
import { TestCluster } from "../helpers/daemon.ts";

/** A raw connection that collects every envelope the node sends until it closes. */
class RawConn {
  readonly socket: net.Socket;
  readonly received: Envelope[] = [];
  readonly closed: Promise<void>;
  #decoder = new FrameDecoder(64 * 1024 * 1024);

  constructor(addr: string) {
    const [host, port] = addr.split(":");
    this.socket = net.connect({ host: host!, port: Number(port) });
    this.socket.on("data", (d: Buffer) => {
      for (const b of this.#decoder.push(d)) this.received.push(decodeEnvelope(new Uint8Array(b)));
    });
    this.socket.on("error", () => {});
    this.closed = new Promise((r) => this.socket.on("close", () => r()));
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  sendEnv(env: Envelope): void {
    this.send(encodeFrame(encodeEnvelope(env)));
  }

  /** Waits until an envelope matching `pred` arrives or the connection closes. */
  async next(pred: (e: Envelope) => boolean, timeoutMs = 5000): Promise<Envelope | "closed"> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.received.find(pred);
      if (hit) return hit;
      if (this.socket.destroyed || this.socket.readableEnded) return "closed";
      if (Date.now() > deadline) throw new Error("no reply and no close");
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async hello(): Promise<void> {
    this.sendEnv({ type: Op.HELLO, id: 1, body: { v: PROTOCOL_VERSION } });
    const r = await this.next((e) => e.id === 1);
    assert.notEqual(r, "closed");
    assert.equal((r as Envelope).type, Op.REPLY);
  }
}

function errorCode(e: Envelope | "closed"): number | "closed" {
  if (e === "closed") return "closed";
  assert.equal(e.type, Op.ERROR, `expected an ERROR envelope, got ${JSON.stringify(e)}`);
  return (e.body as { code: number }).code;
}

test("bad input - garbage, oversize, truncated, unknown and mistyped frames never hurt other clients", { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.create(1);
  const node = cluster.nodes[0]!;
  const good = await connect({ nodes: [node.clientAddr], requestTimeoutMs: 3000 });
  let goodPings = 0;
  let goodFailures = 0;
  let stop = false;
  // A well-behaved client on its own connection keeps pinging throughout.
  const pinger = (async () => {
    while (!stop) {
      try {
        await good.ping();
        goodPings++;
      } catch {
        goodFailures++;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  try {
    // 1. Thousands of random byte strings, many per connection, each connection must end in
    //    an error frame or a close; none may crash the node.
    let garbageConns = 0;
    let randomStrings = 0;
    for (let round = 0; round < 200; round++) {
      const c = new RawConn(node.clientAddr);
      for (let i = 0; i < 15; i++) {
        c.send(randomBytes(1 + Math.floor(Math.random() * 200)));
        randomStrings++;
      }
      c.socket.end();
      const r = await c.next((e) => e.type === Op.ERROR);
      if (r !== "closed") assert.ok([ErrorCode.PROTOCOL_ERROR, ErrorCode.FRAME_TOO_LARGE, ErrorCode.HANDSHAKE_REQUIRED, ErrorCode.UNKNOWN_TYPE, ErrorCode.INVALID_ARGUMENT].includes(errorCode(r) as never), `unexpected reply ${JSON.stringify(r)}`);
      await c.closed;
      garbageConns++;
    }
    assert.equal(randomStrings, 3000);
    assert.equal(garbageConns, 200);

    // 2. A frame announcing 2 GiB: FRAME_TOO_LARGE, then the node closes the connection.
    {
      const c = new RawConn(node.clientAddr);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(2 * 1024 * 1024 * 1024);
      c.send(header);
      assert.equal(errorCode(await c.next((e) => e.type === Op.ERROR)), ErrorCode.FRAME_TOO_LARGE);
      await c.closed;
    }

    // 3. A truncated frame (header promises 100 bytes, 10 arrive, then the client hangs up).
    {
      const c = new RawConn(node.clientAddr);
      const frame = Buffer.alloc(14);
      frame.writeUInt32BE(100);
      c.send(frame);
      c.socket.end();
      await c.closed;
    }

    // 4. Valid frames with an unknown type and with wrongly typed fields: typed errors, and the
    //    connection stays usable.
    {
      const c = new RawConn(node.clientAddr);
      c.sendEnv({ type: Op.PING, id: 7, body: {} });
      assert.equal(errorCode(await c.next((e) => e.id === 7)), ErrorCode.HANDSHAKE_REQUIRED);
      c.sendEnv({ type: Op.HELLO, id: 8, body: { v: "one" } });
      assert.equal(errorCode(await c.next((e) => e.id === 8)), ErrorCode.INVALID_ARGUMENT);
      await c.hello();
      c.sendEnv({ type: 200, id: 9, body: {} });
      assert.equal(errorCode(await c.next((e) => e.id === 9)), ErrorCode.UNKNOWN_TYPE);
      c.sendEnv({ type: Op.RAFT, id: 10, body: {} });
      assert.equal(errorCode(await c.next((e) => e.id === 10)), ErrorCode.UNKNOWN_TYPE, "peer messages are refused on the client port");
      // A body that is not a map: a bad request (INVALID_ARGUMENT with its id), not a broken stream.
      c.sendEnv({ type: Op.PING, id: 11, body: "not a map" });
      assert.equal(errorCode(await c.next((e) => e.id === 11)), ErrorCode.INVALID_ARGUMENT);
      c.sendEnv({ type: Op.PING, id: 12, body: {} });
      const pong = await c.next((e) => e.id === 12);
      assert.notEqual(pong, "closed");
      assert.equal((pong as Envelope).type, Op.REPLY, "the connection still serves after typed errors");
      // A body that is MessagePack but not an envelope: PROTOCOL_ERROR and close.
      c.send(encodeFrame(Uint8Array.of(0x2a)));
      assert.equal(errorCode(await c.next((e) => e.type === Op.ERROR && e.id === 0)), ErrorCode.PROTOCOL_ERROR);
      await c.closed;
    }

    // 5. A wrong protocol version and a peer handshake on the client port.
    {
      const c = new RawConn(node.clientAddr);
      c.sendEnv({ type: Op.HELLO, id: 1, body: { v: 999 } });
      assert.equal(errorCode(await c.next((e) => e.id === 1)), ErrorCode.UNSUPPORTED_VERSION);
      await c.closed;
    }
    // Version 0 is a version too (seen answered INVALID_ARGUMENT with the connection left open).
    {
      const c = new RawConn(node.clientAddr);
      c.sendEnv({ type: Op.HELLO, id: 1, body: { v: 0 } });
      assert.equal(errorCode(await c.next((e) => e.id === 1)), ErrorCode.UNSUPPORTED_VERSION);
      await c.closed;
    }

    stop = true;
    await pinger;
    assert.ok(goodPings > 50, `the well-behaved client got ${goodPings} answers`);
    assert.equal(goodFailures, 0, "the well-behaved client never failed");
    assert.ok(node.alive, "the daemon is still running");
    const res = await fetch(`${node.httpUrl}/health`);
    assert.ok(res.status === 200 || res.status === 503, "the HTTP side port still answers");
  } finally {
    stop = true;
    await pinger;
    await good.close();
    await cluster.destroy();
  }
});
