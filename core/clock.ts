/**
 * Injectable clock: wall time and timers. The controller and the sim backend take a {@link Clock}
 * so tests can drive time by hand ({@link ManualClock}) instead of sleeping.
 *
 * @module
 */

import { clearImmediate, setImmediate } from "node:timers";

/** Opaque handle of a timer started by a {@link Clock}. */
export type TimerHandle = number | object;

/** Time source and timer service. */
export interface Clock {
  /** Current time in milliseconds since the Unix epoch (may be fractional). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer (unknown or fired handles are ignored). */
  clearTimeout(handle: TimerHandle): void;
}

interface SystemTimer {
  immediate?: ReturnType<typeof setImmediate>;
  timeout?: ReturnType<typeof setTimeout>;
}

/**
 * The real clock: `Date.now()` with sub-millisecond precision and the runtime's timers. Delays
 * below 1 ms use `setImmediate` (runs after pending I/O, without the ~1 ms minimum delay of
 * `setTimeout`), which matters for back-to-back acquisitions.
 */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimeout: (fn, ms): SystemTimer =>
    ms < 1 ? { immediate: setImmediate(fn) } : { timeout: setTimeout(fn, ms) },
  clearTimeout: (handle) => {
    const h = handle as SystemTimer;
    if (h.immediate !== undefined) clearImmediate(h.immediate);
    if (h.timeout !== undefined) clearTimeout(h.timeout);
  },
};

/**
 * Resolves after `ms` milliseconds of `clock` time, or rejects with the signal's reason when
 * `signal` aborts first. `ms <= 0` resolves at once (in a microtask).
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal?.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

interface PendingTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/** A clock for tests: time stands still until {@link ManualClock.advance} moves it. */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers = new Map<number, PendingTimer>();

  /** Starts at `start` ms since the epoch (default 2026-01-01T00:00:00Z). */
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  /** Current manual time. */
  now(): number {
    return this.#now;
  }

  /** Registers a timer due at `now() + ms`. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#now + Math.max(0, ms), seq, fn });
    return seq;
  }

  /** Removes a pending timer. */
  clearTimeout(handle: TimerHandle): void {
    if (typeof handle === "number") this.#timers.delete(handle);
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order; after each timer, lets pending
   * microtasks (promise continuations) run so that async code reacts as it would in real time.
   */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await flushMicrotasks();
    for (let fired = 0;; fired++) {
      if (fired > 100_000) throw new Error("ManualClock.advance: timers keep re-arming at once");
      let next: PendingTimer | undefined;
      for (const t of this.#timers.values()) {
        if (
          t.at <= end &&
          (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq))
        ) {
          next = t;
        }
      }
      if (next === undefined) break;
      this.#timers.delete(next.seq);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await flushMicrotasks();
    }
    this.#now = end;
    await flushMicrotasks();
  }
}

/** Lets queued promise continuations run (a macrotask boundary). */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
