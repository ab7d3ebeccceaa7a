/**
 * Request deadlines share one timer per connection (armed for the earliest): each request still
 * fails with TimeoutError at its own deadline, answered requests leave nothing behind, and a
 * closed connection fails what is pending.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { ConnectionClosedError, Op, TimeoutError } from "../../protocol/index.ts";
import { FramedSocket } from "../../src/transport/framed-socket.ts";
import { RpcConnection } from "../../src/transport/rpc-connection.ts";

/** A loopback server that answers only requests of type 1 (echoing the body) and ignores the rest. */
async function startServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    const framed = new FramedSocket(s, { maxFrameBytes: 1 << 20 });
    framed.onMessage((env) => {
      if (env.type === 1) framed.send({ type: Op.REPLY, id: env.id, body: env.body });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

async function connect(port: number): Promise<RpcConnection> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((r, j) => socket.once("connect", r).once("error", j));
  return new RpcConnection(socket, { maxFrameBytes: 1 << 20, requestTimeoutMs: 5000 });
}

test("rpc-connection - each request times out at its own deadline; answered ones resolve", async () => {
  const server = await startServer();
  const conn = await connect(server.port);
  try {
    const order: string[] = [];
    const t0 = performance.now();
    const failedAt = (name: string) => (err: unknown) => {
      assert.ok(err instanceof TimeoutError, `${name}: ${String(err)}`);
      order.push(name);
      return performance.now() - t0;
    };
    // The long one is sent first: the shared timer must be re-armed for the shorter deadline.
    const long = conn.request(2, { n: 1 }, 400).then(() => assert.fail("long was answered"), failedAt("long"));
    const short = conn.request(2, { n: 2 }, 80).then(() => assert.fail("short was answered"), failedAt("short"));
    const answered = await conn.request(1, { hello: "x" }, 80);
    assert.deepEqual(answered, { hello: "x" });
    const [longMs, shortMs] = await Promise.all([long, short]);
    assert.deepEqual(order, ["short", "long"]);
    assert.ok(shortMs >= 79, `short failed after ${shortMs} ms, before its 80 ms deadline`);
    assert.ok(longMs >= 399, `long failed after ${longMs} ms, before its 400 ms deadline`);
    assert.equal(conn.pendingCount, 0);
    // The connection still works after timeouts.
    assert.deepEqual(await conn.request(1, 7, 1000), 7);
  } finally {
    conn.close();
    await server.close();
  }
});

test("rpc-connection - closing fails pending requests with ConnectionClosedError", async () => {
  const server = await startServer();
  const conn = await connect(server.port);
  try {
    const pending = conn.request(2, {}, 60_000);
    conn.close();
    await assert.rejects(pending, (err: unknown) => err instanceof ConnectionClosedError);
    assert.equal(conn.pendingCount, 0);
  } finally {
    await server.close();
  }
});
