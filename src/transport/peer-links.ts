import net from "node:net";
import type { Logger } from "pino";
import {
  DsyncError,
  ErrorCode,
  Op,
  PROTOCOL_VERSION,
  parsePeerHello,
  type Envelope,
  type PeerHelloReply,
  type PeerStatus,
} from "../../protocol/index.ts";
import { backoffDelayMs, type BackoffOptions } from "./backoff.ts";
import { dial, parseAddr } from "./dial.ts";
import type { FrameObserver } from "./framed-socket.ts";
import { tokensEqual } from "../security/token.ts";
import { RpcConnection } from "./rpc-connection.ts";
import { listenOn } from "./listen.ts";
import { TlsFront, connectTls, namesNode, certificateNames } from "../security/tls.ts";
import type { TlsMaterial } from "../security/tls.ts";
import type { TLSSocket } from "node:tls";

export interface PeerLinksOptions {
  readonly selfId: string;
  readonly selfClientAddr: string;
  readonly host: string;
  readonly port: number;
  readonly peers: readonly { id: string; addr: string }[];
  readonly maxFrameBytes: number;
  readonly token: string | null;
  /** Mutual TLS between peers: each side's certificate must name its node id. */
  readonly tls?: TlsMaterial | null;
  readonly observer?: FrameObserver;
  /**
   * This node's cluster id, exchanged in PEER_HELLO: a peer presenting another one is refused
   * (WRONG_CLUSTER); a node that has none yet (a joining one) adopts the first it is shown.
   */
  readonly cluster?: { readonly id: string | null; adopt(id: string): void };
  readonly log: Logger;
  /** A one-way envelope (id 0) from a peer, e.g. a batch of Raft messages. */
  readonly onMessage: (from: string, env: Envelope) => void;
  /** A request from a peer; resolve with the reply body or reject with a DsyncError. */
  readonly onRequest?: (from: string, env: Envelope) => Promise<unknown>;
  /** Called when a link to `peer` comes up or goes down. */
  readonly onLinkChange?: (peer: string, up: boolean) => void;
}

interface Peer {
  readonly id: string;
  addr: string;
  clientAddr: string | null;
  conn: RpcConnection | null;
  attempt: number;
  timer: NodeJS.Timeout | null;
  removed: boolean;
}

const HANDSHAKE_TIMEOUT_MS = 2000;
/**
 * Peers retry sooner and cap lower than clients: a link that stays down a whole second delays
 * the first election of a cluster whose nodes start a moment apart.
 */
const PEER_BACKOFF: BackoffOptions = { baseMs: 20, maxMs: 500, factor: 2 };

/**
 * Links to every peer over the peer port: one connection per pair (the node with the smaller id
 * dials, the other accepts), a PEER_HELLO handshake carrying node ids and client addresses, and
 * reconnects with capped exponential backoff and jitter.
 */
export class PeerLinks {
  readonly #opts: PeerLinksOptions;
  readonly #peers = new Map<string, Peer>();
  readonly #server: net.Server;
  readonly #inbound = new Set<RpcConnection>();
  #stopped = false;
  readonly #tlsWarnedAt = new Map<string, number>();
  readonly #tls: TlsFront | null;

