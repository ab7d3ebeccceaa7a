/**
 * The write-ahead log: one segmented log shared by every Raft group on a node.
 *
 * Threads. The main thread validates, encodes and orders records and tracks per-group state; a
 * worker (`wal-worker.ts`) does write + fdatasync, so the event loop does not block on the disk
 * while there is other work. When the worker is idle and a batch is small, the main thread runs
 * it itself: at low load a commit is mostly thread wake-ups (hand the batch over, wake the main
 * thread with the ack), and on a busy 2-core VM each costs about as much as a small fdatasync.
 * Measured on 3 nodes, puts for 5 s, 4–5 alternating runs each, worker only → this: C=1 208 →
 * 254 puts/s, C=16 2,939 → 3,770, C=64 8,525 → 8,797 (noise), with less server CPU. A slow
 * batch (see INLINE_SLOW_MS) sends batches back to the worker for a while, so a stalling disk
 * does not stall heartbeats and clients for long.
 * Either way one `SegmentWriter` state runs the batch (see `segment-writer.ts`).
 *
 * Group commit. Every `append()` made in one event-loop turn joins one batch, flushed on
 * `setImmediate` as one write and one fdatasync. While a batch is in flight, new appends gather
 * in the next batch, which is sent the moment the ack arrives. At most one batch is in flight,
 * so a busy disk turns into bigger batches rather than a queue of fsyncs. Records a crash may
 * lose (`durable: false`) start no batch: they wait, in order, for the next one that is durable.
 *
 * Segments and garbage collection. When the current segment has reached `segmentBytes`, the next
 * record goes to a new segment, which starts with a checkpoint record: every group's latest hard
 * state and snapshot marker. So hard states and snapshot markers in older segments are always
 * superseded, and a segment only matters for the live entries (after the group's snapshot) whose
 * latest write it holds. GC deletes the oldest segments, as a prefix, below the oldest segment
 * that holds a live entry of any group (and below the current one). Replay starts from the first
 * surviving checkpoint; entries in it that follow a garbage-collected prefix are accepted because
 * that prefix was entirely covered by snapshots (see `GroupLog.appendEntries`), and at the end
 * every group's live entries must start right after its snapshot, or open fails. Regular
 * snapshots therefore keep the log bounded to the live entries plus about one segment. Rewriting
 * live entries into new segments is not needed; a group that never snapshots pins its segments.
 */
import { ok as assert } from "node:assert";
import { mkdir, open, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Worker } from "node:worker_threads";
import { WalClosedError, WalInvalidArgumentError, WalIoError } from "./errors.ts";
import { envFailpoints, type FailpointConfig } from "./failpoints.ts";
import { GroupLog } from "./group-log.ts";
import { RECORD_BODY_BYTES_MAX, FRAME_HEADER_BYTES, encodeRecord, type CheckpointGroup, type LogRecord } from "./record.ts";
import { recoverWal } from "./recovery.ts";
import { fsyncDir, segmentFileName } from "./segment-files.ts";
import { encodeSnapshotFile } from "./snapshot-file.ts";
import { readSnapshotImage, removeSnapshotFiles, removeUnreferencedSnapshots, writeSnapshotImage } from "./snapshot-images.ts";
import { checkEntries, checkGroup, checkHardState, checkSnapshotMeta } from "./validate.ts";
import type { FromWorker, ToWorker, WorkerInit, WorkerOp } from "./wal-protocol.ts";
import { concat, startWorker, workerWriteError } from "./wal-worker-client.ts";
import { SegmentWriter, errorReport, type WriterState } from "./segment-writer.ts";
import type { WalGroupState, WalRecord, WalRecoveryInfo, WalSnapshotMeta, WalStats } from "./types.ts";

/** Default segment size: 64 MiB. */
export const SEGMENT_BYTES_DEFAULT = 64 * 1024 * 1024;

