/**
 * Leader election on a lock: every candidate waits for the same exclusive lock; whoever holds it
 * leads, with its fencing token as the leadership's epoch. A leader that dies stops renewing its
 * session, and the next candidate in line takes over once the session's TTL runs out.
 *
 *   CANDIDATE=a DSYNC_NODES=127.0.0.1:7001 npx tsx examples/leader-election.ts
 */
import { LockClient, connect } from "dsync/client";

const me = process.env.CANDIDATE ?? `candidate-${process.pid}`;
const election = process.env.ELECTION ?? "election/leader";
const client = await connect({ nodes: process.env.DSYNC_NODES ?? "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003" });
// A short session TTL: a dead leader is replaced within about 2 s.
const locks = new LockClient(client, { sessionTtlMs: 2000, clientId: me });
let stopping = false;
process.once("SIGTERM", () => {
  stopping = true;
  void locks.close().then(() => client.close()).then(() => process.exit(0));
});

while (!stopping) {
  console.log(`${me} waiting to lead`);
  const lock = await locks.acquire(election, { waitMs: -1 });
  console.log(`${me} leads with epoch ${lock.token}`);
  // Lead until the lock is lost (session expired, e.g. after a long pause) — then campaign again.
  await new Promise<void>((resolve) => {
    locks.once("lost", () => resolve());
    locks.once("session-expired", () => resolve());
  });
  console.log(`${me} lost the lead`);
}
