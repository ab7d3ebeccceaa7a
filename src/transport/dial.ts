import net from "node:net";
import { ConnectionClosedError, TimeoutError } from "../../protocol/index.ts";

/** Splits `"host:port"` (IPv6 as `"[::1]:7000"`). @throws Error on a malformed address. */
export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`"${addr}" is not a host:port address`);
  return { host: m[1]!, port };
}

/** Formats a host and port as an address, bracketing IPv6 hosts. */
export function formatAddr(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Opens a TCP connection to `addr`, failing with TimeoutError after `timeoutMs` and with
 * ConnectionClosedError when refused.
 */
export function dial(addr: string, timeoutMs: number): Promise<net.Socket> {
  const { host, port } = parseAddr(addr);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TimeoutError(`connecting to ${addr} took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(new ConnectionClosedError(`cannot connect to ${addr}: ${err.message}`, { cause: err }));
    });
  });
}
