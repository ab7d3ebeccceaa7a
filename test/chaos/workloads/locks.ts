/**
 * Locks: clients take exclusive locks on a few resources, hold them 20–200 ms (long enough for
 * overlaps to show), and write to a fenced resource at the start and end of each hold. Checked:
 * mutual exclusion of certain holds, fencing tokens in real-time order, and that no write made
 * under a certainly held lock was refused by the fenced resource.
 */
import { LockClient, type DsyncClient } from "../../../src/client/index.ts";
import { checkLocks, formatLocks, type FencedWrite, type LockHold } from "../checkers/locks.ts";
import { outcomeOf, type Outcome } from "../history.ts";
import { loop, nodeClient, sleep, type CheckReport, type Workload, type WorkloadContext } from "./workload.ts";

/** The protected resource: refuses any write with a token lower than the highest it has seen. */
class FencedResource {
  readonly #highest = new Map<string, number>();
  write(resource: string, token: number): boolean {
    if (token < (this.#highest.get(resource) ?? -Infinity)) return false;
    this.#highest.set(resource, token);
    return true;
  }
}

export interface LockWorkloadOptions {
  readonly clients: number;
  readonly resources: number;
  /** Session TTL: shorter than the nemesis's pauses, so sessions do expire under faults. */
  readonly sessionTtlMs: number;
}

export class LockWorkload implements Workload {
  readonly name = "locks";
  readonly #holds: LockHold[] = [];
  readonly #writes: FencedWrite[] = [];
  readonly #acquires: Record<Outcome, number> = { ok: 0, fail: 0, unknown: 0 };
  readonly #okTimes: number[] = [];
  readonly #fenced = new FencedResource();
  readonly #conns: DsyncClient[] = [];
  readonly #lockClients = new Set<LockClient>();
  readonly #loops: Promise<void>[] = [];
  #stopped = false;
  #checked: CheckReport | null = null;

  constructor(readonly o: LockWorkloadOptions) {}

  async start(ctx: WorkloadContext): Promise<void> {
    for (let i = 0; i < this.o.clients; i++) {
      const conn = nodeClient(ctx, i, `locks-${i}`);
      this.#conns.push(conn);
      const rng = ctx.rng.fork();
      let gen = 0;
      let locks = this.#newLockClient(conn, i, gen);
      this.#loops.push(
        loop(
          () => this.#stopped,
          async () => {
            const client = `locks-${i}.${gen}`;
            const resource = `locks-r${rng.nextInt(this.o.resources)}`;
            const acquireInvokeMs = performance.now();
            let lock;
            try {
              lock = await locks.acquire(resource, { waitMs: 3000 });
            } catch (err) {
              const outcome = outcomeOf(err);
              this.#acquires[outcome]++;
              if (outcome === "unknown" || (err as { codeName?: string }).codeName === "SESSION_EXPIRED") {
                // The acquire may still be granted to this session later: end the session (it
                // releases whatever it holds) and go on as a new client.
                await this.#retire(locks);
                gen++;
                locks = this.#newLockClient(conn, i, gen);
              }
              await sleep(20 + rng.nextInt(80));
              return;
            }
            const grantMs = performance.now();
            this.#acquires.ok++;
            this.#okTimes.push(grantMs);
            const writes: FencedWrite[] = [];
            const fencedWrite = (): void => {
              const w: FencedWrite = { client, resource, token: lock.token, atMs: performance.now(), accepted: this.#fenced.write(resource, lock.token), duringConfirmedHold: false };
              writes.push(w);
            };
            fencedWrite();
            await sleep(20 + rng.nextInt(180));
            fencedWrite();
            const releaseSendMs = performance.now();
            let releaseConfirmed = false;
            let releaseError: string | undefined;
            try {
              await locks.release(lock);
              releaseConfirmed = true;
              this.#okTimes.push(performance.now());
            } catch (err) {
              releaseError = (err as { codeName?: string }).codeName ?? (err as Error).name;
              // Whatever the failure, this session may still hold the lock (a re-acquire would
              // then return the same grant): end the session, which releases it, and go on as a
              // new client.
              await this.#retire(locks);
              gen++;
              locks = this.#newLockClient(conn, i, gen);
            }
            for (const w of writes) this.#writes.push({ ...w, duringConfirmedHold: releaseConfirmed });
            this.#holds.push({ client, resource, token: lock.token, acquireInvokeMs, grantMs, releaseSendMs, releaseConfirmed, ...(releaseError !== undefined && { releaseError }) });
            await sleep(rng.nextInt(20));
          },
        ),
      );
    }
  }

  #newLockClient(conn: DsyncClient, i: number, gen: number): LockClient {
    const c = new LockClient(conn, { sessionTtlMs: this.o.sessionTtlMs, clientId: `locks-${i}.${gen}` });
    this.#lockClients.add(c);
    return c;
  }

  async #retire(c: LockClient): Promise<void> {
    this.#lockClients.delete(c);
    await Promise.race([c.close().catch(() => {}), sleep(3000)]);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.race([Promise.all(this.#loops), sleep(15_000)]);
  }

  async final(): Promise<void> {}

  async close(): Promise<void> {
    for (const c of this.#lockClients) await Promise.race([c.close().catch(() => {}), sleep(2000)]);
    for (const c of this.#conns) await c.close().catch(() => {});
  }

  outcomes(): Record<Outcome, number> {
    return { ...this.#acquires };
  }

  okTimes(): number[] {
    return this.#okTimes;
  }

  check(): CheckReport {
    if (this.#checked) return this.#checked;
    const r = checkLocks({ holds: this.#holds, writes: this.#writes, acquires: this.#acquires });
    this.#checked = { ok: r.ok, violations: r.violations.length, lines: formatLocks(r) };
    return this.#checked;
  }

  history(): unknown {
    return { holds: this.#holds, writes: this.#writes, acquires: this.#acquires };
  }
}

export function lockWorkload(): LockWorkload {
  return new LockWorkload({ clients: 6, resources: 2, sessionTtlMs: 2000 });
}
