/**
 * A node's settings: flags, then environment variables (the seeds' names), then a JSON file,
 * then defaults, validated all at once. Its own folder: read by dsyncd (and its
 * restore), the local-cluster script and the tests as well as by the node that runs with it.
 */
import os from "node:os";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { FRAME_BYTES_MAX_DEFAULT } from "../../protocol/index.ts";
import { formatAddr, parseAddr } from "../transport/dial.ts";
import { EVICTION_POLICIES, type EvictionPolicy } from "../services/cache/machine/line-store.ts";
import { CACHE_WRITE_POLICIES, type CacheWritePolicy } from "../services/cache/write-back.ts";
import { LOG_LEVELS, type LogLevel } from "../host/logger.ts";
import { NODE_ID_PATTERN, NODE_ID_RULE } from "../services/cluster/machine/cluster-machine.ts";
import { readSecretFile, securityProblems, type SecuritySettings } from "../security/settings.ts";

/** A peer from PEER_NODES: its node id and the address of its peer port. */
export interface PeerConfig {
  readonly id: string;
  readonly addr: string;
}

/** Everything a dsyncd node is configured with; see README "Configuration" for each knob. */
export interface NodeConfig extends SecuritySettings {
  readonly nodeId: string;
  /** Address the ports bind to and that peers and clients are told to use. */
  readonly host: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly peers: readonly PeerConfig[];
  readonly dataDir: string;
  readonly redisUrl: string | null;
  readonly logLevel: LogLevel;
  readonly cacheCapacity: number;
  /** Bytes of cached keys and values per node (eviction by the policy past either bound). */
  readonly cacheCapacityBytes: number;
  /** Write-back: the longest a write acknowledged from a home's memory stays out of the log (and, with Redis, how soon after it Redis is written). */
  readonly cacheWriteBackMs: number;
  /** write-through (default: a set returns once its partition's log, and Redis if any, has it) or write-back (a set returns from the home's memory; the log has it within cacheWriteBackMs). */
  readonly cacheWritePolicy: CacheWritePolicy;
  /** Which line a node evicts first when over capacity: lru (default), lfu or fifo. */
  readonly cacheEvictionPolicy: EvictionPolicy;
  /** How long a key's home waits for a holder to drop its copy before the write fails (retryable). */
  readonly cacheInvalidationTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  /** The nodes' liveness beat while all their groups are quiet; a peer silent for three of them is down. */
  readonly idleBeatIntervalMs: number;
  readonly snapshotThreshold: number;
  readonly fsync: boolean;
  /** Start with no membership and wait to be added by `dsync admin add-node` (a new node). */
  readonly join: boolean;
  /** Queue partitions (Raft groups) a new cluster is created with; 0 = two per node. */
  readonly queuePartitions: number;
  /** Virtual nodes per partition on the queue ring. */
  readonly queueVirtualNodes: number;
  /** Replicas per queue partition in a new cluster (at most the founding nodes). */
  readonly replicationFactor: number;
  /** A node unreachable this long has its replicas re-created on other nodes; 0 = never. */
  readonly replaceDeadAfterMs: number;
  /** This node's zone (rack, availability zone): a partition's replicas go to distinct zones. */
  readonly zone: string | null;
  /** Bytes of replicated queue payload this node may hold before its space alarm refuses enqueues. */
  readonly spaceBudgetBytes: number;
  /** How long a lingering queue ack (a subscription's) may wait to share a log entry with other writes. */
  readonly queueAckLingerMs: number;
}

export { CACHE_WRITE_POLICIES, type CacheWritePolicy };

export { LOG_LEVELS, type LogLevel };

/** IDLE_BEAT_INTERVAL_MS's default (the benches that compare against it read it from here). */
export const IDLE_BEAT_INTERVAL_MS_DEFAULT = 500;

