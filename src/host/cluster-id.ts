/**
 * Which cluster a node belongs to: an id kept in its data dir (`cluster-id`) and exchanged in
 * PEER_HELLO, so nodes of two clusters — e.g. the one a backup was taken from and the one it was
 * restored into, on the same node ids — never link up and mix their logs.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";

export const CLUSTER_ID_FILE = "cluster-id";
const ID_PATTERN = /^[a-z]+-[0-9a-f]{16}$/;

/** A new cluster's id: derived from its initial voters, so every founding node computes the same one. */
export function foundingClusterId(voters: readonly string[]): string {
  return `c-${digest(["dsync-cluster", ...[...voters].sort()])}`;
}

/** A restored cluster's id: derived from the backup and the new voters, never equal to the source's. */
export function restoredClusterId(backupSha256: string, voters: readonly string[]): string {
  return `r-${digest(["dsync-restore", backupSha256, ...[...voters].sort()])}`;
}

function digest(parts: readonly string[]): string {
  return createHash("sha256").update(parts.join("\n")).digest("hex").slice(0, 16);
}

/** The cluster id of a node's data dir, learnt once and kept. */
export class ClusterIdentity {
  readonly #file: string;
  #id: string | null;

  private constructor(file: string, id: string | null) {
    this.#file = file;
    this.#id = id;
  }

  /**
   * Reads `cluster-id` from `dataDir`. Without one: a founding node (a fresh data dir, not
   * joining) takes {@link foundingClusterId}; a joining node, or a data dir from before cluster
   * ids existed, has none yet and adopts the first one a peer presents.
   */
  static load(dataDir: string, voters: readonly string[], join: boolean): ClusterIdentity {
    const file = path.join(dataDir, CLUSTER_ID_FILE);
    if (existsSync(file)) {
      const id = readFileSync(file, "utf8").trim();
      if (!ID_PATTERN.test(id)) throw new Error(`${file} does not hold a cluster id (found "${id.slice(0, 40)}")`);
      return new ClusterIdentity(file, id);
    }
    const walDir = path.join(dataDir, "wal");
    const fresh = !existsSync(walDir) || readdirSync(walDir).length === 0;
    const identity = new ClusterIdentity(file, null);
    if (fresh && !join && voters.length > 0) identity.adopt(foundingClusterId(voters));
    return identity;
  }

  /** Writes the id a restored data dir starts with. */
  static write(dataDir: string, id: string): void {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(path.join(dataDir, CLUSTER_ID_FILE), `${id}\n`, { mode: 0o644 });
  }

  get id(): string | null {
    return this.#id;
  }

  /** Takes `id` as this node's cluster id (only while it has none). */
  adopt(id: string): void {
    if (this.#id !== null || !ID_PATTERN.test(id)) return;
    ClusterIdentity.write(path.dirname(this.#file), id);
    this.#id = id;
  }
}