/** Options of {@link Wal.open}. */
export interface WalOptions {
  /** Rotate to a new segment once the current one holds at least this many bytes. Default 64 MiB. */
  segmentBytes?: number;
  /** fdatasync every batch (and fsync the directory on create/rename/unlink). Default true; false only for tests and benchmarks. */
  fsync?: boolean;
  /**
   * Decode every record back before writing it (the write half of the paired CRC assertion).
   * Default: on unless `NODE_ENV === "production"`.
   */
  verifyWrites?: boolean;
  /** Injected disk faults, for tests. Default: what `DSYNC_FAILPOINTS` named (none when unset). */
  failpoints?: FailpointConfig;
  /**
   * Let the main thread write and fdatasync a small batch itself while the worker is idle (see the
   * file comment). Default true; false keeps every batch on the worker (tests of that path).
   */
  inlineWrites?: boolean;
  /**
   * Called once, synchronously, when the WAL fails (a write, fsync or the worker), before any
   * pending append is rejected. A server makes this fail-stop: nothing written since the last
   * good fsync can be trusted, and retrying an fsync after EIO can report lost data as durable.
   */
  onFailure?: (error: WalIoError) => void;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

type Chunk =
  | { op: "write"; segment: number; parts: Uint8Array[] }
  | { op: "deleteSegments"; from: number; below: number };

/** Work gathered for one worker round trip: one write (two when it rotates) and one fdatasync. */
interface Batch {
  chunks: Chunk[];
  waiters: Waiter[];
  appends: number;
  /** Something in it must be made durable: it is flushed. Otherwise it waits for the next batch that is. */
  durable: boolean;
}

/**
 * The biggest batch the main thread writes itself. Bigger ones (a 256 KiB queue message, a busy
 * moment's group commit) would hold the event loop while their bytes are copied and synced; the
 * worker takes them, and the two wake-ups matter little next to such a write.
 */
const INLINE_BYTES_MAX = 64 * 1024;
/**
 * A batch the main thread ran that took longer than this (a stalling or failing disk) sends the
 * next batches to the worker for a while: the event loop, with its heartbeats, must not wait on
 * such a disk. Half the default heartbeat interval (50 ms). Not lower: on this VM one fdatasync in
 * ten takes over 4 ms while three nodes share the disk, and backing off at 4 ms kept half of the
 * C=1 gain away (A/B, 5 runs each: 208 puts/s on the worker, 228 backing off at 4 ms, 254 never).
 */
const INLINE_SLOW_MS = 25;
/** The first back-off; it doubles while the batches tried on the main thread stay slow. */
const INLINE_BACKOFF_MS = 1000;
const INLINE_BACKOFF_MAX_MS = 60_000;

const EMPTY_STATE: WalGroupState = { hardState: null, entries: [], snapshotMeta: null };

/** A segmented, CRC-framed write-ahead log with group commit and worker-thread fsync. */
export class Wal {
  /** The data directory. */
  readonly dir: string;
  /** What recovery did at open: how many bytes of a torn tail were cut, and from which segment. */
  readonly recovery: WalRecoveryInfo;

  readonly #segmentBytesMax: number;
  readonly #fsync: boolean;
  readonly #verify: boolean;
  readonly #onFailure: ((error: WalIoError) => void) | null;
  readonly #inlineWrites: boolean;
  readonly #init: WorkerInit;
  readonly #worker: Worker;
  /** The segment writer's state: with the batch in flight while there is one, here otherwise. */
  #writer: WriterState;
  /** Until when batches go to the worker whatever their size (after a slow one on the main thread). */
  #workerOnlyUntil = 0;
  #backoffMs = INLINE_BACKOFF_MS;
  readonly #exited: Promise<void>;
  /** Per-group state in log order, including records not yet durable. Ranges only, no entries. */
  readonly #groups: Map<number, GroupLog>;
  readonly #replayed: Map<number, WalGroupState>;
  /** Bytes of every live segment by id, including queued writes; ids ascend from #oldestSegment. */
  readonly #segmentSizes = new Map<number, number>();
  #segment: number;
  #oldestSegment: number;

  #pending: Batch | null = null;
  #inFlight: (Batch & { seq: number }) | null = null;
  #flushScheduled = false;
  #seq = 0;
  #failure: Error | null = null;
  #closing: Promise<void> | null = null;
  #idleWaiters: (() => void)[] = [];
  #closedAck: (() => void) | null = null;
  readonly #savingSnapshot = new Set<number>();

  #fsyncs = 0;
  #lastFsyncMs = 0;
  #appendsBatched = 0;
  #batches = 0;
  #inlineBatches = 0;

