/**
 * Event-loop lag: a timer that records how late it fires. Whatever blocks the one JavaScript
 * thread (a long synchronous step, a garbage-collection pause, a burst of callbacks) delays every
 * socket the process serves by the same amount, so the lateness of a periodic timer is the delay
 * a Channel Access search or read saw at that moment.
 *
 * The monitor keeps the largest lag since the last {@link LoopLagMonitor.take} and reports every
 * single lag above a threshold through a callback (the IOC logs it).
 *
 * @module
 */

import { type Clock, systemClock, type TimerHandle } from "./clock.ts";

/** Options of {@link LoopLagMonitor}. */
export interface LoopLagOptions {
  /** Timer period in ms (default 10). */
  intervalMs?: number;
  /** A lag of at least this many ms is reported to `onStall` (default 100). */
  stallMs?: number;
  /** Called with each lag of at least `stallMs` ms. */
  onStall?: (lagMs: number) => void;
  /** Time and timers (default the system clock). */
  clock?: Clock;
}

/** Largest lag and number of ticks since the last {@link LoopLagMonitor.take}. */
export interface LoopLagSample {
  /** Largest lateness of one tick, ms. */
  maxMs: number;
  /** Ticks measured. */
  ticks: number;
}

/** Measures event-loop lag while started; see the module doc. */
export class LoopLagMonitor {
  #interval: number;
  #stall: number;
  #onStall: ((lagMs: number) => void) | undefined;
  #clock: Clock;
  #timer: TimerHandle | undefined;
  #due = 0;
  #max = 0;
  #ticks = 0;

  /** Creates a stopped monitor. */
  constructor(options: LoopLagOptions = {}) {
    this.#interval = options.intervalMs ?? 10;
    this.#stall = options.stallMs ?? 100;
    this.#onStall = options.onStall;
    this.#clock = options.clock ?? systemClock;
  }

  /** Starts measuring (no effect when running). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#arm();
  }

  /** Stops measuring. */
  stop(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Returns the largest lag since the last call (or start) and starts a new sample. */
  take(): LoopLagSample {
    const sample = { maxMs: this.#max, ticks: this.#ticks };
    this.#max = 0;
    this.#ticks = 0;
    return sample;
  }

  #arm(): void {
    this.#due = this.#clock.now() + this.#interval;
    this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#interval);
  }

  #tick(): void {
    const lag = Math.max(0, this.#clock.now() - this.#due);
    this.#ticks++;
    if (lag > this.#max) this.#max = lag;
    if (lag >= this.#stall) this.#onStall?.(lag);
    this.#arm();
  }
}
