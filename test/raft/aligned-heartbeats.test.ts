/**
 * Heartbeats aligned on the host's beat: two groups whose leaders were elected at different
 * ticks heartbeat on the same ticks once the host passes its tick count, so a node sends each peer
 * one batch per interval whatever the number of groups it leads. Without a beat (the simulator's
 * ticks), a leader keeps counting from its election.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MessageType } from "../../src/raft/types.ts";
import { Network, type TestNode } from "./network.ts";

const HEARTBEAT_TICKS = 5;

/** Ticks `n` once (with `beat` when given) and returns whether it sent heartbeats. */
function heartbeats(net: Network, n: TestNode, beat?: number): boolean {
  n.raw.tick(beat);
  let sent = false;
  while (n.raw.hasReady()) sent = net.processReady(n).some((m) => m.type === MessageType.Heartbeat) || sent;
  return sent;
}

function leaderAfter(delayTicks: number): { net: Network; leader: TestNode } {
  const net = new Network(["n1", "n2", "n3"], { heartbeatTicks: HEARTBEAT_TICKS, checkQuorum: false });
  const leader = net.elect("n1");
  // Phases apart: this leader's own heartbeat counter is `delayTicks` ticks ahead.
  for (let i = 0; i < delayTicks; i++) heartbeats(net, leader);
  return { net, leader };
}

test("aligned heartbeats - leaders elected at different ticks heartbeat on the same host beats", () => {
  const a = leaderAfter(0);
  const b = leaderAfter(2);
  const beatsA: number[] = [];
  const beatsB: number[] = [];
  for (let beat = 100; beat < 100 + 4 * HEARTBEAT_TICKS; beat++) {
    if (heartbeats(a.net, a.leader, beat)) beatsA.push(beat);
    if (heartbeats(b.net, b.leader, beat)) beatsB.push(beat);
  }
  assert.deepEqual(beatsA, beatsB, "both heartbeat on the same beats");
  assert.equal(beatsA.length, 4, `one heartbeat per ${HEARTBEAT_TICKS} ticks: ${beatsA}`);
  for (const beat of beatsA) assert.equal((beat + 1) % HEARTBEAT_TICKS, 0, `beat ${beat} is on the interval's boundary`);
});

test("aligned heartbeats - without a beat, a leader counts from its own election", () => {
  const a = leaderAfter(0);
  const b = leaderAfter(2);
  const beatsA: number[] = [];
  const beatsB: number[] = [];
  for (let t = 0; t < 4 * HEARTBEAT_TICKS; t++) {
    if (heartbeats(a.net, a.leader)) beatsA.push(t);
    if (heartbeats(b.net, b.leader)) beatsB.push(t);
  }
  assert.equal(beatsA.length, 4);
  assert.equal(beatsB.length, 4);
  assert.notDeepEqual(beatsA, beatsB, "their phases differ");
});