  private constructor(
    dir: string,
    opts: Required<Omit<WalOptions, "onFailure">> & WalOptions,
    init: WorkerInit,
    started: { worker: Worker; state: WriterState },
    groups: Map<number, GroupLog>,
    segments: { id: number; bytes: number }[],
    recovery: WalRecoveryInfo,
  ) {
    const worker = started.worker;
    this.dir = dir;
    this.recovery = recovery;
    this.#segmentBytesMax = opts.segmentBytes;
    this.#fsync = opts.fsync;
    this.#verify = opts.verifyWrites;
    this.#onFailure = opts.onFailure ?? null;
    this.#inlineWrites = opts.inlineWrites;
    this.#init = init;
    this.#worker = worker;
    this.#writer = started.state;
    this.#groups = groups;
    this.#replayed = new Map();
    for (const [group, log] of groups) {
      this.#replayed.set(group, { hardState: log.hardState, entries: log.entries ?? [], snapshotMeta: log.snapshotMeta });
      log.dropEntries();
    }
    for (const s of segments) this.#segmentSizes.set(s.id, s.bytes);
    this.#oldestSegment = segments[0]!.id;
    this.#segment = segments.at(-1)!.id;

    this.#exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    worker.on("message", (msg: FromWorker) => this.#onWorkerMessage(msg));
    worker.on("error", (error) => this.#fail(new WalIoError("WAL worker crashed", { cause: error })));
    worker.on("exit", (code) => {
      if (this.#closedAck === null) this.#fail(new WalIoError(`WAL worker exited unexpectedly (code ${code})`));
    });
    worker.unref(); // Referenced only while a batch is in flight: an idle WAL must not keep the process alive.
  }

  /**
   * Opens (creating if needed) the WAL in `dir`: replays every segment, truncates a torn tail,
   * removes snapshot files no marker refers to, starts the fsync worker and garbage-collects
   * superseded segments.
   * @throws WalCorruptionError if the log is damaged other than by a torn tail.
   * @throws WalIoError if the directory cannot be used or the worker does not start.
   * @throws FailpointConfigError if `DSYNC_FAILPOINTS` is invalid (and no `failpoints` were given).
   */
  static async open(dir: string, opts: WalOptions = {}): Promise<Wal> {
    const options: Required<Omit<WalOptions, "onFailure">> & WalOptions = {
      segmentBytes: opts.segmentBytes ?? SEGMENT_BYTES_DEFAULT,
      fsync: opts.fsync ?? true,
      inlineWrites: opts.inlineWrites ?? true,
      verifyWrites: opts.verifyWrites ?? process.env.NODE_ENV !== "production",
      failpoints: opts.failpoints ?? envFailpoints(),
      onFailure: opts.onFailure,
    };
    if (!Number.isSafeInteger(options.segmentBytes) || options.segmentBytes < 1) {
      throw new WalInvalidArgumentError(`segmentBytes ${options.segmentBytes} is not a positive integer`);
    }
    await mkdir(dir, { recursive: true });
    const found = await recoverWal(dir);
    const segments = found.segments;
    if (segments.length === 0) {
      await createSegment(dir, 1, options.fsync);
      segments.push({ id: 1, bytes: 0 });
    }
    await removeUnreferencedSnapshots(dir, found.groups);

    const init: WorkerInit = { dir, segment: segments.at(-1)!.id, fsync: options.fsync, failpoints: options.failpoints };
    const started = await startWorker(init);
    const worker = started.worker;
    const wal = new Wal(dir, options, init, started, found.groups, segments, found.recovery);
    try {
      // Every segment starts with a checkpoint; the last one may have been created (or cut back
      // to nothing by recovery) before its checkpoint was written.
      if (found.lastSegmentRecords === 0) wal.#enqueueWrite(wal.#segment, wal.#encode(wal.#checkpoint()));
      wal.#maybeCollect();
      await wal.#barrier();
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    return wal;
  }

  /** Ids of every group the log knows, ascending. */
  groups(): number[] {
    return [...this.#groups.keys()].sort((a, b) => a - b);
  }

  /**
   * The state of `group` as replayed at open (not updated by later appends; the Raft storage on
   * top keeps its own log). Entries are `snapshotIndex + 1 ..` in order without gaps. Unknown
   * groups have an empty state.
   */
  state(group: number): WalGroupState {
    return this.#replayed.get(group) ?? EMPTY_STATE;
  }

  /**
   * The state of a group closed earlier in this process (a replica that moved away) to open it
   * again: its latest snapshot and hard state, without the entries after the snapshot (they are
   * not kept in memory; the group's leader sends what the replica needs). The commit index is
   * capped at the snapshot, the last point this state proves applied.
   */
  stateForReopen(group: number): WalGroupState {
    const log = this.#groups.get(group);
    if (!log) return EMPTY_STATE;
    const snapshotIndex = log.snapshotMeta?.index ?? 0;
    const hardState = log.hardState === null ? null : { ...log.hardState, commit: Math.min(log.hardState.commit, snapshotIndex) };
    return { hardState, entries: [], snapshotMeta: log.snapshotMeta };
  }

  /**
   * Appends `records` in order; resolves once they (and everything appended before) are durable.
   * Records are validated and encoded synchronously, so the caller may reuse entry buffers as soon
   * as this returns. Appends of one event-loop turn share one write and one fdatasync.
   *
   * `durable: false` is for records a crash may lose (a hard state that only moves the commit
   * index): they are placed in order but cause no write of their own; they go out with the next
   * durable append (or barrier, or close), and the promise resolves then. Before, each cost an
   * fdatasync of its own, which the next entries then queued behind.
   * @throws (rejects) WalInvalidArgumentError if a record breaks its contract (see {@link WalRecord});
   *   nothing of this call is written then.
   * @throws (rejects) WalIoError if the write or fsync failed; the WAL is failed from then on.
   * @throws (rejects) WalClosedError after `close()`.
   */
  append(records: readonly WalRecord[], opts: { readonly durable?: boolean } = {}): Promise<void> {
    const blocked = this.#blocked();
    if (blocked !== null) return Promise.reject(blocked);
    let prepared: { record: LogRecord; frame: Uint8Array }[];
    try {
      prepared = this.#prepare(records);
    } catch (error) {
      return Promise.reject(error);
    }
    for (const p of prepared) this.#place(p.record, p.frame);
    return this.#barrier(1, opts.durable ?? true);
  }

  /**
   * Writes a snapshot image: `snap-<group>-<index>.tmp`, fdatasync, rename to
   * `snap-<group>-<index>.snap`, fsync the directory, then appends the snapshot record (which
   * discards the group's entries up to `meta.index`), then removes the group's older images.
   * The marker is only written once the image is durable under its final name, so a marker
   * always has its image. `data` is copied before this returns its promise.
   * @throws (rejects) WalInvalidArgumentError if `meta.index` is not beyond the group's snapshot, or
   *   a snapshot of the group is already being saved.
   * @throws (rejects) WalIoError if the image cannot be written (the WAL itself stays usable), or
   *   if appending the marker fails (the WAL is failed).
   */
  async saveSnapshot(group: number, meta: WalSnapshotMeta, data: Uint8Array): Promise<void> {
    const blocked = this.#blocked();
    if (blocked !== null) throw blocked;
    checkGroup(group);
    const checked = checkSnapshotMeta(group, meta, this.#groups.get(group));
    if (!(data instanceof Uint8Array)) throw new WalInvalidArgumentError(`group ${group}: snapshot data is not a Uint8Array`);
    if (this.#savingSnapshot.has(group)) throw new WalInvalidArgumentError(`group ${group}: a snapshot is already being saved`);
    this.#savingSnapshot.add(group);
    const image = encodeSnapshotFile(checked, data);
    try {
      const final = await writeSnapshotImage(this.dir, group, checked.index, image, this.#fsync);
      try {
        await this.append([{ kind: "snapshot", group, meta: checked }]);
      } catch (error) {
        // Only a rejected record is certainly not on disk; after an I/O error it might be, and
        // then the image is needed. Leftovers are removed at the next open either way.
        if (error instanceof WalInvalidArgumentError) await unlink(final).catch(() => undefined);
        throw error;
      }
    } finally {
      this.#savingSnapshot.delete(group);
    }
    // Best effort: the durable marker supersedes older images, and open removes any that remain.
    await removeSnapshotFiles(this.dir, (g, index) => g === group && index < checked.index);
  }

  /**
   * The snapshot image matching `group`'s latest snapshot marker, or null if it has none. Reads
   * synchronously (meant for start-up). Never falls back to an older image: entries it would need
   * were discarded when the marker was written.
   * @throws WalCorruptionError if the image is missing, damaged or does not match the marker.
   * @throws WalIoError if it cannot be read.
   */
  loadSnapshot(group: number): { meta: WalSnapshotMeta; data: Uint8Array } | null {
    const marker = this.#groups.get(group)?.snapshotMeta ?? null;
    if (marker === null) return null;
    return readSnapshotImage(this.dir, group, marker);
  }

  /**
   * Deletes every segment, oldest first, that holds no live entry and is not the current one.
   * Also runs automatically at every rotation. Resolves once the deletion is durable.
   * @throws (rejects) WalIoError, WalClosedError as {@link append}.
   */
  compact(): Promise<void> {
    const blocked = this.#blocked();
    if (blocked !== null) return Promise.reject(blocked);
    this.#maybeCollect();
    return this.#barrier();
  }

  /** Counters for metrics; see {@link WalStats}. */
  stats(): WalStats {
    let bytes = 0;
    for (const size of this.#segmentSizes.values()) bytes += size;
    return {
      segments: this.#segmentSizes.size,
      bytes,
      fsyncs: this.#fsyncs,
      lastFsyncMs: this.#lastFsyncMs,
      appendsBatched: this.#appendsBatched,
      batches: this.#batches,
      inlineBatches: this.#inlineBatches,
    };
  }

  /**
   * Flushes everything appended so far, fdatasyncs and closes the segment and stops the worker.
   * Idempotent. Appends after this reject with WalClosedError. After a failure it only stops the
   * worker.
   * @throws (rejects) WalIoError if the final flush fails.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #shutDown(): Promise<void> {
    // Records held for a later batch are written now: nothing else will come.
    if (this.#pending !== null && this.#failure === null) void this.#barrier().catch(() => undefined);
    await new Promise<void>((resolve) => this.#whenIdle(resolve));
    if (this.#failure !== null) {
      this.#closedAck = () => undefined;
      await this.#worker.terminate();
      return;
    }
    this.#worker.ref();
    const closed = new Promise<void>((resolve) => (this.#closedAck = resolve));
    this.#post({ type: "close", state: this.#writer });
    await Promise.race([closed, this.#exited]);
    await this.#exited;
    if (this.#failure !== null) throw this.#failure;
  }

  #blocked(): Error | null {
    if (this.#failure !== null) return this.#failure;
    if (this.#closing !== null) return new WalClosedError();
    return null;
  }

  /**
   * Validates and encodes `records` against scratch copies of the touched groups, so a bad
   * record leaves no trace. Snapshot records learn here whether the log matches them.
   */
  #prepare(records: readonly WalRecord[]): { record: LogRecord; frame: Uint8Array }[] {
    if (!Array.isArray(records)) throw new WalInvalidArgumentError("records is not an array");
    const scratch = new Map<number, GroupLog>();
    const out: { record: LogRecord; frame: Uint8Array }[] = [];
    for (const r of records) {
      const group = checkGroup(r?.group);
      let log = scratch.get(group);
      if (log === undefined) scratch.set(group, (log = this.#groups.get(group)?.clone() ?? new GroupLog(false)));
      let record: LogRecord;
      switch (r.kind) {
        case "entries": {
          const entries = checkEntries(group, r.entries, log);
          log.appendEntries(entries, 0);
          record = { kind: "entries", group, entries };
          break;
        }
        case "hardState":
          record = { kind: "hardState", group, hardState: checkHardState(group, r.hardState) };
          log.hardState = record.hardState;
          break;
        case "snapshot": {
          const meta = checkSnapshotMeta(group, r.meta, log);
          // etcd's rule: the entries after the snapshot survive only if the log agrees with it at
          // its index; otherwise the log diverged (an installed snapshot) and all of it goes.
          const keepSuffix = log.termAt(meta.index) === meta.term;
          log.applySnapshot(meta, keepSuffix);
          record = { kind: "snapshot", group, meta, keepSuffix };
          break;
        }
        default:
          throw new WalInvalidArgumentError(`unknown record kind ${String((r as { kind?: unknown }).kind)}`);
      }
      const frame = this.#encode(record);
      if (frame.length - FRAME_HEADER_BYTES > RECORD_BODY_BYTES_MAX) {
        throw new WalInvalidArgumentError(`group ${group}: record of ${frame.length} bytes exceeds ${RECORD_BODY_BYTES_MAX}`);
      }
      out.push({ record, frame });
    }
    return out;
  }

  /** Puts a validated record in the log order: rotates if due, queues it, updates group state. */
  #place(record: LogRecord, frame: Uint8Array): void {
    if (this.#segmentSizes.get(this.#segment)! >= this.#segmentBytesMax) this.#rotate();
    this.#enqueueWrite(this.#segment, frame);
    // Invariant: checkpoints are written by #rotate and open only, never placed as caller records.
    assert(record.kind !== "checkpoint", "checkpoint placed as a caller record");
    let log = this.#groups.get(record.group);
    if (log === undefined) this.#groups.set(record.group, (log = new GroupLog(false)));
    if (record.kind === "entries") log.appendEntries(record.entries, this.#segment);
    else if (record.kind === "hardState") log.hardState = record.hardState;
    else log.applySnapshot(record.meta, record.keepSuffix);
  }

  /** Starts the next segment with a checkpoint of the state at this point of the log, then GCs. */
  #rotate(): void {
    const next = this.#segment + 1;
    this.#segment = next;
    this.#segmentSizes.set(next, 0);
    this.#enqueueWrite(next, this.#encode(this.#checkpoint()));
    this.#maybeCollect();
  }

  #checkpoint(): LogRecord {
    const groups: CheckpointGroup[] = [];
    for (const group of this.groups()) {
      const log = this.#groups.get(group)!;
      if (log.hardState !== null || log.snapshotMeta !== null) groups.push({ group, hardState: log.hardState, snapshotMeta: log.snapshotMeta });
    }
    return { kind: "checkpoint", groups };
  }

  /**
   * Queues deletion of the segments below both the current segment and the oldest segment any
   * group still has a live entry in. Queued after everything written so far: the worker
   * fdatasyncs those writes (the snapshot markers and the checkpoint that supersede the doomed
   * segments) before it unlinks anything.
   */
  #maybeCollect(): void {
    let below = this.#segment;
    for (const log of this.#groups.values()) {
      const oldest = log.oldestLiveSegment;
      if (oldest !== null && oldest < below) below = oldest;
    }
    if (below <= this.#oldestSegment) return;
    this.#batch().chunks.push({ op: "deleteSegments", from: this.#oldestSegment, below });
    for (let id = this.#oldestSegment; id < below; id++) this.#segmentSizes.delete(id);
    this.#oldestSegment = below;
  }

  #encode(record: LogRecord): Uint8Array {
    return encodeRecord(record, this.#verify);
  }

  #enqueueWrite(segment: number, frame: Uint8Array): void {
    const chunks = this.#batch().chunks;
    const last = chunks.at(-1);
    if (last?.op === "write" && last.segment === segment) last.parts.push(frame);
    else chunks.push({ op: "write", segment, parts: [frame] });
    this.#segmentSizes.set(segment, this.#segmentSizes.get(segment)! + frame.length);
  }

  #batch(): Batch {
    this.#pending ??= { chunks: [], waiters: [], appends: 0, durable: false };
    return this.#pending;
  }

  /**
   * A promise that resolves when everything queued so far is durable. Not `durable`: it starts no
   * flush, and resolves with the next batch that does.
   */
  #barrier(appends = 0, durable = true): Promise<void> {
    const batch = this.#batch();
    batch.appends += appends;
    const done = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    if (durable) {
      batch.durable = true;
      this.#scheduleFlush();
    }
    return done;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#inFlight !== null) return;
    this.#flushScheduled = true;
    // setImmediate, not a microtask: appends made anywhere in this turn (including after awaits
    // that resolve within it) join the same batch.
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#inFlight !== null || this.#pending?.durable !== true || this.#failure !== null) return;
    const batch = this.#pending;
    this.#pending = null;
    const ops: WorkerOp[] = [];
    const transfer: ArrayBuffer[] = [];
    let bytes = 0;
    let onlyWrites = true;
    for (const c of batch.chunks) {
      if (c.op === "write") {
        const buf = concat(c.parts);
        ops.push({ op: "write", segment: c.segment, buf });
        transfer.push(buf.buffer as ArrayBuffer);
        bytes += buf.length;
        onlyWrites &&= c.segment === this.#writer.segment;
      } else {
        ops.push(c);
        onlyWrites = false;
      }
    }
    this.#batches++;
    this.#appendsBatched += batch.appends;
    // Rotations and deletions fsync the directory too: always the worker's.
    if (this.#inlineWrites && onlyWrites && bytes <= INLINE_BYTES_MAX && performance.now() >= this.#workerOnlyUntil) {
      this.#runInline(batch, ops);
      return;
    }
    const seq = ++this.#seq;
    this.#inFlight = { ...batch, seq };
    this.#worker.ref();
    this.#post({ type: "batch", seq, ops, state: this.#writer }, transfer);
  }

  /** Runs `batch` on this thread (the worker is idle: nothing is in flight). */
  #runInline(batch: Batch, ops: readonly WorkerOp[]): void {
    const t0 = performance.now();
    const writer = new SegmentWriter(this.#init, this.#writer);
    try {
      writer.runBatch(ops);
    } catch (error) {
      const failure = workerWriteError(errorReport(-1, error, writer.activeFile));
      this.#fail(failure);
      for (const w of batch.waiters) w.reject(failure);
      return;
    }
    const took = performance.now() - t0;
    if (took > INLINE_SLOW_MS) {
      this.#workerOnlyUntil = t0 + took + this.#backoffMs;
      this.#backoffMs = Math.min(2 * this.#backoffMs, INLINE_BACKOFF_MAX_MS);
    } else {
      this.#backoffMs = INLINE_BACKOFF_MS;
    }
    this.#inlineBatches++;
    this.#adopt(writer.state());
    for (const w of batch.waiters) w.resolve();
    this.#becameIdle();
  }

  /** Takes the writer's state back after a batch, and its fsync counters for `stats()`. */
  #adopt(state: WriterState): void {
    if (state.fsyncs > this.#writer.fsyncs) this.#lastFsyncMs = state.lastFsyncMs;
    this.#fsyncs = state.fsyncs;
    this.#writer = state;
  }

  #post(msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.#worker.postMessage(msg, transfer);
  }

  #onWorkerMessage(msg: FromWorker): void {
    switch (msg.type) {
      case "ack": {
        const batch = this.#inFlight;
        // Invariant: the worker acks batches one at a time, in order.
        assert(batch !== null && batch.seq === msg.seq, `unexpected ack ${msg.seq}`);
        this.#inFlight = null;
        this.#adopt(msg.state);
        for (const w of batch.waiters) w.resolve();
        if (this.#pending?.durable === true) this.#flush(); // The next batch goes right after.
        else this.#becameIdle();
        return;
      }
      case "error":
        this.#fail(workerWriteError(msg));
        return;
      case "closed":
        this.#closedAck?.();
        return;
      case "ready":
        return;
    }
  }

  #whenIdle(resolve: () => void): void {
    if (this.#failure !== null || (this.#inFlight === null && this.#pending?.durable !== true)) resolve();
    else this.#idleWaiters.push(resolve);
  }

  #becameIdle(): void {
    this.#worker.unref();
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Fail-stop: after a failed write or fsync nothing can be known to be durable (fsyncgate). */
  #fail(error: WalIoError): void {
    if (this.#failure !== null) return;
    this.#failure = error;
    // First, before any waiter hears of it: a fail-stop handler exits here, so no code at all
    // runs between the failure and the stop.
    this.#onFailure?.(error);
    for (const batch of [this.#inFlight, this.#pending]) for (const w of batch?.waiters ?? []) w.reject(error);
    this.#inFlight = null;
    this.#pending = null;
    this.#becameIdle();
  }
}

async function createSegment(dir: string, id: number, fsync: boolean): Promise<void> {
  const handle = await open(join(dir, segmentFileName(id)), "wx");
  await handle.close();
  if (fsync) await fsyncDir(dir);
}
