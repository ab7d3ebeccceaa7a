import http from "node:http";
import https from "node:https";
import type { Registry } from "prom-client";
import { listenOn } from "../transport/listen.ts";
import type { TlsMaterial } from "../security/tls.ts";

export interface HealthReport {
  /** `draining`: an operator drained it (ADMIN_DRAIN) before stopping it. */
  readonly status: "serving" | "not_serving" | "draining" | "removed";
  readonly nodeId: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly uptimeMs: number;
}

/**
 * The HTTP side port: `GET /health` (200 when serving, 503 when not) and `GET /metrics`
 * (Prometheus text), over HTTPS with the node's certificate when given `tls`. Everything else is
 * 404/405: the product speaks its own protocol.
 */
export class HttpSidePort {
  readonly #server: http.Server | https.Server;

  constructor(
    readonly host: string,
    readonly port: number,
    health: () => HealthReport,
    registry: Registry,
    beforeScrape: () => void = () => {},
    tls: TlsMaterial | null = null,
  ) {
    const handler: http.RequestListener = (req, res) => {
      const url = (req.url ?? "/").split("?")[0];
      if (url !== "/health" && url !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: this port serves only GET /health and GET /metrics\n");
        return;
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
        return;
      }
      if (url === "/health") {
        const report = health();
        res.writeHead(report.status === "serving" ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify(report) + "\n");
        return;
      }
      beforeScrape();
      registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${err.message}\n`),
      );
    };
    if (tls) {
      const server = https.createServer(tls.serverOptions(), handler);
      tls.onReload(() => server.setSecureContext(tls.serverOptions()));
      this.#server = server;
    } else {
      this.#server = http.createServer(handler);
    }
    this.#server.keepAliveTimeout = 5000;
  }

  listen(): Promise<void> {
    return listenOn(this.#server, this.port, this.host);
  }


  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
