import { mkdir } from "node:fs/promises";
import { Op, UnavailableError, UnknownTypeError, asFields, isKnownOp, opName, type AdminDrainReply, type Envelope, type NodeStatus, type PingReply } from "../../protocol/index.ts";
import { ConfChangeType } from "../raft/index.ts";
import { ClusterMachine } from "../services/cluster/machine/cluster-machine.ts";
import { foundingGroup0 } from "../services/cluster/machine/voter-target.ts";
import { PeerLinks } from "../transport/peer-links.ts";
import { ClientListener } from "./client-listener.ts";
import { clientAddrOf, type NodeConfig } from "../config/node-config.ts";
import { HttpSidePort, type HealthReport } from "./http-side-port.ts";
import { createLogger, type Logger } from "../host/logger.ts";
import { NodeMetrics } from "../host/metrics.ts";
import { Proposer } from "../host/proposer.ts";
import type { RaftGroup } from "../host/raft-group.ts";
import { RaftHost } from "../host/raft-host.ts";
import { RequestRouter } from "../host/request-router.ts";
import { encodeCommand } from "../services/command-codec.ts";
import type { QueueLayout } from "../services/queue/machine/layout.ts";
import type { Handlers, PeerHandler, Service } from "../host/service.ts";
import { NodeSecurity } from "../security/node-security.ts";
import { ClusterIdentity } from "../host/cluster-id.ts";
import { nodeServices } from "../services/node-services.ts";

export const SERVER_VERSION = "dsyncd/0.1.0";

/** How long a graceful stop waits for client requests in flight (a commit after a leader change). */
const CLIENT_DRAIN_MS = 3000;

/**
 * dsyncd's exit status after a storage failure (EIO/ENOSPC on a WAL write or fsync): fail-stop,
 * like etcd's panic on a failed fsync. 70 is EX_SOFTWARE of sysexits(3).
 */
export const EXIT_STORAGE_FAILURE = 70;

/** What the consensus layer tells the rest of the node about itself. */
interface ConsensusView {
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
  /** The cluster this node's data dir belongs to (checked on every peer link). */
  readonly cluster: ClusterIdentity;
  readonly #clients: ClientListener;
  readonly security: NodeSecurity;
  readonly #http: HttpSidePort;
  readonly #startedAt = Date.now();
  readonly machine: ClusterMachine;
  #host: RaftHost | null = null;
  #group0: RaftGroup | null = null;
  #stopping: Promise<void> | null = null;
  #draining = false;
  /** Another member said this node was removed from the cluster (while it was down). */
  #removed = false;
  readonly #onFatal: ((err: Error) => void) | undefined;

  /** `onFatal`: a storage failure this node cannot survive; dsyncd exits there (fail-stop). */
  constructor(config: NodeConfig, opts: { log?: Logger; onFatal?: (err: Error) => void } = {}) {
    this.config = config;
    this.#onFatal = opts.onFatal;
    this.log = opts.log ?? createLogger(config.nodeId, config.logLevel);
    this.metrics = new NodeMetrics(config.nodeId);
    this.router = new RequestRouter(this.metrics, this.log);
    this.security = new NodeSecurity(config, this.metrics.registry, this.log);
    this.cluster = ClusterIdentity.load(config.dataDir, config.join ? [] : [config.nodeId, ...config.peers.map((p) => p.id)], config.join);
    this.peers = new PeerLinks({
      selfId: config.nodeId,
      selfClientAddr: clientAddrOf(config),
      host: config.host,
      port: config.peerPort,
      peers: config.peers,
      maxFrameBytes: config.maxFrameBytes,
      token: config.authToken,
      tls: this.security.tls,
      cluster: this.cluster,
      observer: this.metrics.observer("peer"),
      log: this.log,
      onMessage: (from, env) => {
        if (env.type === Op.RAFT) this.#host?.onPeerMessage(from, env);
        else this.#peerMessages.get(env.type)?.(from, env);
      },
      onRequest: async (from, env) => {
        const handler = this.#peerRequests.get(env.type);
        if (!handler) {
          // A peer request this version knows arrives before its service registered (a node
          // that just restarted): a transient state, so a retryable error, not UNKNOWN_TYPE.
          if (isKnownOp(env.type)) throw new UnavailableError(`this node is still starting: ${opName(env.type)} is not served yet; retry shortly`);
          throw new UnknownTypeError(`peer request type ${env.type} is not handled`);
        }
        return handler(from, env);
      },
      onLinkChange: (peer, up) => {
        this.metrics.peersConnected.set(this.peers.status().filter((p) => p.connected).length);
        if (!up) this.#host?.peerLinkDown(peer);
      },
    });
    this.#clients = new ClientListener(
      {
        host: config.host,
        port: config.clientPort,
        maxFrameBytes: config.maxFrameBytes,
        tls: this.security.tls,
        hello: () => {
          const c = this.#consensusView();
          return { nodeId: config.nodeId, leader: c.leader, leaderAddr: this.#leaderAddr(c.leader), server: SERVER_VERSION };
        },
      },
      this.router,
      this.security.access,
      this.metrics,
      this.log,
    );
    this.#http = new HttpSidePort(config.host, config.httpPort, () => this.health(), this.metrics.registry, () => this.#refreshGauges(), config.httpTls ? this.security.tls : null);
    this.router.register(Op.PING, (body): PingReply => {
      asFields(body, "PING");
      return { nodeId: config.nodeId };
    });
    this.router.register(Op.ADMIN_DRAIN, (body): Promise<AdminDrainReply> => {
      asFields(body, "ADMIN_DRAIN");
      return this.drain();
    });
    this.router.register(Op.STATUS, (body): NodeStatus => {
      asFields(body, "STATUS");
      return this.status();
    });
    this.machine = new ClusterMachine((id, peerAddr) => {
      if (id !== config.nodeId) this.peers.addPeer(id, peerAddr);
    });
  }

