/**
 * Keeping the event loop free: the turn budget of stream consumers (a loop that worked longer than
 * its budget waits for a later turn) and the event-loop lag monitor (a timer that records its own
 * lateness), both on injected time.
 */

import assert from "node:assert/strict";
import { TurnBudget } from "../core/turn_budget.ts";
import { LoopLagMonitor, type LoopStall, threadCpuMs } from "../core/loop_lag.ts";
import type { Clock, TimerHandle } from "../core/clock.ts";

Deno.test("turn budget: no pause within the budget, a later turn after it", async () => {
  let now = 0;
  const turns: (() => void)[] = [];
  const budget = new TurnBudget({ budgetMs: 4, now: () => now, schedule: (f) => turns.push(f) });
  now = 3.9;
  assert.equal(budget.pause(), undefined);
  now = 4;
  const pause = budget.pause();
  assert.ok(pause instanceof Promise);
  assert.equal(turns.length, 1, "a later turn was asked for");
  assert.equal(budget.pauses, 1);
  let resumed = false;
  void pause.then(() => resumed = true);
  await Promise.resolve();
  assert.equal(resumed, false, "nothing goes on before that turn");
  now = 10;
  turns.shift()!();
  await pause;
  assert.equal(resumed, true);
  // The new slice started on that turn.
  now = 13;
  assert.equal(budget.pause(), undefined);
  now = 14;
  assert.ok(budget.pause() instanceof Promise);
});

Deno.test("turn budget: restart begins a new slice (the loop waited for input)", () => {
  let now = 0;
  const budget = new TurnBudget({ budgetMs: 4, now: () => now, schedule: () => {} });
  now = 100;
  budget.restart();
  now = 102;
  assert.equal(budget.pause(), undefined);
  assert.equal(budget.pauses, 0);
});

/** A clock whose timers fire only when the test says, at a time the test chooses. */
class HandClock implements Clock {
  time = 0;
  timers = new Map<number, { at: number; fn: () => void }>();
  #seq = 0;
  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    this.timers.set(++this.#seq, { at: this.time + ms, fn });
    return this.#seq;
  }
  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }
  /** Fires the one pending timer `lateMs` after it was due. */
  fire(lateMs: number): void {
    const [[id, timer]] = [...this.timers];
    this.timers.delete(id);
    this.time = timer.at + lateMs;
    timer.fn();
  }
}

Deno.test("loop lag: records the lateness of its timer and reports stalls", () => {
  const clock = new HandClock();
  const stalls: LoopStall[] = [];
  const monitor = new LoopLagMonitor({
    intervalMs: 10,
    stallMs: 100,
    clock,
    onStall: (stall) => stalls.push(stall),
  });
  monitor.start();
  monitor.start(); // no second timer
  assert.equal(clock.timers.size, 1);
  clock.fire(0);
  clock.fire(3);
  clock.fire(150); // the thread was blocked for 150 ms
  clock.fire(1);
  assert.deepEqual(stalls, [{ lagMs: 150, busyMs: undefined }]);
  assert.deepEqual(monitor.take(), { maxMs: 150, maxBusyMs: undefined, ticks: 4 });
  clock.fire(20);
  assert.deepEqual(monitor.take(), { maxMs: 20, maxBusyMs: undefined, ticks: 1 }, "new sample");
  monitor.stop();
  assert.equal(clock.timers.size, 0);
});

Deno.test("loop lag: the busy part of a lag is the thread's own CPU time meanwhile", () => {
  const clock = new HandClock();
  let cpu = 1000;
  const stalls: LoopStall[] = [];
  const monitor = new LoopLagMonitor({
    intervalMs: 10,
    stallMs: 100,
    clock,
    cpuMs: () => cpu,
    onStall: (stall) => stalls.push(stall),
  });
  monitor.start();
  cpu += 300; // working: 300 ms of CPU, the timer 300 ms late
  clock.fire(300);
  cpu += 20; // waiting for a CPU: 400 ms late, 20 ms of own work
  clock.fire(400);
  assert.deepEqual(stalls, [{ lagMs: 300, busyMs: 300 }, { lagMs: 400, busyMs: 20 }]);
  assert.deepEqual(monitor.take(), { maxMs: 400, maxBusyMs: 300, ticks: 2 });
  monitor.stop();
});

Deno.test("loop lag: this thread's CPU time grows while it works (Linux)", () => {
  const before = threadCpuMs();
  if (Deno.build.os !== "linux") return;
  assert.ok(before !== undefined, "readable with read permission");
  const start = performance.now();
  let x = 0;
  while (threadCpuMs()! - before < 30 && performance.now() - start < 60_000) x++;
  assert.ok(threadCpuMs()! - before >= 30 && x > 0);
});
