/** Disk faults for the campaign, through the storage failpoints (see README "Disk failpoints"). */
import type { ChaosNode } from "./cluster.ts";
import type { NemesisOptions } from "./nemesis.ts";
import path from "node:path";
import { simulatePowerLoss } from "../../src/storage/power-loss.ts";

export interface DiskFaultSupport {
  /** Env for every node: record what is durable, so a power loss can be modelled. */
  readonly clusterEnv: Record<string, string>;
  readonly nemesis: Pick<NemesisOptions, "powerLoss" | "fsyncFailureEnv">;
}

export function diskFaultSupport(enabled: boolean): DiskFaultSupport {
  if (!enabled) return { clusterEnv: {}, nemesis: {} };
  return {
    clusterEnv: { DSYNC_FAILPOINTS: "record-synced" },
    nemesis: {
      powerLoss: async (node: ChaosNode) => {
        const r = await simulatePowerLoss(path.join(node.spec.dataDir, "wal"));
        return `${r.truncatedBytes} unsynced bytes dropped from ${r.files.filter((f) => f.bytesAfter < f.bytesBefore || f.removed).length} segment(s)`;
      },
      fsyncFailureEnv: (afterMs) => ({ DSYNC_FAILPOINTS: `record-synced,wal-fsync=eio@after-ms:${Math.round(afterMs)}` }),
    },
  };
}
