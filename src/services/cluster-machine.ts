import { Packr } from "msgpackr";
import { KvMachine } from "./kv/kv-machine.ts";
import type { AppliedEntry, StateMachine } from "./state-machine.ts";

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** A group-0 command that records a member's peer address before it joins. */
export interface MemberCommand {
  readonly op: "member";
  readonly id: string;
  readonly peerAddr: string;
}

/** Encodes a member command as a log entry payload. */
export function encodeMemberCommand(cmd: MemberCommand): Uint8Array {
  return packr.pack(cmd);
}

/**
 * The state machine of group 0, the cluster's control group: the member address book that
 * every node needs to reach a new member, and the key-value register.
 */
export class ClusterMachine implements StateMachine {
  readonly kv = new KvMachine();
  #members = new Map<string, string>();

  constructor(readonly onMember: (id: string, peerAddr: string) => void = () => {}) {}

  /** Peer addresses learnt through the log, by node id. */
  members(): ReadonlyMap<string, string> {
    return this.#members;
  }

  apply(entry: AppliedEntry): unknown {
    if (entry.data.length === 0) return null;
    const cmd = packr.unpack(entry.data) as { op?: unknown };
    if (cmd.op === "member") {
      const m = cmd as MemberCommand;
      this.#members.set(m.id, m.peerAddr);
      this.onMember(m.id, m.peerAddr);
      return { index: entry.index };
    }
    return this.kv.apply(entry);
  }

  snapshot(): Uint8Array {
    return packr.pack({ members: [...this.#members.entries()], kv: this.kv.snapshot() });
  }

  restore(data: Uint8Array): void {
    const s = packr.unpack(data) as { members: [string, string][]; kv: Uint8Array };
    this.#members = new Map(s.members);
    for (const [id, addr] of this.#members) this.onMember(id, addr);
    this.kv.restore(s.kv);
  }
}
