import { QueueClient, type DeliveredMessage } from "../client/queues.ts";
import { fail, intArg, print, program, withClient } from "./common.ts";
import { table } from "./output.ts";

/** Payloads are bytes; the CLI shows them as text when they are valid UTF-8, else as base64. */
function show(payload: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(payload);
  } catch {
    return `base64:${Buffer.from(payload).toString("base64")}`;
  }
}

function jsonMessage(m: DeliveredMessage): Record<string, unknown> {
  return { ...m, payload: show(m.payload) };
}

function numberArg(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) fail(`${name} must be a number >= 0, got "${v}"`);
  return n;
}

const queue = program
  .command("queue")
  .description("durable queues: at-least-once delivery, FIFO per queue, retries with backoff, dead letters");

queue
  .command("enqueue <queue> <payload...>")
  .description("append messages (one per payload argument); prints their ids once committed")
  .option("--delay <ms>", "deliver no earlier than this many milliseconds from now")
  .option("--dedup <id>", "dedup id (one payload only): the same id within the window is enqueued once")
  .action(async (name: string, payloads: string[], o: { delay?: string; dedup?: string }) => {
    if (o.dedup !== undefined && payloads.length > 1) fail("--dedup takes one payload");
    await withClient(async (c, g) => {
      const q = new QueueClient(c);
      const delayMs = o.delay !== undefined ? intArg("--delay", o.delay, 0) : undefined;
      const r = await q.enqueueBatch(name, payloads.map((p) => ({ payload: p, ...(delayMs !== undefined && { delayMs }), ...(o.dedup !== undefined && { dedupId: o.dedup }) })));
      const lines = r.ids.map((id, i) => `enqueued ${name} #${id}${r.duplicates[i] ? " (duplicate: already enqueued)" : ""}`);
      print(g, r, lines.join("\n"));
    });
  });

queue
  .command("consume <queue>")
  .description("take messages: they stay in flight until acked (dsync queue ack) or until the visibility timeout brings them back")
  .option("--max <n>", "messages to take at most", "1")
  .option("--wait <ms>", "wait this long for a message when the queue is empty", "0")
  .option("--visibility <ms>", "how long they stay invisible to other consumers (default: the queue's)")
  .option("--ack", "ack what was received right away")
  .action(async (name: string, o: { max: string; wait: string; visibility?: string; ack?: boolean }) => {
    await withClient(async (c, g) => {
      const q = new QueueClient(c);
      // Without --ack the messages must outlive this process so a later `dsync queue ack` finds them.
      const ms = await q.consume(name, { max: intArg("--max", o.max, 1), waitMs: intArg("--wait", o.wait, 0), detached: !o.ack, ...(o.visibility !== undefined && { visibilityMs: intArg("--visibility", o.visibility, 1) }) });
      if (o.ack && ms.length > 0) await q.ack(name, ms.map((m) => m.receipt));
      const rows = ms.map((m) => [String(m.id), String(m.deliveryCount), m.receipt, show(m.payload)]);
      print(g, ms.map(jsonMessage), ms.length === 0 ? "(no message)" : `${table(["ID", "DELIVERY", "RECEIPT", "PAYLOAD"], rows)}${o.ack ? "\n(acked)" : `\nack with: dsync queue ack ${name} <receipt>`}`);
      if (ms.length === 0) process.exitCode = 3;
    });
  });

queue
  .command("ack <queue> <receipt...>")
  .description("acknowledge deliveries: the messages are done and removed")
  .action(async (name: string, receipts: string[]) => {
    await withClient(async (c, g) => {
      const r = await new QueueClient(c).ack(name, receipts);
      const lines = r.outcomes.map((x) => (x.ok ? `acked ${x.receipt} (#${x.id})` : `not acked ${x.receipt}: ${x.reason}`));
      print(g, r, lines.join("\n"));
      if (r.acked < receipts.length) process.exitCode = 1;
    });
  });

queue
  .command("nack <queue> <receipt>")
  .description("give a delivery back: redelivered after --delay, or after the queue's backoff")
  .option("--delay <ms>", "redeliver after this many milliseconds")
  .action(async (name: string, receipt: string, o: { delay?: string }) => {
    await withClient(async (c, g) => {
      const r = await new QueueClient(c).nack(name, receipt, o.delay !== undefined ? { delayMs: intArg("--delay", o.delay, 0) } : {});
      print(g, r, r.deadLettered ? `#${r.id} moved to the dead-letter queue (max deliveries reached)` : `#${r.id} visible again at ${new Date(r.visibleAt ?? 0).toISOString()}`);
    });
  });

