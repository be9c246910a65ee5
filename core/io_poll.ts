/**
 * How often the runtime polls its sockets while the event loop stays busy.
 *
 * Deno runs the JavaScript event loop of a thread as one task of a single-threaded tokio
 * scheduler, and tokio asks the operating system for socket readiness (`epoll_wait`) only when
 * the scheduler runs out of ready tasks, or after `event_interval` task polls (default 61). A
 * loop that keeps itself ready — a fast stream whose socket always has data (its reads complete
 * at once, without readiness), decode workers posting results, `setImmediate` turns — is polled
 * turn after turn, and every other socket of the thread waits 61 turns: measured on the EIGER
 * stream at 1000 frames/s (turns of 4–8 ms), the main thread made no `epoll_wait` for 0.3–0.83 s
 * at a time while its timers ran on time, and Channel Access requests waited that long for each
 * round trip (probes of 1.3–3.3 s). The interval is read once, from `DENO_TOKIO_EVENT_INTERVAL`,
 * when the runtime starts, so it cannot be changed from inside; the launchers set it to 1 and
 * the IOC warns at startup when it runs with a larger one.
 *
 * @module
 */

/** Environment variable the runtime reads its socket-poll interval from (at startup). */
export const IO_POLL_ENV = "DENO_TOKIO_EVENT_INTERVAL";

/** The runtime's interval when the variable is not set (tokio's default). */
export const DEFAULT_IO_POLL_INTERVAL = 61;

/** Interval the IOC should run with: sockets are polled after every event-loop turn. */
export const RECOMMENDED_IO_POLL_INTERVAL = 1;

/** Result of {@link ioPollInterval}. */
export interface IoPollInterval {
  /** Task polls between socket polls the runtime uses. */
  interval: number;
  /** Whether sockets are polled after every turn (the recommended setting). */
  ok: boolean;
}

/**
 * The socket-poll interval the runtime uses for the value of {@link IO_POLL_ENV} (undefined when
 * not set). The runtime refuses to start with a value that is not a whole number, so any other
 * text only occurs in tests; it counts as the default.
 */
export function ioPollInterval(value: string | undefined): IoPollInterval {
  const parsed = value === undefined ? NaN : Number(value);
  const interval = Number.isInteger(parsed) && parsed > 0 ? parsed : DEFAULT_IO_POLL_INTERVAL;
  return { interval, ok: interval <= RECOMMENDED_IO_POLL_INTERVAL };
}
