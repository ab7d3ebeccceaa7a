/**
 * A TCP proxy standing for one network link between two nodes, driven by the fault campaign.
 *
 * Modes behave like a real network, never like a lossy pipe:
 * - `pass`: bytes flow.
 * - `stall`: nothing flows either way; bytes (and FINs) already read are held and delivered in
 *   order when the link heals — what TCP retransmission does after a partition heals. Reading
 *   stops too, so the senders' kernel buffers fill and their writes back up.
 * - `delay`: every chunk arrives `delayMs` later, order kept.
 * - `reset`: every open connection is reset (RST) and new ones are reset on accept, until healed.
 * Bytes are never dropped from the middle of a stream.
 */
import net from "node:net";

export type LinkMode = "pass" | "stall" | "delay" | "reset";

/** One direction of a proxied connection: chunks in order, then maybe an end. */
class Direction {
  readonly #held: (Buffer | null)[] = [];
  #lastAtMs = 0;
  constructor(
    readonly from: net.Socket,
    readonly to: net.Socket,
    readonly link: LinkProxy,
  ) {
    from.on("data", (chunk: Buffer) => this.#push(chunk));
    from.on("end", () => this.#push(null));
  }

  #push(chunk: Buffer | null): void {
    if (chunk) this.link.bytes += chunk.length;
    const mode = this.link.mode;
    if (mode === "stall" || this.#held.length > 0) {
      this.#held.push(chunk);
      if (mode === "stall") this.from.pause();
      return;
    }
    if (mode === "delay") {
      // Keep order: a chunk never overtakes the one before it.
      const at = Math.max(performance.now() + this.link.delayMs, this.#lastAtMs);
      this.#lastAtMs = at;
      setTimeout(() => this.#deliver(chunk), at - performance.now());
      return;
    }
    this.#deliver(chunk);
  }

  #deliver(chunk: Buffer | null): void {
    if (this.to.destroyed) return;
    if (chunk === null) this.to.end();
    else this.to.write(chunk);
  }

  /** Delivers what was held, in order, and reads again. */
  release(): void {
    for (const c of this.#held.splice(0)) this.#deliver(c);
    this.from.resume();
  }
}

/** A listening proxy from a local port to `target` (host:port). */
export class LinkProxy {
  mode: LinkMode = "pass";
  delayMs = 0;
  /** Bytes that entered the proxy, both directions: proof that traffic crosses the fault layer. */
  bytes = 0;
  /** Connections accepted (a rising count during a reset shows the nodes redialing). */
  accepted = 0;
  readonly #server: net.Server;
  readonly #pairs = new Set<{ a: net.Socket; b: net.Socket; dirs: Direction[] }>();
  #port = 0;

  constructor(
    readonly name: string,
    readonly targetHost: string,
    readonly targetPort: number,
  ) {
    // Half-open sockets: an end travels through #push like data, so a delayed or held FIN stays in order.
    this.#server = net.createServer({ allowHalfOpen: true }, (s) => this.#accept(s));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(0, "127.0.0.1", () => resolve());
    });
    this.#port = (this.#server.address() as net.AddressInfo).port;
    return this.#port;
  }

  get addr(): string {
    return `127.0.0.1:${this.#port}`;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  /** Switches mode; leaving `stall` releases held bytes, entering `reset` resets every connection. */
  set(mode: LinkMode, delayMs = 0): void {
    const was = this.mode;
    this.mode = mode;
    this.delayMs = delayMs;
    if (mode === "reset") for (const p of [...this.#pairs]) this.#reset(p);
    if (was === "stall" && mode !== "stall") for (const p of this.#pairs) for (const d of p.dirs) d.release();
  }

  async close(): Promise<void> {
    for (const p of [...this.#pairs]) this.#reset(p);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(a: net.Socket): void {
    this.accepted++;
    if (this.mode === "reset") {
      a.resetAndDestroy();
      return;
    }
    const b = net.connect({ port: this.targetPort, host: this.targetHost, allowHalfOpen: true });
    a.setNoDelay(true);
    b.setNoDelay(true);
    const pair = { a, b, dirs: [] as Direction[] };
    pair.dirs.push(new Direction(a, b, this), new Direction(b, a, this));
    this.#pairs.add(pair);
    if (this.mode === "stall") {
      a.pause();
      b.pause();
    }
    const drop = (): void => {
      if (!this.#pairs.delete(pair)) return;
      // A real peer sees a reset when the other end's host is gone: pass it on as one.
      if (!a.destroyed) a.resetAndDestroy();
      if (!b.destroyed) b.resetAndDestroy();
    };
    a.on("error", drop);
    b.on("error", drop);
    a.on("close", drop);
    b.on("close", drop);
  }

  #reset(p: { a: net.Socket; b: net.Socket; dirs: Direction[] }): void {
    this.#pairs.delete(p);
    if (!p.a.destroyed) p.a.resetAndDestroy();
    if (!p.b.destroyed) p.b.resetAndDestroy();
  }
}
