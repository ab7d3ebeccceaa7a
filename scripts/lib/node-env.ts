/** The environment of a dsyncd on loopback, for the local cluster, the tests and the benchmarks. */

/** A node on 127.0.0.1: its id and its three ports. */
export interface LoopbackNode {
  readonly id: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly httpPort: number;
}

/** The settings that start `node` as a member of `all` (itself may be listed), peered directly with the others. */
export function loopbackNodeEnv(node: LoopbackNode, all: readonly LoopbackNode[], dataDir: string, logLevel = "warn"): Record<string, string> {
  return {
    NODE_ID: node.id,
    NODE_HOST: "127.0.0.1",
    API_PORT: String(node.clientPort),
    NODE_PORT: String(node.peerPort),
    HTTP_PORT: String(node.httpPort),
    PEER_NODES: all
      .filter((o) => o.id !== node.id)
      .map((o) => `${o.id}:127.0.0.1:${o.peerPort}`)
      .join(","),
    DATA_DIR: dataDir,
    LOG_LEVEL: logLevel,
  };
}
