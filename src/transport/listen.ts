import type { Server } from "node:net";

/** Starts `server` on `host:port`; rejects (e.g. EADDRINUSE) instead of emitting 'error'. */
export function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