/** Raised with every problem found in a configuration, one per line. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
}

/** Raw values as strings (env, flags) or JSON values (file), keyed by NodeConfig field. */
export type RawConfig = Partial<Record<keyof NodeConfig, unknown>>;

/** Which environment variable feeds which field. The seeds' names keep their meaning. */
export const ENV_VARS: Readonly<Record<string, keyof NodeConfig>> = {
  NODE_ID: "nodeId",
  NODE_HOST: "host",
  API_PORT: "clientPort",
  NODE_PORT: "peerPort",
  HTTP_PORT: "httpPort",
  PEER_NODES: "peers",
  DATA_DIR: "dataDir",
  REDIS_URL: "redisUrl",
  LOG_LEVEL: "logLevel",
  CACHE_CAPACITY: "cacheCapacity",
  CACHE_CAPACITY_BYTES: "cacheCapacityBytes",
  CACHE_WRITE_BACK_MS: "cacheWriteBackMs",
  CACHE_WRITE_POLICY: "cacheWritePolicy",
  CACHE_EVICTION_POLICY: "cacheEvictionPolicy",
  CACHE_INVALIDATION_TIMEOUT_MS: "cacheInvalidationTimeoutMs",
  AUTH_TOKEN: "authToken",
  AUTH_TOKEN_FILE: "authTokenFile",
  TLS_CERT: "tlsCert",
  TLS_KEY: "tlsKey",
  TLS_CA: "tlsCa",
  HTTP_TLS: "httpTls",
  AUTH_JWT_SECRET_FILE: "jwtSecretFile",
  AUTH_JWT_PUBLIC_KEY_FILE: "jwtPublicKeyFile",
  AUTH_JWT_ISSUER: "jwtIssuer",
  AUTH_JWT_AUDIENCE: "jwtAudience",
  AUTH_ROLES_FILE: "rolesFile",
  AUDIT_LOG: "auditLog",
  AUDIT_LOG_MAX_BYTES: "auditLogMaxBytes",
  AUDIT_WRITES: "auditWrites",
  MAX_FRAME_BYTES: "maxFrameBytes",
  ELECTION_TIMEOUT_MS: "electionTimeoutMs",
  HEARTBEAT_INTERVAL_MS: "heartbeatIntervalMs",
  IDLE_BEAT_INTERVAL_MS: "idleBeatIntervalMs",
  SNAPSHOT_THRESHOLD: "snapshotThreshold",
  QUEUE_PARTITIONS: "queuePartitions",
  QUEUE_VIRTUAL_NODES: "queueVirtualNodes",
  REPLICATION_FACTOR: "replicationFactor",
  REPLACE_DEAD_AFTER_MS: "replaceDeadAfterMs",
  ZONE: "zone",
  SPACE_BUDGET_BYTES: "spaceBudgetBytes",
  QUEUE_ACK_LINGER_MS: "queueAckLingerMs",
  FSYNC: "fsync",
  JOIN: "join",
};

/** Reads the fields set in `env`; REDIS_HOST/REDIS_PORT form a redis URL when REDIS_URL is absent. */
export function configFromEnv(env: NodeJS.ProcessEnv): RawConfig {
  const raw: RawConfig = {};
  for (const [name, field] of Object.entries(ENV_VARS)) {
    const v = env[name];
    if (v !== undefined && v !== "") raw[field] = v;
  }
  if (raw.redisUrl === undefined && env.REDIS_HOST) {
    raw.redisUrl = `redis://${env.REDIS_HOST}:${env.REDIS_PORT || "6379"}`;
  }
  return raw;
}

/** Reads a JSON config file whose keys are NodeConfig field names. @throws ConfigError */
export function configFromFile(file: string): RawConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ConfigError([`cannot read config file ${file}: ${(err as Error).message}`]);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`config file ${file} must hold a JSON object`]);
  }
  return parsed as RawConfig;
}

/**
 * Merges sources (later ones win), applies defaults and validates.
 * @throws ConfigError listing every problem found.
 */
