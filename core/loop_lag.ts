/**
 * Event-loop lag: a timer that records how late it fires. Whatever blocks the one JavaScript
 * thread (a long synchronous step, a garbage-collection pause, a burst of callbacks) delays every
 * socket the process serves by the same amount, so the lateness of a periodic timer is the delay
 * a Channel Access search or read saw at that moment.
 *
 * The monitor keeps the largest lag since the last {@link LoopLagMonitor.take} and reports every
 * single lag above a threshold through a callback (the IOC logs it).
 *
 * On a shared machine a timer is also late when the process simply got no CPU. Given the CPU
 * time of the thread ({@link threadCpuMs}: Linux, read permission for `/proc`), the monitor tells
 * the two apart: the *busy* part of a lag is the CPU time the thread itself used in that interval
 * (work that blocked the loop), the rest was waiting for a CPU.
 *
 * @module
 */

import { type Clock, systemClock, type TimerHandle } from "./clock.ts";
import { parseProcStat } from "./proc_stat.ts";

/** Options of {@link LoopLagMonitor}. */
export interface LoopLagOptions {
  /** Timer period in ms (default 10). */
  intervalMs?: number;
  /** A lag of at least this many ms is reported to `onStall` (default 100). */
  stallMs?: number;
  /** Called with each lag of at least `stallMs` ms. */
  onStall?: (stall: LoopStall) => void;
  /** Time and timers (default the system clock). */
  clock?: Clock;
  /** CPU time of this thread in ms, or undefined when unknown (see {@link threadCpuMs}). */
  cpuMs?: () => number | undefined;
}

/** Largest lag and number of ticks since the last {@link LoopLagMonitor.take}. */
export interface LoopLagSample {
  /** Largest lateness of one tick, ms. */
  maxMs: number;
  /**
   * Largest busy part of a lag: the CPU time the thread used while its timer was late (at most
   * the lag), ms; undefined without CPU times.
   */
  maxBusyMs: number | undefined;
  /** Ticks measured. */
  ticks: number;
}

/** What {@link LoopLagOptions.onStall} hears. */
export interface LoopStall {
  /** How late the timer fired, ms. */
  lagMs: number;
  /** The CPU time the thread used meanwhile (at most `lagMs`); undefined when unknown. */
  busyMs: number | undefined;
}

let statPath: string | undefined | null;

/**
 * CPU time (user + system) of the calling thread in ms from `/proc/thread-self/stat` (10 ms
 * resolution), or undefined where that is not readable (not Linux, no read permission: never
 * prompts).
 */
export function threadCpuMs(): number | undefined {
  if (statPath === undefined) {
    statPath = null;
    try {
      const path = "/proc/thread-self/stat";
      if (
        Deno.build.os === "linux" &&
        Deno.permissions.querySync({ name: "read", path }).state === "granted"
      ) statPath = path;
    } catch {
      statPath = null;
    }
  }
  if (statPath === null) return undefined;
  try {
    const { cpuMs } = parseProcStat(Deno.readTextFileSync(statPath));
    return Number.isFinite(cpuMs) ? cpuMs : undefined;
  } catch {
    return undefined;
  }
}

/** Measures event-loop lag while started; see the module doc. */
export class LoopLagMonitor {
  #interval: number;
  #stall: number;
  #onStall: ((stall: LoopStall) => void) | undefined;
  #clock: Clock;
  #cpuMs: (() => number | undefined) | undefined;
  #timer: TimerHandle | undefined;
  #due = 0;
  #max = 0;
  #maxBusy: number | undefined;
  #ticks = 0;
  #cpuAtArm: number | undefined;

  /** Creates a stopped monitor. */
  constructor(options: LoopLagOptions = {}) {
    this.#interval = options.intervalMs ?? 10;
    this.#stall = options.stallMs ?? 100;
    this.#onStall = options.onStall;
    this.#clock = options.clock ?? systemClock;
    this.#cpuMs = options.cpuMs;
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
    const sample = { maxMs: this.#max, maxBusyMs: this.#maxBusy, ticks: this.#ticks };
    this.#max = 0;
    this.#maxBusy = undefined;
    this.#ticks = 0;
    return sample;
  }

  #arm(): void {
    this.#cpuAtArm = this.#cpuMs?.();
    this.#due = this.#clock.now() + this.#interval;
    this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#interval);
  }

  #tick(): void {
    const lag = Math.max(0, this.#clock.now() - this.#due);
    const cpu = this.#cpuAtArm === undefined ? undefined : this.#cpuMs?.();
    const busy = cpu === undefined ? undefined : Math.min(lag, Math.max(0, cpu - this.#cpuAtArm!));
    this.#ticks++;
    if (lag > this.#max) this.#max = lag;
    if (busy !== undefined && busy > (this.#maxBusy ?? -1)) this.#maxBusy = busy;
    if (lag >= this.#stall) this.#onStall?.({ lagMs: lag, busyMs: busy });
    this.#arm();
  }
}
