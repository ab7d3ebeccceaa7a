/**
 * The floor under an idle dsync node: three plain Node processes on loopback that do nothing but
 * what an idle 3-node dsync cluster must do to detect failures — each sends each other a 14-byte
 * frame every interval (bench:idle uses dsync's idle beat, 500 ms), on the same epoch-clock grid,
 * and reads theirs. No Raft, no services, no timers besides that one. Its CPU is what Node's event
 * loop and the kernel charge for those sends and reads on this machine; dsync's idle figure is
 * read against it.
 */
import { Child, freePorts } from "./proc.ts";

/** One process of the floor: listens on argv[1], connects to the ports after it, beats every argv[0] ms. */
const SCRIPT = `
const net = require("node:net");
const [interval, own, ...peers] = process.argv.slice(1).map(Number);
const frame = Buffer.from([0, 0, 0, 10, 0x93, 0x61, 0, 0x81, 0xa4, 0x6d, 0x73, 0x67, 0x73, 0x90]);
const out = new Map();
net.createServer((s) => { s.setNoDelay(true); s.on("data", () => {}); s.on("error", () => {}); }).listen(own, "127.0.0.1");
function dial(port) {
  const s = net.connect(port, "127.0.0.1");
  s.setNoDelay(true);
  s.on("connect", () => out.set(port, s));
  s.on("error", () => {});
  s.on("close", () => { out.delete(port); setTimeout(() => dial(port), 100); });
}
for (const p of peers) dial(p);
function beat() {
  for (const s of out.values()) s.write(frame);
  setTimeout(beat, interval - ((performance.timeOrigin + performance.now()) % interval));
}
beat();
`;

/** Starts the three processes; `stop()` ends them (by PID). */
export async function startBeatFloor(intervalMs: number): Promise<{ pids: number[]; stop: () => Promise<void> }> {
  const ports = await freePorts(3);
  const children = ports.map(
    (own, i) =>
      new Child(
        `beat-floor ${i}`,
        process.execPath,
        ["-e", SCRIPT, String(intervalMs), String(own), ...ports.filter((p) => p !== own).map(String)],
        { env: { PATH: process.env.PATH ?? "" } },
      ),
  );
  return {
    pids: children.map((c) => c.pid),
    stop: async () => {
      await Promise.all(children.map((c) => c.stop(0)));
    },
  };
}
