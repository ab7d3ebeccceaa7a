import { InvalidArgumentError, asFields, kindOf } from "../../protocol/index.ts";
import type { Entry, Message, SnapshotChunk, SnapshotMeta } from "../raft/index.ts";
import { ownBytes } from "../services/command-codec.ts";

/**
 * Validates a RAFT envelope body `{msgs: Message[]}` from a peer. A peer of another version or a
 * corrupted stream must never reach the pure core with a malformed message: the core asserts on
 * its inputs, and an assertion there would take the node down.
 * @throws InvalidArgumentError naming the first bad field.
 */
export function parseRaftBatch(body: unknown): Message[] {
  const f = asFields(body, "RAFT");
  if (!Array.isArray(f.msgs)) throw new InvalidArgumentError(`RAFT: "msgs" must be an array, got ${kindOf(f.msgs)}`);
  return f.msgs.map(parseMessage);
}

function parseMessage(v: unknown): Message {
  const m = asFields(v, "RAFT message");
  const msg: Message = {
    type: uint(m.type, "type"),
    group: uint(m.group, "group"),
    from: text(m.from, "from"),
    to: text(m.to, "to"),
    term: uint(m.term, "term"),
    logTerm: uint(m.logTerm, "logTerm"),
    index: uint(m.index, "index"),
    entries: Array.isArray(m.entries) ? m.entries.map(parseEntry) : fail("entries", m.entries),
    commit: uint(m.commit, "commit"),
    reject: typeof m.reject === "boolean" ? m.reject : fail("reject", m.reject),
    rejectHint: uint(m.rejectHint, "rejectHint"),
    ...(m.rejectTerm !== undefined && m.rejectTerm !== null && { rejectTerm: uint(m.rejectTerm, "rejectTerm") }),
    ...(m.snapshot !== undefined && m.snapshot !== null && { snapshot: parseChunk(m.snapshot) }),
    ...(m.snapshotAttempt !== undefined && m.snapshotAttempt !== null && { snapshotAttempt: uint(m.snapshotAttempt, "snapshotAttempt") }),
    ...(m.context !== undefined && m.context !== null && { context: text(m.context, "context") }),
  } as Message;
  return msg;
}

function parseEntry(v: unknown): Entry {
  const e = asFields(v, "RAFT entry");
  return { term: uint(e.term, "entry.term"), index: uint(e.index, "entry.index"), type: uint(e.type, "entry.type") as Entry["type"], data: ownBytes(bytes(e.data, "entry.data")) };
}

function parseChunk(v: unknown): SnapshotChunk {
  const c = asFields(v, "RAFT snapshot");
  return {
    meta: parseMeta(c.meta),
    offset: uint(c.offset, "snapshot.offset"),
    totalBytes: uint(c.totalBytes, "snapshot.totalBytes"),
    data: bytes(c.data, "snapshot.data"),
    done: typeof c.done === "boolean" ? c.done : fail("snapshot.done", c.done),
  };
}

function parseMeta(v: unknown): SnapshotMeta {
  const m = asFields(v, "RAFT snapshot meta");
  const conf = asFields(m.conf, "RAFT snapshot conf");
  const ids = (x: unknown, name: string): string[] => (Array.isArray(x) ? x.map((s) => text(s, name)) : fail(name, x));
  return { index: uint(m.index, "meta.index"), term: uint(m.term, "meta.term"), conf: { voters: ids(conf.voters, "conf.voters"), learners: ids(conf.learners, "conf.learners") } };
}

function uint(v: unknown, name: string): number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : fail(name, v);
}

function text(v: unknown, name: string): string {
  return typeof v === "string" && v.length <= 4096 ? v : fail(name, v);
}

function bytes(v: unknown, name: string): Uint8Array {
  return v instanceof Uint8Array ? v : fail(name, v);
}

function fail(name: string, v: unknown): never {
  throw new InvalidArgumentError(`RAFT message: field "${name}" has the wrong type (${kindOf(v)})`);
}
