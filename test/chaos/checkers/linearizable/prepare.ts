/** Normalizing a key's ops before any check, and widening a finding to a self-proving set. */
import { Kind, type Item } from "./types.ts";

/**
 * Drops unknown writes that no read returned (taking effect never is always a valid choice for
 * them, and it changes nothing a read could see) and tightens the window of the others: an unknown
 * write whose unique value was read took effect before the earliest such read completed. Both
 * keep the verdict exact and spare the search ops whose window never closes.
 */
export function prepare(items: readonly Item[]): Item[] {
  const writes = new Map<number, number>();
  const firstRead = new Map<number, Item>();
  for (const it of items) {
    if (it.kind === Kind.Write) writes.set(it.value, (writes.get(it.value) ?? 0) + 1);
    else if (it.kind === Kind.Read && it.value !== 0 && it.op.completeMs < (firstRead.get(it.value)?.op.completeMs ?? Infinity)) firstRead.set(it.value, it);
  }
  const out: Item[] = [];
  const untightened = (it: Item): Item => (it.end === it.op.completeMs && !it.via ? it : { op: it.op, kind: it.kind, value: it.value, start: it.start, end: it.op.completeMs });
  for (const it of items) {
    if (it.kind !== Kind.Write) {
      out.push(untightened(it));
      continue;
    }
    const read = firstRead.get(it.value);
    if (!read) {
      if (it.op.completeMs !== Infinity) out.push(untightened(it));
      continue;
    }
    if (writes.get(it.value) !== 1 || it.op.completeMs <= read.op.completeMs) out.push(untightened(it));
    else out.push(it.via === read && it.end === read.op.completeMs ? it : { op: it.op, kind: it.kind, value: it.value, start: it.start, end: read.op.completeMs, via: read });
  }
  return out.sort((a, b) => a.start - b.start || a.op.id - b.op.id);
}

/** A pattern's ops plus the reads that bounded their windows, so the set proves itself. */
export function withVia(items: readonly Item[]): Item[] {
  const out = new Set<Item>();
  for (const it of items) {
    out.add(it);
    if (it.via) out.add(it.via);
  }
  return [...out];
}
