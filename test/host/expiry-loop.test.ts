import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ExpiryLoop, expiryStateChanged } from "../../src/host/expiry-loop.ts";
import { createLogger } from "../../src/host/logger.ts";
import { wallNow } from "../../src/host/wall-clock.ts";

const log = createLogger("test", "silent");

/** A leader's machine with one deadline; `expire` clears it, like an applied expire would. */
function fakeLoop(leader = true): { loop: ExpiryLoop; state: { deadline: number | null; looks: number; expiredAt: number[] } } {
  const state = { deadline: null as number | null, looks: 0, expiredAt: [] as number[] };
  const loop = new ExpiryLoop({
    isLeader: () => leader,
    nextDeadline: () => {
      state.looks++;
      return state.deadline;
    },
    expire: () => {
      state.expiredAt.push(wallNow());
      state.deadline = null;
      expiryStateChanged();
      return Promise.resolve();
    },
    log,
    what: "test",
  });
  return { loop, state };
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(5);
}

test("expiry loop - a deadline is expired once it passes, with no apply in between, never before", async () => {
  const { loop, state } = fakeLoop();
  state.deadline = wallNow() + 80;
  const deadline = state.deadline;
  loop.start();
  try {
    await until(() => state.expiredAt.length > 0, 5000);
    assert.equal(state.expiredAt.length, 1);
    assert.ok(state.expiredAt[0]! >= deadline, "expired before its deadline");
  } finally {
    loop.stop();
  }
});

test("expiry loop - a deadline that appears through an apply is seen without waiting for the previous one", async () => {
  const { loop, state } = fakeLoop();
  state.deadline = wallNow() + 60_000;
  loop.start();
  try {
    await sleep(50);
    state.deadline = wallNow() + 30;
    expiryStateChanged();
    await until(() => state.expiredAt.length > 0, 5000);
    assert.equal(state.expiredAt.length, 1, "the new, earlier deadline was not expired");
  } finally {
    loop.stop();
  }
});

test("expiry loop - idle: with nothing due and nothing applied, the loop does not poll; a follower never expires", async () => {
  const { loop, state } = fakeLoop();
  const follower = fakeLoop(false);
  follower.state.deadline = wallNow() - 1;
  loop.start();
  follower.loop.start();
  try {
    await sleep(500);
    // A 20 ms poll would have looked about 25 times; one look at start, and at most one more
    // if the 1 s safety wake-up came early, is what a sleeping loop does.
    assert.ok(state.looks <= 2, `looked ${state.looks} times in 500 ms`);
    assert.equal(follower.state.expiredAt.length, 0);
  } finally {
    loop.stop();
    follower.loop.stop();
  }
});
