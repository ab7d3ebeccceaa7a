import { mkdir } from "node:fs/promises";
import { Op, asFields, type NodeStatus, type PingReply } from "../../protocol/index.ts";
import { PeerLinks } from "../transport/peer-links.ts";
import { ClientListener } from "./client-listener.ts";
import { clientAddrOf, type NodeConfig } from "./config.ts";
import { HttpSidePort, type HealthReport } from "./http-side-port.ts";
import { createLogger, type Logger } from "./logger.ts";
import { NodeMetrics } from "./metrics.ts";
import { RequestRouter } from "./request-router.ts";

export const SERVER_VERSION = "dsyncd/0.1.0";

/** What the consensus layer tells the rest of the node about itself. */
export interface ConsensusView {
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  /** Whether this node can serve requests now (it knows a leader with a quorum). */
  readonly serving: boolean;
}

/**
 * One dsyncd process: the client port, the peer port, the HTTP side port and the layers behind
 * them. The only place that wires real sockets, clocks and files together.
 */
export class DsyncNode {
  readonly config: NodeConfig;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  readonly router: RequestRouter;
  readonly peers: PeerLinks;
  readonly #clients: ClientListener;
  readonly #http: HttpSidePort;
  readonly #startedAt = Date.now();
  #consensus: () => ConsensusView = () => ({ role: "standalone", term: 0, leader: null, commitIndex: 0, appliedIndex: 0, serving: true });
  #stopping: Promise<void> | null = null;

  constructor(config: NodeConfig, opts: { log?: Logger } = {}) {
    this.config = config;
    this.log = opts.log ?? createLogger(config.nodeId, config.logLevel);
    this.metrics = new NodeMetrics(config.nodeId);
    this.router = new RequestRouter(this.metrics, this.log);
    this.peers = new PeerLinks({
      selfId: config.nodeId,
      selfClientAddr: clientAddrOf(config),
      host: config.host,
      port: config.peerPort,
      peers: config.peers,
      maxFrameBytes: config.maxFrameBytes,
      token: config.authToken,
      observer: this.metrics.observer("peer"),
      log: this.log,
      onMessage: () => {},
      onLinkChange: () => this.metrics.peersConnected.set(this.peers.status().filter((p) => p.connected).length),
    });
    this.#clients = new ClientListener(
      {
        host: config.host,
        port: config.clientPort,
        maxFrameBytes: config.maxFrameBytes,
        authToken: config.authToken,
        hello: () => {
          const c = this.#consensus();
          return { nodeId: config.nodeId, leader: c.leader, leaderAddr: this.#leaderAddr(c.leader), server: SERVER_VERSION };
        },
      },
      this.router,
      this.metrics,
      this.log,
    );
    this.#http = new HttpSidePort(config.host, config.httpPort, () => this.health(), this.metrics.registry);
    this.router.register(Op.PING, (body): PingReply => {
      asFields(body, "PING");
      return { nodeId: config.nodeId };
    });
    this.router.register(Op.STATUS, (body): NodeStatus => {
      asFields(body, "STATUS");
      return this.status();
    });
  }

  /** Installs the consensus layer's view (role, term, leader, indexes). */
  setConsensusView(view: () => ConsensusView): void {
    this.#consensus = view;
  }

  async start(): Promise<void> {
    await mkdir(this.config.dataDir, { recursive: true });
    await this.peers.listen();
    await this.#clients.listen();
    await this.#http.listen();
    this.log.info(
      { clientAddr: clientAddrOf(this.config), peerPort: this.config.peerPort, httpPort: this.config.httpPort, peers: this.config.peers.map((p) => p.id), dataDir: this.config.dataDir },
      "dsyncd started",
    );
  }

  /** Graceful stop: refuse new connections, flush replies, close links. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.log.info("dsyncd stopping");
      await this.#clients.close();
      await this.peers.close();
      await this.#http.close();
      this.log.info("dsyncd stopped");
    })();
    return this.#stopping;
  }

  status(): NodeStatus {
    const c = this.#consensus();
    return {
      nodeId: this.config.nodeId,
      clientAddr: clientAddrOf(this.config),
      role: c.role,
      term: c.term,
      leader: c.leader,
      leaderAddr: this.#leaderAddr(c.leader),
      commitIndex: c.commitIndex,
      appliedIndex: c.appliedIndex,
      uptimeMs: Date.now() - this.#startedAt,
      serving: c.serving && this.#stopping === null,
      peers: this.peers.status(),
    };
  }

  health(): HealthReport {
    const s = this.status();
    return { status: s.serving ? "serving" : "not_serving", nodeId: s.nodeId, role: s.role, term: s.term, leader: s.leader, uptimeMs: s.uptimeMs };
  }

  #leaderAddr(leader: string | null): string | null {
    if (leader === null) return null;
    if (leader === this.config.nodeId) return clientAddrOf(this.config);
    return this.peers.clientAddrOf(leader);
  }
}
