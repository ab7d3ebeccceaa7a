import type { Queue } from "./store.ts";
import type { EnqueueMessage } from "./types.ts";
import { absent } from "./validate.ts";

// Enqueue dedup within a window. Apart from the machine because deciding which messages are
// duplicates must not mutate anything: an enqueue is all or nothing (QUEUE_FULL refuses it whole).

/** Forgets dedupIds older than the window. Entries are in time order: amortized O(1). */
export function pruneDedup(q: Queue, now: number): void {
  const horizon = now - q.config.dedupWindowMs;
  for (const [k, v] of q.dedup) {
    if (v.at > horizon && q.config.dedupWindowMs > 0) break;
    q.dedup.delete(k);
  }
}

/**
 * Which messages of a batch are duplicates, of earlier ones (`dupOf[i]` is the id they were
 * enqueued as) or of each other (`-1 - j`, `j` the position of the first occurrence; its id is
 * known only once it is enqueued); null for a fresh message. `fresh` counts those.
 */
export function findDuplicates(messages: readonly EnqueueMessage[], existing: Queue | undefined, window: number): { dupOf: (number | null)[]; fresh: number } {
  const dupOf: (number | null)[] = [];
  const batchFirst = new Map<string, number>(); // dedupId → position of its first occurrence
  let fresh = 0;
  for (let i = 0; i < messages.length; i++) {
    const dedupId = messages[i]!.dedupId;
    let dup: number | null = null;
    if (!absent(dedupId) && window > 0) {
      const seen = existing?.dedup.get(dedupId);
      if (seen !== undefined) dup = seen.id;
      else if (batchFirst.has(dedupId)) dup = -1 - batchFirst.get(dedupId)!;
      else batchFirst.set(dedupId, i);
    }
    dupOf.push(dup);
    if (dup === null) fresh++;
  }
  return { dupOf, fresh };
}