export function resolveConfig(...sources: RawConfig[]): NodeConfig {
  const raw: RawConfig = {};
  for (const s of sources) for (const [k, v] of Object.entries(s)) if (v !== undefined) raw[k as keyof NodeConfig] = v;
  const problems: string[] = [];
  const v = new Reader(raw, problems);
  const nodeId = v.string("nodeId", "NODE_ID", null);
  if (nodeId !== null && !NODE_ID_PATTERN.test(nodeId)) {
    problems.push(`NODE_ID "${nodeId}" must be ${NODE_ID_RULE}`);
  }
  const host = v.string("host", "NODE_HOST", "127.0.0.1") ?? "127.0.0.1";
  const config: NodeConfig = {
    nodeId: nodeId ?? "",
    host,
    clientPort: v.int("clientPort", "API_PORT", 7000, 1, 65535),
    peerPort: v.int("peerPort", "NODE_PORT", 7100, 1, 65535),
    httpPort: v.int("httpPort", "HTTP_PORT", 7200, 1, 65535),
    peers: v.peers(),
    dataDir: path.resolve(v.string("dataDir", "DATA_DIR", null) ?? path.join("data", nodeId ?? "node")),
    redisUrl: v.string("redisUrl", "REDIS_URL", null),
    logLevel: v.logLevel(),
    cacheCapacity: v.int("cacheCapacity", "CACHE_CAPACITY", 100, 1, 100_000_000),
    cacheCapacityBytes: v.int("cacheCapacityBytes", "CACHE_CAPACITY_BYTES", 64 * 1024 * 1024, 1024, 64 * 1024 * 1024 * 1024),
    cacheWriteBackMs: v.int("cacheWriteBackMs", "CACHE_WRITE_BACK_MS", 100, 0, 60_000),
    cacheWritePolicy: v.oneOf("cacheWritePolicy", "CACHE_WRITE_POLICY", CACHE_WRITE_POLICIES, "write-through"),
    cacheEvictionPolicy: v.oneOf("cacheEvictionPolicy", "CACHE_EVICTION_POLICY", EVICTION_POLICIES, "lru"),
    cacheInvalidationTimeoutMs: v.int("cacheInvalidationTimeoutMs", "CACHE_INVALIDATION_TIMEOUT_MS", 1000, 100, 5000),
    authToken: v.string("authToken", "AUTH_TOKEN", null),
    authTokenFile: v.file("authTokenFile", "AUTH_TOKEN_FILE"),
    tlsCert: v.file("tlsCert", "TLS_CERT"),
    tlsKey: v.file("tlsKey", "TLS_KEY"),
    tlsCa: v.file("tlsCa", "TLS_CA"),
    httpTls: v.bool("httpTls", "HTTP_TLS", false),
    jwtSecretFile: v.file("jwtSecretFile", "AUTH_JWT_SECRET_FILE"),
    jwtPublicKeyFile: v.file("jwtPublicKeyFile", "AUTH_JWT_PUBLIC_KEY_FILE"),
    jwtIssuer: v.string("jwtIssuer", "AUTH_JWT_ISSUER", null),
    jwtAudience: v.string("jwtAudience", "AUTH_JWT_AUDIENCE", null),
    rolesFile: v.file("rolesFile", "AUTH_ROLES_FILE"),
    auditLog: v.string("auditLog", "AUDIT_LOG", null),
    auditLogMaxBytes: v.int("auditLogMaxBytes", "AUDIT_LOG_MAX_BYTES", 100 * 1024 * 1024, 4096, 1024 * 1024 * 1024 * 1024),
    auditWrites: v.bool("auditWrites", "AUDIT_WRITES", false),
    maxFrameBytes: v.int("maxFrameBytes", "MAX_FRAME_BYTES", FRAME_BYTES_MAX_DEFAULT, 1024, 256 * 1024 * 1024),
    electionTimeoutMs: v.int("electionTimeoutMs", "ELECTION_TIMEOUT_MS", 150, 10, 60_000),
    heartbeatIntervalMs: v.int("heartbeatIntervalMs", "HEARTBEAT_INTERVAL_MS", 50, 1, 10_000),
    idleBeatIntervalMs: v.int("idleBeatIntervalMs", "IDLE_BEAT_INTERVAL_MS", IDLE_BEAT_INTERVAL_MS_DEFAULT, 1, 10_000),
    snapshotThreshold: v.int("snapshotThreshold", "SNAPSHOT_THRESHOLD", 1000, 10, 100_000_000),
    fsync: v.bool("fsync", "FSYNC", true),
    join: v.bool("join", "JOIN", false),
    queuePartitions: v.int("queuePartitions", "QUEUE_PARTITIONS", 0, 0, 256),
    queueVirtualNodes: v.int("queueVirtualNodes", "QUEUE_VIRTUAL_NODES", 150, 1, 10_000),
    replicationFactor: v.int("replicationFactor", "REPLICATION_FACTOR", 3, 1, 7),
    replaceDeadAfterMs: v.int("replaceDeadAfterMs", "REPLACE_DEAD_AFTER_MS", 300_000, 0, 7 * 24 * 3600_000),
    zone: v.string("zone", "ZONE", null),
    // An eighth of the machine's memory: today a byte of payload costs 2.6–4.5 bytes of RSS.
    spaceBudgetBytes: v.int("spaceBudgetBytes", "SPACE_BUDGET_BYTES", Math.floor(os.totalmem() / 8), 1024, Number.MAX_SAFE_INTEGER),
    queueAckLingerMs: v.int("queueAckLingerMs", "QUEUE_ACK_LINGER_MS", 2, 0, 1000),
  };
  if (config.nodeId === "") problems.push("NODE_ID (--node-id) is required: a unique name for this node, e.g. node_0");
  if (config.heartbeatIntervalMs * 2 > config.electionTimeoutMs) {
    problems.push(`HEARTBEAT_INTERVAL_MS (${config.heartbeatIntervalMs}) must be at most half of ELECTION_TIMEOUT_MS (${config.electionTimeoutMs})`);
  }
  if (config.idleBeatIntervalMs < config.heartbeatIntervalMs) {
    problems.push(`IDLE_BEAT_INTERVAL_MS (${config.idleBeatIntervalMs}) must be at least HEARTBEAT_INTERVAL_MS (${config.heartbeatIntervalMs})`);
  }
  const ports = [config.clientPort, config.peerPort, config.httpPort];
  if (new Set(ports).size !== ports.length) problems.push(`API_PORT, NODE_PORT and HTTP_PORT must differ (got ${ports.join(", ")})`);
  for (const p of config.peers) {
    if (p.id === config.nodeId) problems.push(`PEER_NODES lists this node's own id "${p.id}"; list only the other nodes`);
  }
  if (new Set(config.peers.map((p) => p.id)).size !== config.peers.length) problems.push("PEER_NODES lists a node id twice");
  if (config.redisUrl !== null && !/^rediss?:\/\//.test(config.redisUrl)) {
    problems.push(`REDIS_URL "${config.redisUrl}" must start with redis:// or rediss://`);
  }
  problems.push(...securityProblems(config));
  if (problems.length > 0) throw new ConfigError(problems);
  if (config.authTokenFile === null) return config;
  try {
    return { ...config, authToken: readSecretFile(config.authTokenFile) };
  } catch (err) {
    throw new ConfigError([`AUTH_TOKEN_FILE ${config.authTokenFile}: ${(err as Error).message}`]);
  }
}

