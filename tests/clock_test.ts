/**
 * Long durations: timers of any length through {@link chainLongTimers}, checked on a manual clock
 * that behaves like the runtime's timers (a delay above 2^31-1 ms fires after 1 ms), alone and
 * under the controller with the sim backend (`duration` 3e6 s and 1e308 s).
 */

import assert from "node:assert/strict";
import {
  chainLongTimers,
  type Clock,
  ManualClock,
  MAX_TIMER_MS,
  timeoutSignal,
} from "../core/clock.ts";
import { type Controller, type ControllerState, createController } from "../lib/controller.ts";
import { SimDevice } from "../devices/sim.ts";

/** A clock with the runtime's limit: longer delays are cut to 1 ms (and counted). */
function runtimeLike(manual: ManualClock): Clock & { overflows: number[] } {
  const overflows: number[] = [];
  return {
    overflows,
    now: () => manual.now(),
    setTimeout: (fn, ms) => {
      if (ms > MAX_TIMER_MS) overflows.push(ms);
      return manual.setTimeout(fn, ms > MAX_TIMER_MS ? 1 : ms);
    },
    clearTimeout: (handle) => manual.clearTimeout(handle),
  };
}

const DAY = 86_400_000;

Deno.test("chainLongTimers: a 100-day timer fires exactly when due, never early", async () => {
  const manual = new ManualClock();
  const inner = runtimeLike(manual);
  const clock = chainLongTimers(inner);
  const start = manual.now();
  let firedAt: number | undefined;
  clock.setTimeout(() => (firedAt = manual.now()), 100 * DAY);
  await manual.advance(100 * DAY - 1);
  assert.equal(firedAt, undefined);
  await manual.advance(1);
  assert.equal(firedAt, start + 100 * DAY);
  assert.deepEqual(inner.overflows, [], "no runtime timer above 2^31-1 ms");
  assert.equal(manual.pending, 0);
});

Deno.test("chainLongTimers: short timers are single runtime timers; Infinity never fires", async () => {
  const manual = new ManualClock();
  const clock = chainLongTimers(runtimeLike(manual));
  const fired: string[] = [];
  clock.setTimeout(() => fired.push("short"), 5);
  clock.setTimeout(() => fired.push("nan"), NaN);
  clock.setTimeout(() => fired.push("never"), Infinity);
  assert.equal(manual.pending, 3);
  await manual.advance(5);
  assert.deepEqual(fired, ["nan", "short"]);
  await manual.advance(1000 * DAY);
  assert.deepEqual(fired, ["nan", "short"]);
  assert.equal(manual.pending, 1, "one link of the endless chain");
});

Deno.test("chainLongTimers: clearTimeout stops a chain between links", async () => {
  const manual = new ManualClock();
  const clock = chainLongTimers(runtimeLike(manual));
  let fired = false;
  const handle = clock.setTimeout(() => (fired = true), 60 * DAY);
  await manual.advance(30 * DAY);
  clock.clearTimeout(handle);
  assert.equal(manual.pending, 0);
  await manual.advance(60 * DAY);
  assert.equal(fired, false);
});

Deno.test("timeoutSignal aborts with TimeoutError after any delay and clears", async () => {
  const manual = new ManualClock();
  const clock = chainLongTimers(runtimeLike(manual));
  const long = timeoutSignal(40 * DAY, clock);
  await manual.advance(40 * DAY - 1);
  assert.equal(long.signal.aborted, false);
  await manual.advance(1);
  assert.equal(long.signal.aborted, true);
  assert.equal((long.signal.reason as DOMException).name, "TimeoutError");
  const cleared = timeoutSignal(10, clock);
  cleared.clear();
  await manual.advance(20);
  assert.equal(cleared.signal.aborted, false);
});

/**
 * Acquires `duration` seconds with the sim under the controller on a runtime-like clock wrapped by
 * {@link chainLongTimers}; after `runFor` ms the acquisition must still be integrating, and
 * `end` must bring it to READY. No ERROR on the way and no runtime timer above 2^31-1 ms.
 */
async function checkLongAcquisition(
  duration: number,
  runFor: number,
  end: (manual: ManualClock, controller: Controller) => Promise<void>,
) {
  const manual = new ManualClock();
  const inner = runtimeLike(manual);
  const clock = chainLongTimers(inner);
  const states: ControllerState[] = [];
  const controller = createController({
    device: (ctx) => new SimDevice(ctx, clock),
    env: { SIM_SEED: "1", SIM_CHANNELS: "a", SIM_NUM_IMAGES: "2", SIM_IMAGE_SIZE: "4x4" },
    runtimeInterval: 0,
    clock,
  });
  controller.subscribe({ state: ({ state }) => states.push(state) });
  try {
    await controller.start();
    await manual.advance(0);
    assert.equal(controller.state, "READY");
    await controller.request({ kind: "command", command: "Acquire", duration });
    await manual.advance(runFor);
    assert.equal(controller.state, "INTEGRATE", controller.errors.join("; "));
    await end(manual, controller);
    await manual.advance(0);
    assert.equal(controller.state, "READY", controller.errors.join("; "));
    assert.ok(!states.includes("ERROR"), states.join(" "));
    assert.deepEqual(inner.overflows, []);
  } finally {
    await controller.stop();
  }
}

Deno.test("controller + sim: duration 3e6 s integrates 3e6 s, then READY (no ERROR)", async () => {
  await checkLongAcquisition(3e6, 3e9 - 1, (manual) => manual.advance(1));
});

Deno.test("controller + sim: duration 1e308 s keeps integrating until cancelled", async () => {
  await checkLongAcquisition(1e308, 3650 * DAY, async (_manual, controller) => {
    await controller.request({ kind: "command", command: "Cancel" });
  });
});
