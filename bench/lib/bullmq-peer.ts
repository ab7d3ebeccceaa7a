/**
 * BullMQ as a bench:queue peer: a private redis-server (append-only file, the fsync policy asked
 * for) and, per cell, producers calling `Queue.add` and one `Worker` with `concurrency: C` whose
 * processor returns at once, so a job's completion is its ack. Completed and failed jobs are
 * removed so Redis does not grow over the run.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { Queue, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { startRedis, type AppendFsync, type RedisServer } from "../../scripts/lib/redis-server.ts";
import { ROOT } from "./proc.ts";
import { STAMP_BYTES, withinMs, type DeliverySink, type QueueCell, type QueuePeer, type Stamp } from "./queue-workload.ts";

/** Job data: the stamp as JSON numbers, padded with a string to about the payload size asked for. */
interface JobData {
  readonly t: number;
  readonly p: number;
  readonly s: number;
  readonly pad: string;
}

const stampOf = (d: JobData): Stamp => ({ sentAtMs: d.t, producer: d.p, seq: d.s });

export interface BullmqPeer extends QueuePeer {
  readonly redis: RedisServer;
  /** Stops the redis-server (and removes its directory). */
  stop(): Promise<void>;
}

/** The installed BullMQ version, e.g. "6.7.0". */
export function bullmqVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, "node_modules/bullmq/package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/** The redis-server's PID, from INFO (startRedis does not expose it). */
async function redisPid(redis: RedisServer): Promise<number> {
  const client = new Redis({ host: redis.host, port: redis.port, lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    const info = await client.info("server");
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    if (!Number.isInteger(pid)) throw new Error(`no process_id in INFO server of ${redis.url}`);
    return pid;
  } finally {
    client.disconnect();
  }
}

/**
 * Starts a fresh redis-server with `appendfsync` and returns the peer. `producersPerConnection`
 * producers share one `Queue` (one Redis connection); the caller must `stop()` the peer.
 */
export async function startBullmqPeer(appendfsync: AppendFsync, producersPerConnection: number, payloadBytes: number): Promise<BullmqPeer> {
  const redis = await startRedis({ appendfsync });
  let pid: number;
  try {
    pid = await redisPid(redis);
  } catch (err) {
    await redis.stop();
    throw err;
  }
  const connection = { host: redis.host, port: redis.port };
  const pad = "x".repeat(Math.max(0, payloadBytes - STAMP_BYTES));
  return {
    name: `bullmq-${appendfsync}`,
    pids: [pid],
    redis,
    stop: () => redis.stop(),
    async open(c: number, sink: DeliverySink, tag: string): Promise<QueueCell> {
      const name = `bench-${tag}`;
      const jobOptions = { removeOnComplete: true, removeOnFail: true };
      const queues = Array.from({ length: Math.ceil(c / producersPerConnection) }, () => new Queue<JobData>(name, { connection, defaultJobOptions: jobOptions }));
      const worker = new Worker<JobData>(
        name,
        async (job: Job<JobData>) => {
          sink.delivered(stampOf(job.data));
        },
        // removeOnComplete / removeOnFail come with each job (job options override the worker's).
        { connection, concurrency: c },
      );
      // "completed" fires once moveToCompleted has run in Redis: the job is acked.
      worker.on("completed", (job) => sink.acked(stampOf(job.data)));
      worker.on("failed", (_job, err) => sink.failed(err));
      worker.on("error", (err) => sink.failed(err));
      const close = async (): Promise<void> => {
        await Promise.allSettled([withinMs(worker.close(), 10_000, "Worker.close"), ...queues.map((q) => withinMs(q.close(), 5000, "Queue.close"))]);
      };
      try {
        await Promise.all([worker.waitUntilReady(), ...queues.map((q) => q.waitUntilReady())]);
      } catch (err) {
        await close();
        throw err;
      }
      return {
        async enqueue(s: Stamp): Promise<void> {
          await queues[Math.floor(s.producer / producersPerConnection)]!.add("m", { t: s.sentAtMs, p: s.producer, s: s.seq, pad });
        },
        async leftover(): Promise<string> {
          // Completed jobs are removed (removeOnComplete), so anything counted here was not acked.
          const counts = await queues[0]!.getJobCounts("wait", "active", "delayed", "failed");
          return Object.entries(counts).filter(([, n]) => n > 0).map(([state, n]) => `${n} ${state}`).join(", ");
        },
        close,
      };
    },
  };
}