/** The address clients use to reach this node. */
export function clientAddrOf(c: NodeConfig): string {
  return formatAddr(c.host, c.clientPort);
}

/** Reads typed fields, collecting a message for each bad one instead of stopping at the first. */
class Reader {
  constructor(
    readonly raw: RawConfig,
    readonly problems: string[],
  ) {}

  string(field: keyof NodeConfig, env: string, dflt: string | null): string | null {
    const v = this.raw[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "string" || v.trim() === "") {
      this.problems.push(`${env} (${field}) must be a non-empty string`);
      return dflt;
    }
    return v.trim();
  }

  /** A path to a file that must exist (secrets and certificates come from files, never flags). */
  file(field: keyof NodeConfig, env: string): string | null {
    const v = this.string(field, env, null);
    if (v === null) return null;
    const abs = path.resolve(v);
    if (!existsSync(abs)) this.problems.push(`${env} (${field}): no such file ${abs}`);
    return abs;
  }

  int(field: keyof NodeConfig, env: string, dflt: number, min: number, max: number): number {
    const v = this.raw[field];
    if (v === undefined || v === null) return dflt;
    const n = typeof v === "number" ? v : typeof v === "string" && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      this.problems.push(`${env} (${field}) must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
      return dflt;
    }
    return n;
  }

  bool(field: keyof NodeConfig, env: string, dflt: boolean): boolean {
    const v = this.raw[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v === "boolean") return v;
    if (typeof v === "string" && /^(true|1|yes|on)$/i.test(v)) return true;
    if (typeof v === "string" && /^(false|0|no|off)$/i.test(v)) return false;
    this.problems.push(`${env} (${field}) must be true or false, got ${JSON.stringify(v)}`);
    return dflt;
  }

  logLevel(): LogLevel {
    const v = this.raw.logLevel;
    if (v === undefined || v === null) return "info";
    // The seeds wrote levels in capitals and used WARNING; accept both spellings.
    const s = typeof v === "string" ? v.trim().toLowerCase().replace(/^warning$/, "warn") : "";
    if ((LOG_LEVELS as readonly string[]).includes(s)) return s as LogLevel;
    this.problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")} (or WARNING), got ${JSON.stringify(v)}`);
    return "info";
  }

