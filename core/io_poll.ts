/**
 * How often the runtime polls its sockets, and which of its tasks it runs first, while the event
 * loop stays busy.
 *
 * Deno runs the JavaScript event loop of a thread as one task of a single-threaded tokio
 * scheduler, and the pending operations (socket reads and writes, worker messages) as a second
 * task that polls them. Two settings of that scheduler decide how long a Channel Access request
 * waits while a fast image stream keeps the loop busy; the runtime reads both from the
 * environment once, when it starts, so they cannot be changed from inside:
 *
 * - `DENO_TOKIO_EVENT_INTERVAL` (default 61): the scheduler asks the operating system for socket
 *   readiness (`epoll_wait`) only when no task is ready, or after this many task polls. A loop
 *   that keeps itself ready (a stream whose socket always has data, decode workers posting
 *   results, `setImmediate` turns) was polled turn after turn, and every other socket waited 61
 *   turns: on the EIGER stream at 1000 frames/s the main thread made no `epoll_wait` for
 *   0.3–0.83 s at a time, and CA probes took 1.3–3.3 s.
 * - `DENO_TOKIO_GLOBAL_QUEUE_INTERVAL` (default 31): a task woken from another thread (a decode
 *   worker posting a result wakes the operations task) waits in the scheduler's shared queue,
 *   which is looked at only when the thread's own queue is empty or every 31st task poll. The
 *   event-loop task requeues itself on the own queue turn after turn during a stream, so once a
 *   worker's message had woken the operations task, every socket read it should complete waited
 *   up to 31 turns: `strace` showed the CA socket reported readable by `epoll_wait` and read
 *   0.25–0.42 s later, with 50–80 event-loop turns in between (the loop's timer on time).
 *
 * The launchers (`npm start`, the systemd unit, the container, the test harness) set both to 1,
 * and a program started without them restarts itself once with them set (`lib/runtime_reexec.ts`).
 *
 * @module
 */

/** Environment variable the runtime reads its socket-poll interval from (at startup). */
export const IO_POLL_ENV = "DENO_TOKIO_EVENT_INTERVAL";

/** Environment variable the runtime reads its shared-queue interval from (at startup). */
export const GLOBAL_QUEUE_ENV = "DENO_TOKIO_GLOBAL_QUEUE_INTERVAL";

/** The runtime's defaults when the variables are not set (Deno's values). */
export const DEFAULT_RUNTIME_POLLING: Readonly<Record<string, number>> = {
  [IO_POLL_ENV]: 61,
  [GLOBAL_QUEUE_ENV]: 31,
};

/** The runtime's socket-poll interval when {@link IO_POLL_ENV} is not set. */
export const DEFAULT_IO_POLL_INTERVAL = DEFAULT_RUNTIME_POLLING[IO_POLL_ENV];

/** Interval the IOC should run with: sockets are polled after every event-loop turn. */
export const RECOMMENDED_IO_POLL_INTERVAL = 1;

/** Environment the IOC should run with: both intervals 1 (see the module doc). */
export const RECOMMENDED_RUNTIME_POLLING: Readonly<Record<string, string>> = {
  [IO_POLL_ENV]: "1",
  [GLOBAL_QUEUE_ENV]: "1",
};

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
  return runtimeInterval(IO_POLL_ENV, value);
}

function runtimeInterval(name: string, value: string | undefined): IoPollInterval {
  const parsed = value === undefined ? NaN : Number(value);
  const interval = Number.isInteger(parsed) && parsed > 0 ? parsed : DEFAULT_RUNTIME_POLLING[name];
  return { interval, ok: interval <= 1 };
}

/** Result of {@link runtimePolling}. */
export interface RuntimePolling {
  /** The interval the runtime uses, per variable of {@link RECOMMENDED_RUNTIME_POLLING}. */
  intervals: Record<string, number>;
  /** Variables not set at all (the runtime uses its default). */
  unset: string[];
  /** Whether every interval is the recommended 1. */
  ok: boolean;
}

/** The runtime's polling settings for an environment (see the module doc). */
export function runtimePolling(env: Readonly<Record<string, string | undefined>>): RuntimePolling {
  const intervals: Record<string, number> = {};
  const unset: string[] = [];
  let ok = true;
  for (const name of Object.keys(RECOMMENDED_RUNTIME_POLLING)) {
    const value = env[name];
    if (value === undefined) unset.push(name);
    const interval = runtimeInterval(name, value);
    intervals[name] = interval.interval;
    ok &&= interval.ok;
  }
  return { intervals, unset, ok };
}
