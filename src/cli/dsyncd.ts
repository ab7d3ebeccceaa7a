import { installClockControl } from "../host/wall-clock.ts";
import { Command, Option } from "commander";
import { ConfigError, configFromEnv, configFromFile, resolveConfig, type RawConfig } from "../config/node-config.ts";
import { DsyncNode, EXIT_STORAGE_FAILURE } from "../server/node.ts";
import { FailpointConfigError, envFailpoints, ioFailureDetails } from "../storage/index.ts";
import { BackupFileError, RestoreError, restoreDataDir } from "../backup/restore.ts";
import { formatAddr } from "../transport/dial.ts";
import type { NodeConfig } from "../config/node-config.ts";

const program = new Command("dsyncd")
  .description(
    "The dsync daemon: one node of a dsync cluster.\n\n" +
      "Settings come from flags, then environment variables, then --config FILE (JSON), then defaults.\n" +
      "Example (first of three local nodes):\n" +
      "  dsyncd --node-id node_0 --client-port 7001 --peer-port 7101 --http-port 7201 \\\n" +
      "         --peers node_1:127.0.0.1:7102,node_2:127.0.0.1:7103 --data-dir ./data/node_0",
  )
  .option("-c, --config <file>", "JSON file with settings (keys as in README: nodeId, clientPort, peers …)")
  .option("--node-id <id>", "unique node name, e.g. node_0 [env NODE_ID]")
  .option("--host <addr>", "address to bind and advertise [env NODE_HOST] (default 127.0.0.1)")
  .option("--client-port <port>", "port for clients and the CLI [env API_PORT] (default 7000)")
  .option("--peer-port <port>", "port for other nodes [env NODE_PORT] (default 7100)")
  .option("--http-port <port>", "port for GET /health and GET /metrics [env HTTP_PORT] (default 7200)")
  .option("--peers <list>", "other nodes as id:host:peerPort,… [env PEER_NODES]")
  .option("--data-dir <dir>", "where this node keeps its log and snapshots [env DATA_DIR] (default ./data/<node-id>)")
  .option("--redis-url <url>", "optional Redis backing store for the cache [env REDIS_URL]")
  .addOption(new Option("--log-level <level>", "log verbosity [env LOG_LEVEL] (default info)").choices(["trace", "debug", "info", "warn", "error", "fatal", "silent"]))
  .option("--cache-capacity <n>", "cache entries per node [env CACHE_CAPACITY] (default 100)")
  .option("--auth-token-file <file>", "file holding the shared secret clients and peers must present [env AUTH_TOKEN_FILE, or AUTH_TOKEN itself]")
  .option("--tls-cert <file>", "this node's certificate (PEM) for the client and peer ports [env TLS_CERT]")
  .option("--tls-key <file>", "its private key (PEM) [env TLS_KEY]")
  .option("--tls-ca <file>", "the CA that signs nodes' (and clients') certificates [env TLS_CA]")
  .option("--roles-file <file>", "roles, grants and rates (JSON) [env AUTH_ROLES_FILE]")
  .option("--jwt-secret-file <file>", "HS256 secret that signs tokens [env AUTH_JWT_SECRET_FILE]")
  .option("--jwt-public-key-file <file>", "public key (PEM) that verifies RS/ES/EdDSA tokens [env AUTH_JWT_PUBLIC_KEY_FILE]")
  .option("--audit-log <file>", "append an audit record (JSON line) per security event [env AUDIT_LOG]")
  .option("--max-frame-bytes <n>", "largest frame accepted [env MAX_FRAME_BYTES] (default 16 MiB)")
  .option("--election-timeout-ms <ms>", "Raft election timeout base [env ELECTION_TIMEOUT_MS] (default 150)")
  .option("--heartbeat-interval-ms <ms>", "Raft heartbeat interval [env HEARTBEAT_INTERVAL_MS] (default 50)")
  .option("--idle-beat-interval-ms <ms>", "the nodes' liveness beat while all their groups are idle; a peer silent for three beats is down [env IDLE_BEAT_INTERVAL_MS] (default 500)")
  .option("--snapshot-threshold <n>", "entries between snapshots [env SNAPSHOT_THRESHOLD] (default 1000)")
  .option("--queue-partitions <n>", "queue partitions (Raft groups) of a new cluster; 0 = two per node [env QUEUE_PARTITIONS] (default 0)")
  .option("--queue-virtual-nodes <n>", "virtual nodes per partition on the queue ring [env QUEUE_VIRTUAL_NODES] (default 150)")
  .option("--replication-factor <n>", "replicas of each queue partition in a new cluster [env REPLICATION_FACTOR] (default 3)")
  .option("--replace-dead-after-ms <ms>", "re-create the replicas of a node unreachable this long on other nodes; 0 = never [env REPLACE_DEAD_AFTER_MS] (default 300000)")
  .option("--zone <name>", "this node's zone (rack, availability zone): a partition's replicas go to distinct zones [env ZONE]")
  .option("--space-budget-bytes <n>", "queue payload this node's replicas may hold before enqueues are refused with NO_SPACE [env SPACE_BUDGET_BYTES] (default 1/8 of memory)")
  .option("--queue-ack-linger-ms <ms>", "how long a subscription's ack may wait to share a log entry with the partition's next write; 0 = never [env QUEUE_ACK_LINGER_MS] (default 2)")
  .option("--join", "start as a new, empty member of an existing cluster; then run `dsync admin add-node` [env JOIN=true]")
  .option("--restore-from <file>", "seed this node's empty data dir from a backup (dsync admin backup), then exit; run it on every node of the new cluster, then start them as usual")
  .option("--no-fsync", "do not fsync the log (unsafe: for throwaway test clusters only) [env FSYNC=false]")
  .action(async (opts: Record<string, string | boolean | undefined>) => {
    const flags: RawConfig = {
      nodeId: opts.nodeId,
      host: opts.host,
      clientPort: opts.clientPort,
      peerPort: opts.peerPort,
      httpPort: opts.httpPort,
      peers: opts.peers,
      dataDir: opts.dataDir,
      redisUrl: opts.redisUrl,
      logLevel: opts.logLevel,
      cacheCapacity: opts.cacheCapacity,
      authTokenFile: opts.authTokenFile,
      tlsCert: opts.tlsCert,
      tlsKey: opts.tlsKey,
      tlsCa: opts.tlsCa,
      rolesFile: opts.rolesFile,
      jwtSecretFile: opts.jwtSecretFile,
      jwtPublicKeyFile: opts.jwtPublicKeyFile,
      auditLog: opts.auditLog,
      maxFrameBytes: opts.maxFrameBytes,
      electionTimeoutMs: opts.electionTimeoutMs,
      heartbeatIntervalMs: opts.heartbeatIntervalMs,
      idleBeatIntervalMs: opts.idleBeatIntervalMs,
      snapshotThreshold: opts.snapshotThreshold,
      queuePartitions: opts.queuePartitions,
      queueVirtualNodes: opts.queueVirtualNodes,
      replicationFactor: opts.replicationFactor,
      replaceDeadAfterMs: opts.replaceDeadAfterMs,
      zone: opts.zone,
      spaceBudgetBytes: opts.spaceBudgetBytes,
      queueAckLingerMs: opts.queueAckLingerMs,
      // commander sets fsync=true unless --no-fsync; only an explicit flag should override env/file.
      fsync: opts.fsync === false ? false : undefined,
      join: opts.join === true ? true : undefined,
    };
    let config;
    let failpoints;
    try {
      failpoints = envFailpoints(); // An invalid DSYNC_FAILPOINTS is refused here, not ignored.
      const file = typeof opts.config === "string" ? configFromFile(opts.config) : {};
      config = resolveConfig(file, configFromEnv(process.env), flags);
    } catch (err) {
      if (err instanceof ConfigError || err instanceof FailpointConfigError) {
        process.stderr.write(`dsyncd: ${err.message}\n\nRun dsyncd --help for every setting.\n`);
        process.exit(2);
      }
      throw err;
    }
    if (typeof opts.restoreFrom === "string") await restore(opts.restoreFrom, config);
    // Fail-stop on a storage failure: after EIO on fsync the kernel may have dropped the dirty
    // pages, so neither retrying nor serving on is safe. One line saying what failed, then exit;
    // nothing else runs in between (this is called synchronously, before any waiter is told).
    const onFatal = (err: Error): void => {
      const io = ioFailureDetails(err);
      const what = io.code !== null ? `${io.code} on ${io.syscall ?? "I/O"} of ${io.file ?? config.dataDir}` : err.message;
      node.log.fatal({ err, code: io.code, syscall: io.syscall, file: io.file, exitCode: EXIT_STORAGE_FAILURE }, `storage failure: ${what}; stopping the node (fail-stop, exit ${EXIT_STORAGE_FAILURE})`);
      process.exit(EXIT_STORAGE_FAILURE);
    };
    let node: DsyncNode;
    try {
      node = new DsyncNode(config, { onFatal });
    } catch (err) {
      // Unreadable certificates, an invalid roles file, a bad token key: say which and stop.
      process.stderr.write(`dsyncd: ${(err as Error).message}\n`);
      process.exit(2);
    }
    if (failpoints.faults.length > 0 || failpoints.recordSynced) node.log.warn({ failpoints: process.env.DSYNC_FAILPOINTS }, "DSYNC_FAILPOINTS is set: disk faults will be injected (testing only)");
    installClockControl(process.env, node.log);
    try {
      await node.start();
    } catch (err) {
      node.log.fatal({ err }, "cannot start");
      process.stderr.write(`dsyncd: cannot start: ${(err as Error).message}\n`);
      process.exit(1);
    }
    let firstSignalAt = 0;
    const shutdown = (signal: string): void => {
      if (firstSignalAt > 0) {
        // Ctrl-C reaches the whole process group and a supervisor may add its own SIGTERM: only
        // a signal sent well after the first means "stop now".
        if (Date.now() - firstSignalAt < 2000) return;
        node.log.warn({ signal }, "second signal: exiting now");
        process.exit(130);
      }
      firstSignalAt = Date.now();
      node.log.info({ signal }, "shutting down");
      const force = setTimeout(() => {
        node.log.error("graceful shutdown took longer than 10 s: exiting");
        process.exit(1);
      }, 10_000);
      force.unref();
      node.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          node.log.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.on("SIGHUP", () => node.security.reload());
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
  });

await program.parseAsync(process.argv);

/** `--restore-from`: writes the data dir from a backup and exits (0 when done, 2 when refused). */
async function restore(file: string, config: NodeConfig): Promise<never> {
  const members = new Map<string, string>([[config.nodeId, formatAddr(config.host, config.peerPort)], ...config.peers.map((p): [string, string] => [p.id, p.addr])]);
  try {
    const r = await restoreDataDir(file, { dataDir: config.dataDir, members, fsync: config.fsync });
    const taken = new Date(r.source.takenAt).toISOString();
    process.stdout.write(
      `restored ${config.dataDir} from ${file} (sha256 ${r.sha256.slice(0, 16)}…): taken ${taken} on ${r.source.node} of cluster ${r.source.clusterId}\n` +
        `  ${r.groups.length} Raft groups, ${r.groups.reduce((n, g) => n + g.bytes, 0)} bytes; voters now ${[...members.keys()].sort().join(", ")}; new cluster id ${r.clusterId}\n` +
        `  start every node of the new cluster the usual way (without --restore-from)\n`,
    );
    process.exit(0);
  } catch (err) {
    if (err instanceof BackupFileError || err instanceof RestoreError) {
      process.stderr.write(`dsyncd: cannot restore: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