  #proposer: Proposer | null = null;
  readonly #peerRequests = new Map<number, PeerHandler>();
  readonly #peerMessages = new Map<number, (from: string, env: Envelope) => void>();

  /** Serves peer requests of type `op` (services that talk node to node, like FORWARD). */
  onPeerRequest(op: number, handler: PeerHandler): void {
    this.#peerRequests.set(op, handler);
  }

  /** Receives one-way peer messages of type `op` (RAFT is routed to the Raft host). */
  onPeerMessage(op: number, handler: (from: string, env: Envelope) => void): void {
    this.#peerMessages.set(op, handler);
  }
  /** Every service on this node, in the order they are registered and started. */
  #services: Service[] = [];

  /** Group 0, once started. */
  get group0(): RaftGroup | null {
    return this.#group0;
  }

  async start(): Promise<void> {
    await mkdir(this.config.dataDir, { recursive: true });
    await this.security.open();
    const c = this.config;
    const host = await RaftHost.open({
      nodeId: c.nodeId,
      dataDir: c.dataDir,
      fsync: c.fsync,
      // A joining node starts with no membership and learns it from the leader's log.
      voters: c.join ? [] : [c.nodeId, ...c.peers.map((p) => p.id)],
      electionTimeoutMs: c.electionTimeoutMs,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      idleBeatIntervalMs: c.idleBeatIntervalMs,
      snapshotThreshold: c.snapshotThreshold,
      peers: this.peers,
      log: this.log,
      onFatal: this.#onFatal,
      onRoleChange: (group, role) => {
        this.metrics.raftLeaderChanges.labels(String(group)).inc();
        // A drained node hands on any leadership it still wins (an election, the balancer).
        if (this.#draining && role === "leader") setImmediate(() => void this.#handOverLeadership("drained"));
        for (const s of this.#services) s.onRoleChange?.(group, role === "leader");
        if (group === 0 && role === "leader") setImmediate(() => this.#recordQueueLayout());
      },
      onConfChange: (group, cc) => {
        // A node leaves the cluster when it leaves group 0; a partition's replica moving off it does not.
        if (group === 0 && cc.type === ConfChangeType.RemoveNode && cc.node !== c.nodeId) this.peers.removePeer(cc.node);

      },
    });
    this.#host = host;
    const founders = foundingGroup0(c.join ? [] : [c.nodeId, ...c.peers.map((p) => p.id)]);
    this.#group0 = await host.addGroup(0, this.machine, founders.voters, founders.learners);
    const proposer = new Proposer(host, this.peers);
    this.#proposer = proposer;
    this.onPeerRequest(Op.FORWARD, async (_from, env) => proposer.onForward(env));
    this.#services = nodeServices({
      config: c,
      host,
      group0: this.#group0,
      machine: this.machine,
      proposer,
      peers: this.peers,
      metrics: this.metrics,
      log: this.log,
      leaderAddr: (id) => this.#leaderAddr(id),
      clusterId: () => this.cluster.id ?? "unknown",
      // A node leaving the cluster stops serving clients, which move on to the other nodes.
      onLeft: () => void this.drain(),
      onRemoved: () => {
        this.#removed = true;
        this.#draining = true;
        void this.#clients.drain(CLIENT_DRAIN_MS, "this node was removed from the cluster");
      },
    });
    const handlers: Handlers = { client: this.router, peer: (op, h) => this.onPeerRequest(op, h) };
    for (const s of this.#services) s.register(handlers);
    await this.peers.listen();
    await this.#clients.listen();
    await this.#http.listen();
    host.start();
    for (const s of this.#services) s.start?.();
    this.log.info(
      { clientAddr: clientAddrOf(this.config), peerPort: this.config.peerPort, httpPort: this.config.httpPort, peers: this.config.peers.map((p) => p.id), dataDir: this.config.dataDir },
      "dsyncd started",
    );
  }

  /**
   * Graceful stop: hand leadership to another voter (so the cluster does not wait an election
   * timeout), refuse new connections, flush replies, close the log. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.log.info("dsyncd stopping");
      for (const s of this.#services) await s.drain?.();
      await this.#handOverLeadership("before stopping");
      await this.#clients.drain(CLIENT_DRAIN_MS);
      // Forwarded writes from other nodes are not client requests of this node: wait for them too.
      await this.#host?.settle(CLIENT_DRAIN_MS);
      for (const s of this.#services) s.stop?.();
      await this.#clients.close();
      await this.#host?.close();
      await this.peers.close();
      await this.#http.close();
      for (const s of this.#services) await s.close?.();
      await this.security.close();
      this.log.info("dsyncd stopped");
    })();
    return this.#stopping;
  }

  /**
   * Group 0's leader records the queue layout once, from its own configuration; every node then
   * opens the same partitions. A second record (a new leader that had not applied the first yet)
   * is ignored by the machine.
   */
  #recordQueueLayout(): void {
    const g = this.#group0;
    if (!g?.isLeader || this.machine.queueLayout !== null || !this.#proposer) return;
    const conf = g.status().conf;
    const members = [...conf.voters, ...conf.learners].sort();
    if (members.length === 0) return;
    const layout: QueueLayout = {
      partitions: this.config.queuePartitions || 2 * members.length,
      virtualNodes: this.config.queueVirtualNodes,
      members,
      replicationFactor: Math.min(this.config.replicationFactor, members.length),
      cacheOnShards: true,
    };
    this.#proposer
      .propose(0, encodeCommand({ op: "queue.layout", layout }))
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, "could not record the queue layout; the next leader will"));
  }

  /** Moves every leadership this node holds to a caught-up, connected voter; returns what moved. */
  async #handOverLeadership(why: "before stopping" | "drained"): Promise<{ handedOver: number[]; stillLeading: number[] }> {
    if (!this.#host) return { handedOver: [], stillLeading: [] };
    const moved = await this.#host.handOverLeadership((v) => this.peers.isConnected(v), 3 * this.config.electionTimeoutMs);
    if (moved.handedOver.length > 0) this.log.info({ groups: moved.handedOver, stillLeading: moved.stillLeading }, `handed over leadership ${why}`);
    return moved;
  }

  /**
   * ADMIN_DRAIN: the first half of a graceful stop, on an operator's command — services drained,
   * leadership handed over (and handed on again if won back), the client port closed to new
   * connections and requests. The process keeps running (its Raft replicas keep voting and
   * replicating) until it is stopped.
   */
  async drain(): Promise<AdminDrainReply> {
    this.#draining = true;
    for (const s of this.#services) await s.drain?.();
    const moved = await this.#handOverLeadership("drained");
    // After this reply is sent: the listener's drain waits for requests in flight, this one included.
    setImmediate(() => void this.#clients.drain(CLIENT_DRAIN_MS));
    this.log.warn(moved, "drained by an operator: stop this node next");
    return { nodeId: this.config.nodeId, ...moved };
  }

  /** Copies consensus, log and service state into the gauges right before a scrape. */
  #refreshGauges(): void {
    this.#host?.refreshGauges(this.metrics);
    for (const s of this.#services) s.refreshGauges?.();
  }

  #consensusView(): ConsensusView {
    const g = this.#group0;
    if (!g) return { role: "starting", term: 0, leader: null, commitIndex: 0, appliedIndex: 0, serving: false };
    const s = g.status();
    return { role: s.role, term: s.term, leader: s.leader, commitIndex: s.commit, appliedIndex: g.applied, serving: s.leader !== null && g.failure === null };
  }

  status(): NodeStatus {
    const c = this.#consensusView();
    const g = this.#group0?.status();
    const wal = this.#host?.wal.stats();
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
      firstIndex: g?.firstIndex ?? 0,
      lastIndex: g?.lastIndex ?? 0,
      snapshotIndex: g?.snapshotIndex ?? 0,
      logBytes: wal?.bytes ?? 0,
      voters: [...(g?.conf.voters ?? [])],
      learners: [...(g?.conf.learners ?? [])],
      peers: this.peers.status(),
    };
  }

  health(): HealthReport {
    const s = this.status();
    return { status: this.#removed ? "removed" : this.#draining ? "draining" : s.serving ? "serving" : "not_serving", nodeId: s.nodeId, role: s.role, term: s.term, leader: s.leader, uptimeMs: s.uptimeMs };
  }

  #leaderAddr(leader: string | null): string | null {
    if (leader === null) return null;
    if (leader === this.config.nodeId) return clientAddrOf(this.config);
    return this.peers.clientAddrOf(leader);
  }
}
