/** Loopback ports and polling shared by the tests, the benchmarks and the local-cluster script. */
import { readFileSync } from "node:fs";
import net from "node:net";

/**
 * A loopback TCP port that was free a moment ago, below the kernel's ephemeral range. Ports from
 * that range (what `listen(0)` hands out) are also the local ports of outgoing connections: a
 * daemon restarted on its port could find it taken by a client's connection made while it was
 * down (seen once in the fault campaign: EADDRINUSE on restart).
 */
export async function freePort(): Promise<number> {
  const [lo, hi] = candidateRange();
  for (let i = 0; i < 200; i++) {
    const port = lo + Math.floor(Math.random() * (hi - lo));
    if (await canListen(port)) return port;
  }
  return anyPort();
}

/** [lo, hi): the ports below the ephemeral range (from /proc on Linux; 32768 elsewhere), above 10000. */
function candidateRange(): [number, number] {
  let ephemeralLo = 32768;
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 11_000) ephemeralLo = first;
  } catch {
    // Not Linux: the IANA dynamic range starts at 49152, and 32768 is below both.
  }
  return [10_000, ephemeralLo];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** Any free port the kernel picks (from the ephemeral range). */
function anyPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `fn` every `intervalMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 20_000, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
