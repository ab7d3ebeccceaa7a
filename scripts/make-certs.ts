/**
 * `npm run certs -- [--dir certs] [--nodes node_0,node_1,node_2] [--clients admin]`: a private CA
 * and certificates for a local TLS cluster (see README "Securing a cluster").
 */
import { Command } from "commander";
import path from "node:path";
import { makeCerts } from "./lib/certs.ts";

const opts = new Command("certs")
  .option("--dir <dir>", "where to write the CA, keys and certificates", "certs")
  .option("--nodes <ids>", "node ids, comma-separated", "node_0,node_1,node_2")
  .option("--clients <names>", "client certificate names, comma-separated", "admin")
  .parse()
  .opts<{ dir: string; nodes: string; clients: string }>();
const list = (s: string): string[] => s.split(",").map((x) => x.trim()).filter(Boolean);
const set = makeCerts(path.resolve(opts.dir), { nodes: list(opts.nodes), clients: list(opts.clients) });
process.stdout.write(`CA: ${set.ca}\n`);
for (const id of list(opts.nodes)) process.stdout.write(`node ${id}: ${set.node(id).cert} ${set.node(id).key}\n`);
for (const c of list(opts.clients)) process.stdout.write(`client ${c}: ${set.client(c).cert} ${set.client(c).key}\n`);
