/**
 * A fake dsync node on loopback for client-library tests: answers HELLO, then hands every other
 * request to `handle`, which replies (a body, or an error body with `error: true`) or swallows it.
 */
import net from "node:net";
import { FrameDecoder, Op, decodeEnvelope, encodeEnvelope, encodeFrame, type Envelope } from "../../protocol/index.ts";

export type FakeAnswer = { body: unknown } | { error: { code: number; message: string; leaderHint?: string | null; leaderAddr?: string | null } } | null;

export class FakeNode {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();

  private constructor(
    server: net.Server,
    readonly port: number,
  ) {
    this.#server = server;
    server.on("connection", (s) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    });
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Listens on `port` (0: any free one). */
  static async start(nodeId: string, handle: (env: Envelope) => FakeAnswer, port = 0): Promise<FakeNode> {
    const server = net.createServer((sock) => {
      const dec = new FrameDecoder();
      sock.on("error", () => {});
      sock.on("data", (chunk) => {
        for (const body of dec.push(chunk)) {
          const env = decodeEnvelope(body);
          const send = (type: number, b: unknown): void => void sock.write(encodeFrame(encodeEnvelope({ type, id: env.id, body: b })));
          if (env.type === Op.HELLO) {
            send(Op.REPLY, { v: 1, nodeId, leader: null, leaderAddr: null, maxFrameBytes: 1 << 20, server: "fake" });
            continue;
          }
          const a = handle(env);
          if (a === null) continue;
          if ("error" in a) send(Op.ERROR, a.error);
          else send(Op.REPLY, a.body);
        }
      });
    });
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    return new FakeNode(server, (server.address() as net.AddressInfo).port);
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