  constructor(opts: PeerLinksOptions) {
    this.#opts = opts;
    this.#server = net.createServer((s) => (this.#stopped ? s.destroy() : this.#tls ? this.#tls.accept(s) : this.#accept(s)));
    // Peers always present a certificate, and it must be signed by TLS_CA.
    this.#tls = opts.tls
      ? new TlsFront(opts.tls, { requestCert: true, rejectUnauthorized: true }, {
          secure: (t) => (this.#stopped ? t.destroy() : this.#accept(t)),
          plaintext: {
            error: new DsyncError(ErrorCode.TLS_REQUIRED, "the peer port speaks TLS: configure TLS_CERT, TLS_KEY and TLS_CA on every node"),
            refused: (source) => this.#warnLink(source, "a peer connected in plaintext to the TLS peer port (is TLS configured on every node?)"),
          },
          failed: (source, reason) => this.#warnLink(source, `refused a peer connection: ${reason} (a certificate not signed by TLS_CA?)`),
        })
      : null;
    for (const p of opts.peers) this.addPeer(p.id, p.addr);
  }

  listen(): Promise<void> {
    return listenOn(this.#server, this.#opts.port, this.#opts.host);
  }


  /** Starts tracking `id`; dials it if this node has the smaller id. */
  addPeer(id: string, addr: string): void {
    const existing = this.#peers.get(id);
    if (existing) {
      existing.addr = addr;
      return;
    }
    const peer: Peer = { id, addr, clientAddr: null, conn: null, attempt: 0, timer: null, removed: false };
    this.#peers.set(id, peer);
    if (this.#isDialer(id)) this.#scheduleDial(peer, 0);
  }

  /**
   * Dials `id` now, even where the other side is the one that dials (it may have dropped this
   * node from its peers, e.g. after removing it): a node that must ask the others something.
   */
  connect(id: string): void {
    const peer = this.#peers.get(id);
    if (!peer || peer.conn || peer.timer || this.#stopped) return;
    void this.#dial(peer);
  }

  /** Forgets `id` and closes its link. */
  removePeer(id: string): void {
    const peer = this.#peers.get(id);
    if (!peer) return;
    peer.removed = true;
    if (peer.timer) clearTimeout(peer.timer);
    peer.conn?.close();
    this.#peers.delete(id);
  }

  /** Sends a one-way envelope to `id`; returns false (and drops it) when the link is down. */
  send(id: string, type: number, body: unknown): boolean {
    const conn = this.#peers.get(id)?.conn;
    if (!conn || conn.isClosed) return false;
    conn.send(type, body);
    return true;
  }

  /** Sends a request to `id` and resolves with its reply. @throws UNAVAILABLE when the link is down. */
  request(id: string, type: number, body: unknown, timeoutMs: number): Promise<unknown> {
    const conn = this.#peers.get(id)?.conn;
    if (!conn || conn.isClosed) return Promise.reject(new DsyncError(ErrorCode.UNAVAILABLE, `no link to node ${id}`));
    return conn.request(type, body, timeoutMs);
  }

  isConnected(id: string): boolean {
    const conn = this.#peers.get(id)?.conn;
    return !!conn && !conn.isClosed;
  }

  /** The client address a peer announced, or null before first contact. */
  clientAddrOf(id: string): string | null {
    return this.#peers.get(id)?.clientAddr ?? null;
  }

  status(): PeerStatus[] {
    return [...this.#peers.values()].map((p) => ({ id: p.id, peerAddr: p.addr, clientAddr: p.clientAddr, connected: !!p.conn && !p.conn.isClosed }));
  }

  async close(): Promise<void> {
    this.#stopped = true;
    for (const id of [...this.#peers.keys()]) this.removePeer(id);
    for (const c of this.#inbound) c.close();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #isDialer(id: string): boolean {
    return this.#opts.selfId < id;
  }

  #scheduleDial(peer: Peer, delayMs: number): void {
    if (this.#stopped || peer.removed) return;
    peer.timer = setTimeout(() => {
      peer.timer = null;
      void this.#dial(peer);
    }, delayMs);
    peer.timer.unref();
  }

  async #dial(peer: Peer): Promise<void> {
    let conn: RpcConnection | null = null;
    try {
      const raw = await dial(peer.addr, HANDSHAKE_TIMEOUT_MS);
      const tls = this.#opts.tls;
      let socket: net.Socket = raw;
      if (tls) {
        try {
          socket = await connectTls(raw, peer.addr, parseAddr(peer.addr).host, tls.connectOptions(), peer.id, HANDSHAKE_TIMEOUT_MS);
        } catch (err) {
          raw.destroy();
          this.#warnLink(peer.addr, `cannot link to node ${peer.id}: ${(err as Error).message}`);
          throw err;
        }
      }
      conn = this.#wrap(socket);
      // The acceptor may send right after its PEER_HELLO reply, in the same chunk: keep what
      // arrives before the link is attached instead of dropping it.
      const early: Envelope[] = [];
      conn.onPush((env) => early.push(env));
      const reply = (await conn.request(
        Op.PEER_HELLO,
        { v: PROTOCOL_VERSION, nodeId: this.#opts.selfId, clientAddr: this.#opts.selfClientAddr, ...(this.#opts.token && { token: this.#opts.token }), ...this.#clusterField() },
        HANDSHAKE_TIMEOUT_MS,
      )) as PeerHelloReply;
      if (reply.nodeId !== peer.id) throw new Error(`node at ${peer.addr} says it is ${reply.nodeId}, expected ${peer.id}`);
      this.#checkCluster(reply.cluster, reply.nodeId, peer.addr);
      if (this.#stopped || peer.removed) {
        conn.close();
        return;
      }
      peer.attempt = 0;
      this.#attach(peer, conn, reply.clientAddr);
      for (const env of early) this.#onEnvelope(peer.id, conn, env);
    } catch (err) {
      conn?.close();
      const delay = backoffDelayMs(peer.attempt++, PEER_BACKOFF, Math.random);
      if (peer.attempt === 1 || peer.attempt % 20 === 0) {
        this.#opts.log.debug({ peer: peer.id, addr: peer.addr, err: (err as Error).message, retryInMs: Math.round(delay) }, "peer dial failed");
      }
      // A one-off dial (connect()) by the side that normally accepts is not retried.
      if (this.#isDialer(peer.id)) this.#scheduleDial(peer, delay);
    }
  }

  #wrap(socket: net.Socket): RpcConnection {
    return new RpcConnection(socket, { maxFrameBytes: this.#opts.maxFrameBytes, requestTimeoutMs: 5000, ...(this.#opts.observer && { observer: this.#opts.observer }) });
  }

  #attach(peer: Peer, conn: RpcConnection, clientAddr: string): void {
    if (peer.conn && peer.conn !== conn) peer.conn.close();
    peer.conn = conn;
    peer.clientAddr = clientAddr;
    conn.onPush((env) => this.#onEnvelope(peer.id, conn, env));
    conn.onClose(() => {
      if (peer.conn !== conn) return;
      peer.conn = null;
      this.#opts.log.info({ peer: peer.id, addr: peer.addr }, "peer link down");
      this.#opts.onLinkChange?.(peer.id, false);
      if (this.#isDialer(peer.id)) this.#scheduleDial(peer, backoffDelayMs(peer.attempt++, PEER_BACKOFF, Math.random));
    });
    this.#opts.log.info({ peer: peer.id, addr: peer.addr }, "peer link up");
    this.#opts.onLinkChange?.(peer.id, true);
  }

  #onEnvelope(from: string, conn: RpcConnection, env: Envelope): void {
    if (env.id === 0) {
      this.#opts.onMessage(from, env);
      return;
    }
    const handler = this.#opts.onRequest;
    if (!handler) {
      conn.framed.sendError(env.id, new DsyncError(ErrorCode.UNKNOWN_TYPE, `peer request type ${env.type} is not handled`));
      return;
    }
    handler(from, env).then(
      (body) => conn.framed.send({ type: Op.REPLY, id: env.id, body: body ?? null }),
      (err: unknown) =>
        conn.framed.sendError(env.id, err instanceof DsyncError ? err : new DsyncError(ErrorCode.INTERNAL, "internal error", { cause: err })),
    );
  }

  #clusterField(): { cluster?: string } {
    const id = this.#opts.cluster?.id ?? null;
    return id === null ? {} : { cluster: id };
  }

  /** Refuses a peer of another cluster; a node without a cluster id yet adopts the peer's. */
  #checkCluster(theirs: string | undefined, nodeId: string, addr: string): void {
    const cluster = this.#opts.cluster;
    if (!cluster || theirs === undefined) return;
    if (cluster.id === null) {
      cluster.adopt(theirs);
      return;
    }
    if (theirs !== cluster.id) {
      const why = `node ${nodeId} belongs to cluster ${theirs}, this node to ${cluster.id} (a cluster restored from a backup gets a new id)`;
      this.#warnLink(addr, `refused a peer link: ${why}`);
      throw new DsyncError(ErrorCode.WRONG_CLUSTER, why);
    }
  }

  /** A TLS or identity problem between nodes, logged at most once a minute per address (a dialer retries often). */
  #warnLink(addr: string, msg: string): void {
    const now = Date.now();
    if (now - (this.#tlsWarnedAt.get(addr) ?? -Infinity) < 60_000) return;
    this.#tlsWarnedAt.set(addr, now);
    this.#opts.log.warn({ addr }, msg);
  }

  #accept(socket: net.Socket): void {
    const tls = this.#opts.tls;
    const conn = this.#wrap(socket);
    this.#inbound.add(conn);
    const timer = setTimeout(() => conn.close(), HANDSHAKE_TIMEOUT_MS);
    conn.onClose(() => {
      clearTimeout(timer);
      this.#inbound.delete(conn);
    });
    conn.onPush((env) => {
      if (env.type !== Op.PEER_HELLO || env.id === 0) {
        conn.framed.sendError(env.id, new DsyncError(ErrorCode.HANDSHAKE_REQUIRED, "the peer port expects PEER_HELLO first"));
        conn.close();
        return;
      }
      clearTimeout(timer);
      try {
        const hello = parsePeerHello(env.body);
        if (hello.v !== PROTOCOL_VERSION) throw new DsyncError(ErrorCode.UNSUPPORTED_VERSION, `peer speaks protocol ${hello.v}, this node ${PROTOCOL_VERSION}`);
        if (this.#opts.token !== null && !tokensEqual(hello.token, this.#opts.token)) throw new DsyncError(ErrorCode.UNAUTHENTICATED, "wrong cluster token");
        if (hello.nodeId === this.#opts.selfId) throw new DsyncError(ErrorCode.INVALID_ARGUMENT, `peer claims this node's own id ${hello.nodeId}`);
        this.#checkCluster(hello.cluster, hello.nodeId, socket.remoteAddress ?? "?");
        if (tls) {
          const cert = (socket as TLSSocket).getPeerCertificate();
          if (!namesNode(cert, hello.nodeId)) {
            const why = `peer says it is node ${hello.nodeId} but its certificate names ${certificateNames(cert).join(", ") || "nobody"}`;
            this.#warnLink(socket.remoteAddress ?? "?", `refused a peer: ${why}`);
            throw new DsyncError(ErrorCode.UNAUTHENTICATED, why);
          }
        }
        let peer = this.#peers.get(hello.nodeId);
        if (!peer) {
          // A node not in PEER_NODES (e.g. one being added): track it so replies can reach it.
          const { host } = parseAddr(hello.clientAddr);
          this.addPeer(hello.nodeId, `${host}:0`);
          peer = this.#peers.get(hello.nodeId)!;
        }
        const reply: PeerHelloReply = { nodeId: this.#opts.selfId, clientAddr: this.#opts.selfClientAddr, ...this.#clusterField() };
        conn.framed.send({ type: Op.REPLY, id: env.id, body: reply });
        this.#inbound.delete(conn);
        this.#attach(peer, conn, hello.clientAddr);
      } catch (err) {
        const e = err instanceof DsyncError ? err : new DsyncError(ErrorCode.INVALID_ARGUMENT, (err as Error).message);
        conn.framed.sendError(env.id, e);
        conn.close();
      }
    });
  }
}
