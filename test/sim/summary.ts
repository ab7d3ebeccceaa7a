/** Aggregates per-seed results into the one summary the CLI and tests print. */
import type { RunResult } from "./simulate.ts";

/** Running totals over many seeds. */
export class Summary {
  seeds = 0;
  elections = 0;
  commits = 0;
  commandsApplied = 0;
  crashes = 0;
  partitions = 0;
  transfers = 0;
  confChangesProposed = 0;
  snapshotsTaken = 0;
  snapshotsInstalled = 0;
  readsChecked = 0;
  valueReads = 0;
  kvCommands = 0;
  lockCommands = 0;
  queueCommands = 0;
  lockGrants = 0;
  deadlocks = 0;
  sessionExpiries = 0;
  queueDelivered = 0;
  queueRedelivered = 0;
  deadLettered = 0;
  digestsCompared = 0;
  messagesSent = 0;
  livenessStepsMax = 0;

  /** Fold one seed's result in. */
  add(r: RunResult): void {
    this.seeds++;
    this.elections += r.elections;
    this.commits += r.commitIndex;
    this.commandsApplied += r.stats.commandsApplied;
    this.crashes += r.stats.crashes;
    this.partitions += r.stats.partitions;
    this.transfers += r.stats.transfers;
    this.confChangesProposed += r.stats.confChangesProposed;
    this.snapshotsTaken += r.stats.snapshotsTaken;
    this.snapshotsInstalled += r.stats.snapshotsInstalled;
    this.readsChecked += r.stats.readsChecked;
    this.valueReads += r.stats.valueReads;
    this.kvCommands += r.stats.kvCommands;
    this.lockCommands += r.stats.lockCommands;
    this.queueCommands += r.stats.queueCommands;
    this.lockGrants += r.services.grants;
    this.deadlocks += r.services.deadlocks;
    this.sessionExpiries += r.services.sessionExpiries;
    this.queueDelivered += r.services.delivered;
    this.queueRedelivered += r.services.redelivered;
    this.deadLettered += r.services.deadLettered;
    this.digestsCompared += r.digestsCompared;
    this.messagesSent += r.messages.sent;
    this.livenessStepsMax = Math.max(this.livenessStepsMax, r.livenessSteps);
  }

  /** One human-readable line. `elapsedS` is wall-clock seconds (the harness's only real time). */
  format(steps: number, elapsedS: number): string {
    return [
      `seeds=${this.seeds} steps/seed=${steps} (+liveness)`,
      `elections=${this.elections}`,
      `commits=${this.commits}`,
      `commandsApplied=${this.commandsApplied}`,
      `crashes=${this.crashes}`,
      `partitions=${this.partitions}`,
      `transfers=${this.transfers}`,
      `confChanges=${this.confChangesProposed}`,
      `snapshotsTaken=${this.snapshotsTaken}`,
      `snapshotsInstalled=${this.snapshotsInstalled}`,
      `readsChecked=${this.readsChecked}`,
      `valueReads=${this.valueReads}`,
      `commands(kv/lock/queue)=${this.kvCommands}/${this.lockCommands}/${this.queueCommands}`,
      `lock(grants/deadlocks/sessionExpiries)=${this.lockGrants}/${this.deadlocks}/${this.sessionExpiries}`,
      `queue(delivered/redelivered/deadLettered)=${this.queueDelivered}/${this.queueRedelivered}/${this.deadLettered}`,
      `digestsCompared=${this.digestsCompared}`,
      `messages=${this.messagesSent}`,
      `livenessStepsMax=${this.livenessStepsMax}`,
      `elapsed=${elapsedS.toFixed(1)}s`,
    ].join(" ");
  }
}
