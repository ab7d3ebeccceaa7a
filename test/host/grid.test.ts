import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { everyOnGrid, msToGrid } from "../../src/host/grid.ts";

test("grid - the time to the next multiple of a period on the epoch clock", () => {
  const origin = performance.timeOrigin;
  // `now` values chosen so that timeOrigin + now lands 10 ms after, exactly on, and 1 ms before a multiple of 50.
  const on = 50 * Math.ceil(origin / 50) + 1000 - origin;
  assert.ok(Math.abs(msToGrid(50, on + 10) - 40) < 1e-6);
  assert.ok(Math.abs(msToGrid(50, on) - 50) < 1e-6, "on the grid: a whole period to the next instant");
  assert.ok(Math.abs(msToGrid(50, on - 1) - 1) < 1e-6);
});

test("grid - jobs whose periods divide one another run in the same turn of the event loop, and stop when told", async () => {
  let fastJustRan = false;
  let fast = 0;
  let slow = 0;
  let slowAlone = 0;
  const stopFast = everyOnGrid(20, () => {
    fast++;
    fastJustRan = true;
    // Cleared once this turn's callbacks are done.
    queueMicrotask(() => (fastJustRan = false));
  });
  const stopSlow = everyOnGrid(60, () => {
    slow++;
    if (!fastJustRan) slowAlone++;
  });
  try {
    const end = performance.now() + 5000;
    while (slow < 3 && performance.now() < end) await sleep(10);
  } finally {
    stopFast();
    stopSlow();
  }
  assert.ok(slow >= 3, `the 60 ms job ran ${slow} times in 5 s`);
  assert.ok(fast >= slow, `the 20 ms job ran ${fast} times, the 60 ms one ${slow}`);
  assert.equal(slowAlone, 0, "a 60 ms instant is a 20 ms instant: the two jobs share the wake-up");
  const [f, s] = [fast, slow];
  await sleep(150);
  assert.deepEqual([fast, slow], [f, s], "a stopped job ran again");
});

test("grid - a period must be positive", () => {
  assert.throws(() => everyOnGrid(0, () => {}), RangeError);
});
