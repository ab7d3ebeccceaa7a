/** Shared helpers for the storage tests: temp dirs, entry builders and a naive log model. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { WalEntry, WalHardState, WalRecord, WalSnapshotMeta } from "../../src/storage/types.ts";

/** A fresh directory under os.tmpdir(); remove it with {@link removeDir}. */
export function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "dsync-wal-test-"));
}

export function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true });
}

/** Entries `[from, to]` of `term`, each carrying `bytes` bytes derived from its index. */
export function entries(from: number, to: number, term: number, bytes = 8): WalEntry[] {
  const out: WalEntry[] = [];
  for (let index = from; index <= to; index++) {
    out.push({ term, index, type: 0, data: new Uint8Array(bytes).fill((index * 31 + term) & 0xff) });
  }
  return out;
}

export function entriesRecord(group: number, from: number, to: number, term: number, bytes = 8): WalRecord {
  return { kind: "entries", group, entries: entries(from, to, term, bytes) };
}

export function meta(index: number, term: number): WalSnapshotMeta {
  return { index, term, conf: { voters: ["n1", "n2", "n3"], learners: [] } };
}

/** The naive model: what replaying `records` must produce, one group at a time. */
export interface ModelGroup {
  hardState: WalHardState | null;
  entries: WalEntry[];
  snapshotMeta: WalSnapshotMeta | null;
}

export function model(records: readonly WalRecord[]): Map<number, ModelGroup> {
  const groups = new Map<number, ModelGroup>();
  for (const r of records) {
    let g = groups.get(r.group);
    if (g === undefined) groups.set(r.group, (g = { hardState: null, entries: [], snapshotMeta: null }));
    if (r.kind === "hardState") g.hardState = r.hardState;
    else if (r.kind === "entries") g.entries = [...g.entries.filter((e) => e.index < r.entries[0]!.index), ...r.entries];
    else {
      const at = g.entries.find((e) => e.index === r.meta.index);
      g.entries = at !== undefined && at.term === r.meta.term ? g.entries.filter((e) => e.index > r.meta.index) : [];
      g.snapshotMeta = r.meta;
    }
  }
  return groups;
}

/** Entries as plain tuples, for deepEqual without Buffer-vs-Uint8Array noise. */
export function plain(list: readonly WalEntry[]): [number, number, number, number[]][] {
  return list.map((e) => [e.index, e.term, e.type, [...e.data]]);
}
