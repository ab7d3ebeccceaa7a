import type { Envelope } from "../../protocol/index.ts";
import type { RequestRouter } from "./request-router.ts";

/** Serves one peer request type (node to node); resolves with the reply body. */
export type PeerHandler = (from: string, env: Envelope) => Promise<unknown>;

/** Where a service registers what it serves: client requests, and requests from other nodes. */
export interface Handlers {
  readonly client: RequestRouter;
  peer(op: number, handler: PeerHandler): void;
}

/**
 * One service on the host (cluster admin, KV, locks, queues, cache). The node registers every
 * service's handlers, starts them once its ports listen, refreshes their gauges before each
 * scrape, tells them about leadership changes, and on a graceful stop drains, stops and closes
 * them in that order.
 */
export interface Service {
  readonly name: string;
  register(h: Handlers): void;
  start?(): void;
  /** Graceful stop, before this node hands its leaderships on (e.g. the cache's write-back buffer). */
  drain?(): Promise<void>;
  stop?(): void;
  /** After the Raft host closed: release outside resources (e.g. a Redis connection). */
  close?(): Promise<void>;
  refreshGauges?(): void;
  /** A Raft group's leadership changed on this node. */
  onRoleChange?(group: number, leader: boolean): void;
}
