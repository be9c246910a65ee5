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

/**
 * Longest delay the runtime's `setTimeout` takes (2^31-1 ms, about 24.8 days); a longer one is
 * cut to 1 ms with a `TimeoutOverflowWarning`. {@link chainLongTimers} waits any length.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

interface ChainedTimer {
  inner?: TimerHandle;
  cancelled: boolean;
}

/**
 * Wraps a clock whose timers take at most {@link MAX_TIMER_MS} into one whose timers take any
 * delay, `Infinity` included (never fires): a longer delay is waited as a chain of timers of at
 * most {@link MAX_TIMER_MS}, each re-armed for what is left of the clock time.
 */
export function chainLongTimers(clock: Clock): Clock {
  return {
    now: () => clock.now(),
    setTimeout: (fn, ms): ChainedTimer => {
      const timer: ChainedTimer = { cancelled: false };
      const delay = ms > 0 ? ms : 0; // NaN and negative delays: at once
      const due = clock.now() + delay;
      const arm = (left: number) => {
        const capped = left > MAX_TIMER_MS;
        timer.inner = clock.setTimeout(() => {
          if (timer.cancelled) return;
          if (capped) arm(Math.max(0, due - clock.now()));
          else fn();
        }, capped ? MAX_TIMER_MS : left);
      };
      arm(delay);
      return timer;
    },
    clearTimeout: (handle) => {
      const timer = handle as ChainedTimer;
      timer.cancelled = true;
      if (timer.inner !== undefined) clock.clearTimeout(timer.inner);
    },
  };
}

interface RuntimeTimer {
  immediate?: ReturnType<typeof setImmediate>;
  timeout?: ReturnType<typeof setTimeout>;
}

/**
 * The runtime's own timers (at most {@link MAX_TIMER_MS}). Delays below 1 ms use `setImmediate`
 * (runs after pending I/O, without the ~1 ms minimum delay of `setTimeout`), which matters for
 * back-to-back acquisitions.
 */
const runtimeClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimeout: (fn, ms): RuntimeTimer =>
    ms < 1 ? { immediate: setImmediate(fn) } : { timeout: setTimeout(fn, ms) },
  clearTimeout: (handle) => {
    const h = handle as RuntimeTimer;
    if (h.immediate !== undefined) clearImmediate(h.immediate);
    if (h.timeout !== undefined) clearTimeout(h.timeout);
  },
};

/**
 * The real clock: `Date.now()` with sub-millisecond precision and the runtime's timers, for any
 * delay (longer ones chained, see {@link chainLongTimers}). Every timer of the IOC that depends
 * on a user-given time (duration, overdue) goes through it.
 */
export const systemClock: Clock = chainLongTimers(runtimeClock);

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

/** An abort signal that fires after a delay, and the function that stops its timer. */
export interface TimeoutSignal {
  /** Aborts with a `TimeoutError` `DOMException` after the delay (as `AbortSignal.timeout`). */
  signal: AbortSignal;
  /** Stops the timer (call once the guarded operation finished). */
  clear(): void;
}

/**
 * Like `AbortSignal.timeout(ms)` but for any delay on any clock (`AbortSignal.timeout` is limited
 * to {@link MAX_TIMER_MS}); call `clear` when done so the timer does not linger.
 */
export function timeoutSignal(ms: number, clock: Clock = systemClock): TimeoutSignal {
  const controller = new AbortController();
  const handle = clock.setTimeout(
    () => controller.abort(new DOMException("Signal timed out.", "TimeoutError")),
    ms,
  );
  return { signal: controller.signal, clear: () => clock.clearTimeout(handle) };
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