  /** One of `choices`, case-insensitive (the seeds wrote LRU/LFU/FIFO in capitals). */
  oneOf<T extends string>(field: keyof RawConfig, env: string, choices: readonly T[], dflt: T): T {
    const v = this.raw[field];
    if (v === undefined || v === null) return dflt;
    const s = typeof v === "string" ? v.trim().toLowerCase() : "";
    if ((choices as readonly string[]).includes(s)) return s as T;
    this.problems.push(`${env} must be one of ${choices.join(", ")}, got ${JSON.stringify(v)}`);
    return dflt;
  }

  /** PEER_NODES: `"id:host:port,…"` (the seeds' format), or a JSON array of {id, addr}. */
  peers(): PeerConfig[] {
    const v = this.raw.peers;
    if (v === undefined || v === null || v === "") return [];
    const items: unknown[] = typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : Array.isArray(v) ? v : [v];
    const out: PeerConfig[] = [];
    for (const item of items) {
      try {
        if (typeof item === "string") {
          const i = item.indexOf(":");
          if (i <= 0) throw new Error("expected id:host:port");
          const id = item.slice(0, i);
          const { host, port } = parseAddr(item.slice(i + 1));
          out.push({ id, addr: formatAddr(host, port) });
        } else if (typeof item === "object" && item !== null && typeof (item as PeerConfig).id === "string") {
          const { host, port } = parseAddr(String((item as PeerConfig).addr));
          out.push({ id: (item as PeerConfig).id, addr: formatAddr(host, port) });
        } else {
          throw new Error("expected id:host:port");
        }
      } catch (err) {
        this.problems.push(`PEER_NODES entry ${JSON.stringify(item)} is invalid: ${(err as Error).message} (e.g. node_1:127.0.0.1:7101)`);
      }
    }
    return out;
  }
}