queue
  .command("stats [queue]")
  .description("one queue's depth, in-flight, counters and settings; without a name, every queue by partition")
  .action(async (name: string | undefined) => {
    await withClient(async (c, g) => {
      const q = new QueueClient(c);
      if (name !== undefined) {
        const r = await q.stats(name);
        const s = r.stats;
        const b = r.config.backoff;
        const text = [
          `${r.queue}  (partition ${r.partition}, leader ${r.leader ?? "-"})`,
          `  depth ${s.depth}  in-flight ${s.inFlight}  delivered ${s.delivered}  acked ${s.acked}  redelivered ${s.redelivered}  dead-lettered ${s.deadLettered}`,
          `  dead-letter queue ${r.dlq}: ${r.dlqDepth} message(s)`,
          `  max deliveries ${r.config.maxDeliveries}, visibility ${r.config.visibilityMs} ms, backoff ${b.baseMs} ms ×${b.factor} up to ${b.capMs} ms (jitter ${b.jitter}), dedup window ${r.config.dedupWindowMs} ms`,
        ].join("\n");
        print(g, r, text);
        return;
      }
      const r = await q.list();
      const rows = r.partitions.flatMap((p) =>
        p.queues.length === 0 ? [[String(p.partition), p.leader ?? "-", "-", "", "", "", ""]] : p.queues.map((x) => [String(p.partition), p.leader ?? "-", x.queue, String(x.depth), String(x.inFlight), String(x.acked), String(x.deadLettered)]),
      );
      print(g, r, table(["PARTITION", "LEADER", "QUEUE", "DEPTH", "IN FLIGHT", "ACKED", "DEAD"], rows));
    });
  });

queue
  .command("configure <queue>")
  .description("change a queue's settings (only the options given)")
  .option("--max-deliveries <n>", "deliveries before a message is dead-lettered")
  .option("--visibility <ms>", "default visibility timeout")
  .option("--backoff-base <ms>", "first retry delay")
  .option("--backoff-factor <x>", "growth of the retry delay per delivery")
  .option("--backoff-cap <ms>", "longest retry delay")
  .option("--backoff-jitter <fraction>", "random shortening of each delay, 0..1")
  .option("--dlq <name>", "dead-letter queue name (default <queue>.dlq)")
  .option("--dedup-window <ms>", "how long dedup ids are remembered (0 = off)")
  .action(async (name: string, o: Record<string, string | undefined>) => {
    const backoff = {
      ...(o.backoffBase !== undefined && { baseMs: intArg("--backoff-base", o.backoffBase, 0) }),
      ...(o.backoffFactor !== undefined && { factor: numberArg("--backoff-factor", o.backoffFactor) }),
      ...(o.backoffCap !== undefined && { capMs: intArg("--backoff-cap", o.backoffCap, 0) }),
      ...(o.backoffJitter !== undefined && { jitter: numberArg("--backoff-jitter", o.backoffJitter) }),
    };
    await withClient(async (c, g) => {
      const config = await new QueueClient(c).configure(name, {
        ...(o.maxDeliveries !== undefined && { maxDeliveries: intArg("--max-deliveries", o.maxDeliveries, 1) }),
        ...(o.visibility !== undefined && { visibilityMs: intArg("--visibility", o.visibility, 1) }),
        ...(Object.keys(backoff).length > 0 && { backoff }),
        ...(o.dlq !== undefined && { dlq: o.dlq }),
        ...(o.dedupWindow !== undefined && { dedupWindowMs: intArg("--dedup-window", o.dedupWindow, 0) }),
      });
      print(g, config, `${name}: ${JSON.stringify(config)}`);
    });
  });

queue
  .command("purge <queue>")
  .description("drop the queue's waiting messages (in-flight ones stay ackable)")
  .option("--dlq", "drop the queue's dead letters instead")
  .action(async (name: string, o: { dlq?: boolean }) => {
    await withClient(async (c, g) => {
      const r = await new QueueClient(c).purge(name, { dlq: o.dlq === true });
      print(g, r, `purged ${r.purged} message(s) from ${r.queue}`);
    });
  });

const dlq = queue.command("dlq").description("a queue's dead letters: messages that reached max deliveries");
dlq
  .command("list <queue>")
  .description("the oldest dead letters of <queue>, with why and every delivery")
  .option("--max <n>", "messages to show at most", "20")
  .action(async (name: string, o: { max: string }) => {
    await withClient(async (c, g) => {
      const r = await new QueueClient(c).dlqList(name, { max: intArg("--max", o.max, 1) });
      const rows = r.messages.map((m) => [String(m.id), String(m.deliveryCount), m.reason, new Date(m.deadAt).toISOString(), m.history.map((h) => h.outcome).join(","), show(m.payload)]);
      print(g, { ...r, messages: r.messages.map((m) => ({ ...m, payload: show(m.payload) })) }, r.messages.length === 0 ? `${r.dlq}: empty` : `${r.dlq}\n${table(["ID", "DELIVERIES", "REASON", "DEAD AT", "HISTORY", "PAYLOAD"], rows)}`);
    });
  });
dlq
  .command("redrive <queue>")
  .description("move dead letters back to <queue> (oldest first), as new deliveries")
  .option("--max <n>", "messages to move at most", "1000")
  .action(async (name: string, o: { max: string }) => {
    await withClient(async (c, g) => {
      const r = await new QueueClient(c).dlqRedrive(name, { max: intArg("--max", o.max, 1) });
      print(g, r, `moved ${r.ids.length} message(s) from ${r.dlq} back to ${name}`);
    });
  });
