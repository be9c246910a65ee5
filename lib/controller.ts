/**
 * The controller: the state machine between a device backend and an application (the CA PV layer,
 * the viewer, or your own program). It owns the event queue, enforces the data protocol centrally
 * and hands finished image series to data hooks.
 *
 * ```ts
 * const controller = createController({ device: (ctx) => new SimDevice(ctx) });
 * controller.subscribe({
 *   state: ({ old, state }) => console.log(old, "->", state),
 *   data: (frame) => console.log(frame.ssqcnt, Object.keys(frame.images)),
 * });
 * await controller.start();
 * await controller.request({ kind: "command", command: "Acquire", duration: 0.5 });
 * ```
 *
 * States: INIT → WARMUP → READY → INTEGRATE → PROCESS → READY; INTEGRATE → CANCEL → READY;
 * any → ERROR (left with a Clear request; re-entered while the fault persists); any → FAIL
 * (unrecoverable; {@link Controller.done} resolves with `failed: true`).
 *
 * This module is the runner: it owns the queue, the clock, the device calls and the hooks. What
 * happens in which state is decided by the pure table in `lib/controller_table.ts`; the data
 * protocol is checked by `lib/series_assembler.ts`.
 *
 * @module
 */

import {
  type CommandRequest,
  configChange,
  configProblems,
  type Device,
  type DeviceConfig,
  type DeviceContext,
  type DeviceEvent,
  type MetaValue,
  type RuntimeStateEvent,
} from "../devices/contract.ts";
import { type Clock, systemClock, type TimerHandle } from "../core/clock.ts";
import { getLog, type Logger } from "../core/log.ts";
import { errorMessage } from "../core/errors.ts";
import {
  type ControllerState,
  type Effect,
  type Fault,
  initialMachine,
  type Input,
  type Machine,
  refusalOf,
  step,
  type TimerName,
} from "./controller_table.ts";
import {
  type Frame,
  SeriesAssembler,
  type SeriesInfo,
  seriesStackBytes,
} from "./series_assembler.ts";

export type { ControllerState } from "./controller_table.ts";
export type { Frame, SeriesInfo } from "./series_assembler.ts";

/** Numeric codes of the states, as in the original implementation (3 is unused). */
export const STATE_CODES: Readonly<Record<ControllerState, number>> = {
  INIT: 0,
  WARMUP: 1,
  READY: 2,
  INTEGRATE: 4,
  PROCESS: 5,
  CANCEL: 6,
  ERROR: 7,
  FAIL: 8,
};

/** Thrown (as a rejection of {@link Controller.request}) when a request makes no sense now. */
export class RequestRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RequestRefusedError";
  }
}

/** A state switch as seen by state hooks. */
export interface StateChange {
  old: ControllerState;
  state: ControllerState;
}

/** Callbacks an application registers with {@link Controller.subscribe}; all optional. */
export interface ControllerHooks {
  /** Called synchronously on every state switch (after the switch). */
  state?(change: StateChange): void;
  /** Called once when the configuration is known (before the first READY). */
  config?(config: DeviceConfig): void;
  /** Called when a device's StartData arrives (series id and number known). */
  seriesStart?(series: Readonly<SeriesInfo>): void;
  /**
   * Called in PROCESS with the complete series; READY follows when all data hooks settled. The
   * pixels are readable until the hook returns (or its promise settles); a hook that keeps them
   * longer calls {@link Frame.retain} and gives them back later (the rule: `devices/contract.ts`).
   */
  data?(frame: Frame): void | Promise<void>;
  /** Called when a channel's metadata changed (device read-back). */
  channel?(channel: string, values: Record<string, MetaValue>): void;
  /** Called with fresh runtime values (polled). */
  runtime?(values: RuntimeStateEvent["values"]): void;
  /** Called when the list of active errors changed (empty after a clear). */
  errors?(errors: readonly string[]): void;
}

/** How the controller ended. */
export interface ControllerExit {
  /** True when the controller reached FAIL. */
  failed: boolean;
  /** Reason of the failure, if any. */
  reason?: string;
}

/** Options of {@link createController}. */
export interface ControllerOptions {
  /** Creates the backend with the context the controller provides (its `emit` feeds the queue). */
  device: (ctx: DeviceContext) => Device;
  /** Clock for timeouts and timestamps; default the system clock. */
  clock?: Clock;
  /** Logger of the controller; default `diss.controller`. */
  log?: Logger;
  /** Logger handed to the backend; default `diss.device`. */
  deviceLog?: Logger;
  /** Environment handed to the backend; default the process environment. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Acquire automatically with this duration (seconds) whenever READY; undefined = off. */
  autoAcquire?: number;
  /**
   * Seconds allowed beyond the duration for a series to finish; 0 disables. Default: the device's
   * own {@link Device.overdueSeconds} plus {@link OVERDUE_MARGIN} (0 stays 0), else 5.
   */
  overdue?: number;
  /** Seconds allowed for a cancel to be confirmed; default 5. */
  cancelTimeout?: number;
  /**
   * Runs a callback on a later event-loop turn and returns a function that cancels it: the steps
   * that prepare series stacks ({@link SeriesAssembler.warm}) run on such turns. Default: a 1 ms
   * timer (the steps take about half the thread at most, leaving the rest to clients and to other
   * processes).
   */
  idleTurn?: (callback: () => void) => () => void;
  /**
   * Milliseconds between passes that read the prepared spare stacks again while no series is
   * open ({@link SeriesAssembler.refresh}: memory left alone can be slow to write again, on
   * virtual machines by far); 0 disables; default 5000.
   */
  stackRefreshMs?: number;
  /** Seconds allowed for initialization (WARMUP); default 300. */
  warmupTimeout?: number;
  /** Milliseconds between IsInitialized polls after Initialize returned; default 100. */
  initPollInterval?: number;
  /** Milliseconds between GetRuntime/GetConfig polls; 0 disables; default 1000. */
  runtimeInterval?: number;
}

/** The controller an application drives. */
export interface Controller {
  /** Current state. */
  readonly state: ControllerState;
  /** Configuration read after initialization (undefined before). */
  readonly config: DeviceConfig | undefined;
  /** Active errors, oldest first (empty unless ERROR/FAIL). */
  readonly errors: readonly string[];
  /** The running (or last) acquisition. */
  readonly series: Readonly<SeriesInfo> | undefined;
  /** Current channel metadata by channel. */
  readonly channelMeta: Readonly<Record<string, Record<string, MetaValue>>>;
  /** Last runtime values. */
  readonly runtime: RuntimeStateEvent["values"];
  /** Registers hooks; returns a function that removes them. */
  subscribe(hooks: ControllerHooks): () => void;
  /** Starts the backend and the state machine (resolves once startup ran). */
  start(): Promise<void>;
  /**
   * Sends an application command: Acquire, Cancel, Clear or ChannelAdjust. Rejects with
   * {@link RequestRefusedError} when the command makes no sense in the current state. Acquire and
   * Cancel resolve once accepted; Clear once the recovery ran; ChannelAdjust once the backend's
   * task settled (rejecting with its error).
   */
  request(command: CommandRequest): Promise<void>;
  /** Why {@link request} would refuse `command` right now (undefined: it would be accepted). */
  refusal(command: CommandRequest): string | undefined;
  /** Cancels a running acquisition, tears the backend down; resolves {@link done}. */
  stop(): Promise<void>;
  /** Resolves when the controller reached FAIL or was stopped. */
  readonly done: Promise<ControllerExit>;
}

type QueueItem =
  | DeviceEvent
  | { type: "acquire-done"; uuid: string; error?: string }
  | { type: "initialize-done"; token: number; error?: string }
  | { type: "clear-done"; error?: string }
  /** A timer of the table; `uuid` ties series timers to their series (stale ones are dropped). */
  | { type: "timer"; input: Input; uuid?: string };

const DATA_TYPES = new Set(["start-data", "image-data", "end-data", "cancel-data"]);

/** Longest wait for each backend step (cancel, teardown) while shutting down, ms. */
const SHUTDOWN_STEP_MS = 3000;
/** Stack memory prepared per step (about 1 ms where first writes cost 4–5 ms per MB). */
const WARM_STEP_BYTES = 256 * 1024;
/** Stack memory read per refresh step: 4096 reads, under 1 ms where the memory is ready. */
const REFRESH_STEP_BYTES = 16 * 2 ** 20;

/** Seconds the controller adds to a backend's own overdue allowance (see ControllerOptions). */
export const OVERDUE_MARGIN = 5;

function deviceOverdue(device: Device): number {
  const own = device.overdueSeconds?.();
  if (own === undefined || !Number.isFinite(own) || own < 0) return 5;
  return own === 0 ? 0 : own + OVERDUE_MARGIN;
}

/** Calls into the device: a throw becomes a rejected promise, a plain value a resolved one. */
function callDevice<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Creates a controller for one backend. Call {@link Controller.start} to run it. */
export function createController(options: ControllerOptions): Controller {
  const clock = options.clock ?? systemClock;
  const log = options.log ?? getLog("controller");
  const cancelTimeout = options.cancelTimeout ?? 5;
  const warmupTimeout = options.warmupTimeout ?? 300;
  const initPollInterval = options.initPollInterval ?? 100;
  const runtimeInterval = options.runtimeInterval ?? 1000;
  const shutdown = new AbortController();

  let machine: Machine = initialMachine({ autoAcquire: options.autoAcquire !== undefined });
  let config: DeviceConfig | undefined;
  let errors: string[] = [];
  let lastSeries: SeriesInfo | undefined;
  let ssqcnt = -1;
  let channelMeta: Record<string, Record<string, MetaValue>> = {};
  let runtime: RuntimeStateEvent["values"] = {};
  let initToken = 0;
  /** Duration of the acquisition being requested (read by the open-series effect). */
  let requestedDuration = 0;
  /** Aborts the open series' acquire task. */
  let seriesAbort: AbortController | undefined;
  /** The data hooks of the frame in PROCESS, resolving to the table's input. */
  let hooksRun: Promise<Input> | undefined;
  let clearing: { promise: Promise<void>; resolve: () => void } | undefined;
  const timers = new Set<TimerHandle>();
  const tableTimers = new Map<TimerName, TimerHandle>();
  const hooks = new Set<ControllerHooks>();
  const queue: QueueItem[] = [];
  let draining = false;
  let resolveDone!: (exit: ControllerExit) => void;
  const done = new Promise<ControllerExit>((resolve) => (resolveDone = resolve));
  let finished = false;
  const assembler = new SeriesAssembler((err) =>
    log.warning("Image release failed", { error: errorMessage(err) })
  );
  const idleTurn = options.idleTurn ?? ((callback: () => void) => {
    const timer = setTimeout(callback, 1);
    return () => clearTimeout(timer);
  });
  /** Cancels the pending step of {@link warmStacks}. */
  let stopWarming: (() => void) | undefined;
  const stackRefreshMs = options.stackRefreshMs ?? 5000;
  /** The timer of the next refresh pass ({@link scheduleRefresh}). */
  let refreshTimer: TimerHandle | undefined;
  /** Cancels the pending step of a refresh pass. */
  let stopRefreshStep: (() => void) | undefined;

  /**
   * Prepares series stacks in the background, one small step per turn (first writes to new
   * memory are slow; see `lib/series_assembler.ts`), so that images arriving at detector speed
   * are copied into memory that is ready.
   */
  function warmStacks(): void {
    if (stopWarming !== undefined || finished || config?.numImages === undefined) return;
    if (config.numImages <= 1) return;
    let steps = 0;
    const step = () => {
      stopWarming = undefined;
      if (finished || config === undefined) return;
      let more: boolean;
      try {
        more = assembler.warm(config, WARM_STEP_BYTES);
      } catch (err) {
        // E.g. no memory for the stack: the acquisition that needs it reports that as its error.
        log.warning("Cannot prepare the series stack", { error: errorMessage(err) });
        return;
      }
      if (more) {
        steps++;
        stopWarming = idleTurn(step);
        // Stacks prepared first must not go cold while the rest are (that takes a while).
        scheduleRefresh();
      } else if (assembler.series === undefined) {
        if (steps > 0) {
          log.info("Series stack ready", { mb: Math.round(seriesStackBytes(config) / 2 ** 20) });
        }
        scheduleRefresh();
      }
    };
    stopWarming = idleTurn(step);
  }

  /**
   * After `stackRefreshMs`, one pass over the spare stacks in idle-turn steps
   * ({@link SeriesAssembler.refresh}), then the next pass; ends when a series opens (the READY
   * switch starts warming and refreshing again).
   */
  function scheduleRefresh(): void {
    if (stackRefreshMs <= 0 || finished) return;
    if (refreshTimer !== undefined || stopRefreshStep !== undefined) return;
    refreshTimer = clock.setTimeout(() => {
      refreshTimer = undefined;
      const step = () => {
        stopRefreshStep = undefined;
        if (finished || config === undefined) return;
        if (assembler.refresh(config, REFRESH_STEP_BYTES)) stopRefreshStep = idleTurn(step);
        else if (assembler.series === undefined) scheduleRefresh();
      };
      stopRefreshStep = idleTurn(step);
    }, stackRefreshMs);
  }

  /** Stops refreshing (a series opens, or shutdown). */
  function stopRefresh(): void {
    if (refreshTimer !== undefined) clock.clearTimeout(refreshTimer);
    refreshTimer = undefined;
    stopRefreshStep?.();
    stopRefreshStep = undefined;
  }

  const ctx: DeviceContext = {
    emit: (event) => enqueue(event),
    log: options.deviceLog ?? getLog("device"),
    env: options.env ?? Deno.env.toObject(),
    signal: shutdown.signal,
  };
  const device = options.device(ctx);

  /** Lends the open series' stacks to the device (or takes them back): see `lendSeriesStacks`. */
  function lendStacks(lent: boolean): void {
    if (device.lendSeriesStacks === undefined) return;
    try {
      device.lendSeriesStacks(lent ? assembler.lendable() : undefined);
    } catch (err) {
      log.warning("Lending the series stacks failed", { error: errorMessage(err) });
    }
  }
  const overdue = options.overdue ?? deviceOverdue(device);

  function startTimer(fn: () => void, ms: number): TimerHandle {
    const handle = clock.setTimeout(() => {
      timers.delete(handle);
      fn();
    }, ms);
    timers.add(handle);
    return handle;
  }
  function stopTimer(handle: TimerHandle | undefined): void {
    if (handle === undefined) return;
    clock.clearTimeout(handle);
    timers.delete(handle);
  }

  function callHooks<K extends keyof ControllerHooks>(
    name: K,
    ...args: Parameters<NonNullable<ControllerHooks[K]>>
  ): void {
    for (const h of hooks) {
      const fn = h[name] as ((...a: unknown[]) => unknown) | undefined;
      if (fn === undefined) continue;
      try {
        fn.apply(h, args);
      } catch (err) {
        log.error("Hook failed", { hook: name, error: errorMessage(err) });
      }
    }
  }

  function enqueue(item: QueueItem): void {
    if (finished) return;
    queue.push(item);
    if (!draining) {
      draining = true;
      queueMicrotask(drain);
    }
  }

  async function drain(): Promise<void> {
    try {
      while (queue.length > 0 && !finished) {
        const item = queue.shift()!;
        try {
          handle(item);
          // Data hooks run one frame at a time: further events wait until they settled.
          while (hooksRun !== undefined) {
            const run = hooksRun;
            const outcome = await run;
            if (hooksRun === run) hooksRun = undefined;
            feed(outcome);
          }
        } catch (err) {
          log.error("Internal error while handling an event", {
            event: item.type,
            error: errorMessage(err),
          });
          feed({ kind: "device-error", detail: `Internal error: ${errorMessage(err)}` });
        }
      }
    } finally {
      draining = false;
    }
  }

  /** Feeds one input to the table and carries out its effects; returns a refusal. */
  function feed(input: Input): string | undefined {
    if (finished) return "Controller stopped";
    const from = machine.state;
    const result = step(machine, input);
    if (result.refused !== undefined) return result.refused;
    machine = result.machine;
    for (const effect of result.effects) perform(effect, from);
    return undefined;
  }

  /** Carries out one effect of the table (`from`: the state before the step). */
  function perform(effect: Effect, from: ControllerState): void {
    switch (effect.kind) {
      case "ask-initialized": {
        let answer: Input;
        try {
          answer = { kind: device.isInitialized() ? "initialized" : "not-initialized" };
        } catch (err) {
          answer = { kind: "query-failed", detail: errorMessage(err) };
        }
        if (machine.state !== "WARMUP") {
          log.info("Config", {
            initialized: answer.kind === "initialized",
            configured: config !== undefined,
          });
        }
        feed(answer);
        return;
      }
      case "read-config":
        feed(readConfig());
        return;
      case "run-initialize": {
        const token = ++initToken;
        callDevice(() => device.initialize(shutdown.signal)).then(
          () => enqueue({ type: "initialize-done", token }),
          (err) => enqueue({ type: "initialize-done", token, error: errorMessage(err) }),
        );
        return;
      }
      case "open-series": {
        ssqcnt = (ssqcnt + 1) % 16;
        const info: SeriesInfo = {
          uuid: crypto.randomUUID(),
          ssqcnt,
          duration: requestedDuration,
          seriesNumber: -1,
          startedAt: clock.now(),
        };
        stopRefresh();
        assembler.open(info, config!);
        lendStacks(true);
        warmStacks();
        lastSeries = info;
        seriesAbort = new AbortController();
        log.info("Acquire", { uuid: info.uuid, ssqcnt, duration: info.duration });
        return;
      }
      case "run-acquire": {
        const info = assembler.series!;
        const signal = AbortSignal.any([seriesAbort!.signal, shutdown.signal]);
        callDevice(() => device.acquire(info.duration, signal)).then(
          () => enqueue({ type: "acquire-done", uuid: info.uuid }),
          (err) => enqueue({ type: "acquire-done", uuid: info.uuid, error: errorMessage(err) }),
        );
        return;
      }
      case "run-cancel":
        void runDeviceCancel();
        return;
      case "abort-series":
        if (machine.taskRunning && seriesAbort !== undefined) {
          seriesAbort.abort(new Error("acquisition aborted"));
          void runDeviceCancel();
        }
        seriesAbort = undefined;
        lendStacks(false);
        assembler.abort();
        return;
      case "run-hooks":
        hooksRun = runDataHooks(assembler.frame());
        return;
      case "close-series":
        lendStacks(false);
        assembler.close();
        seriesAbort = undefined;
        return;
      case "run-clear": {
        log.info("Clearing errors", { errors: errors.length });
        setErrors([]);
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        clearing = { promise, resolve };
        if (device.clear === undefined) {
          // Nothing to wait for: recover at once, before the request returns (as before).
          handle({ type: "clear-done" });
          return;
        }
        // Handled as soon as the device answered (not behind queued events), as before the
        // table: the error list stays empty no longer than the device's Clear takes.
        callDevice(() => device.clear?.()).then(
          () => handle({ type: "clear-done" }),
          (err) => handle({ type: "clear-done", error: errorMessage(err) }),
        );
        return;
      }
      case "forget-errors":
        if (errors.length > 0) setErrors([]);
        return;
      case "announce-series": {
        const info = assembler.series!;
        log.info("Series started", {
          uuid: info.uuid,
          ssqcnt: info.ssqcnt,
          series: info.seriesId,
          numid: info.seriesNumber,
        });
        callHooks("seriesStart", { ...info });
        return;
      }
      case "start-timer":
        startTableTimer(effect.timer);
        return;
      case "stop-timer":
        stopTimer(tableTimers.get(effect.timer));
        tableTimers.delete(effect.timer);
        return;
      case "raise":
        raise(faultMessage(effect.fault, effect.detail), from);
        return;
      case "switch":
        log.info("State switch", { old: effect.old, new: effect.state });
        callHooks("state", { old: effect.old, state: effect.state });
        if (effect.state === "READY") warmStacks();
        return;
      case "note": {
        const uuid = assembler.series?.uuid;
        const fields: Record<string, unknown> = uuid === undefined ? {} : { uuid };
        if (effect.message === "Auto-acquire") fields.duration = options.autoAcquire;
        if (effect.level === "info") log.info(effect.message, fields);
        else log.warning(effect.message, fields);
        return;
      }
      case "finish":
        void finish({ failed: true, reason: errors.at(-1) });
        return;
    }
  }

  function setErrors(next: string[]): void {
    errors = next;
    callHooks("errors", errors);
  }

  /** Records an error (ERROR) or the failure (the machine just entered FAIL). */
  function raise(message: string, from: ControllerState): void {
    if (machine.state === "FAIL" && from !== "FAIL") {
      log.fatal("Unrecoverable failure", { reason: message });
      setErrors([...errors, message]);
      return;
    }
    if (errors.includes(message)) return;
    log.error("Error", { error: message, state: from });
    setErrors([...errors, message]);
  }

  /** The text of a fault, with the numbers the runner knows. */
  function faultMessage(fault: Fault, detail = ""): string {
    const info = assembler.series;
    const numImages = config?.numImages ?? 0;
    const within = (info?.duration ?? 0) + overdue;
    switch (fault) {
      case "startup-failed":
        return `Device startup failed: ${detail}`;
      case "query-failed":
        return `IsInitialized failed: ${detail}`;
      case "initialize-failed":
        return `Initialize failed: ${detail}`;
      case "warmup-timeout":
        return `Initialization timed out after ${warmupTimeout} s`;
      case "config-invalid":
        return `Invalid device configuration: ${detail}`;
      case "task-failed":
        return `Acquire failed: ${detail}`;
      case "task-without-end":
        return `Acquire returned without EndData or CancelData (${assembler.received} of ${numImages} images)`;
      case "acquire-timeout":
        return `Acquisition timed out after ${within} s (duration ${info?.duration} s + ` +
          `overdue ${overdue} s; ${assembler.received} of ${numImages} images)`;
      case "task-timeout":
        return `Acquire task did not return within ${within} s`;
      case "cancel-timeout":
        return `Cancel not confirmed by the device within ${cancelTimeout} s`;
      case "hooks-failed":
        return `Data hook failed: ${detail}`;
      case "clear-failed":
        return `Clear failed: ${detail}`;
      case "still-running":
        return "Previous acquisition is still running on the device";
      case "config-error":
      case "device-error":
      case "device-fatal":
      case "data-violation":
        return detail;
    }
  }

  function startTableTimer(timer: TimerName): void {
    stopTimer(tableTimers.get(timer));
    const uuid = assembler.series?.uuid;
    const fire = (input: Input, id?: string) => () => {
      tableTimers.delete(timer);
      enqueue({ type: "timer", input, uuid: id });
    };
    let handle: TimerHandle | undefined;
    switch (timer) {
      case "warmup":
        handle = startTimer(fire({ kind: "warmup-timeout" }), warmupTimeout * 1000);
        break;
      case "init-poll":
        handle = startTimer(fire({ kind: "init-poll" }), initPollInterval);
        break;
      case "acquire":
        if (overdue > 0) {
          const ms = ((assembler.series?.duration ?? 0) + overdue) * 1000;
          handle = startTimer(fire({ kind: "acquire-deadline" }, uuid), ms);
        }
        break;
      case "cancel":
        handle = startTimer(fire({ kind: "cancel-deadline" }, uuid), cancelTimeout * 1000);
        break;
      case "auto-acquire":
        // Through a timer, not a microtask: a backend that finishes at once must not starve I/O.
        handle = startTimer(fire({ kind: "auto-acquire" }), 0);
        break;
    }
    if (handle !== undefined) tableTimers.set(timer, handle);
  }

  /** Answers read-config: the configuration checked against the first one. */
  function readConfig(): Input {
    let cfg: DeviceConfig | undefined;
    try {
      cfg = device.getConfig();
    } catch (err) {
      return { kind: "config-error", detail: `GetConfig failed: ${errorMessage(err)}` };
    }
    if (cfg === undefined) {
      return {
        kind: "config-error",
        detail: "Device reports no configuration although initialized",
      };
    }
    if (config !== undefined) {
      const change = configChange(config, cfg);
      return change === undefined ? { kind: "config-ok" } : {
        kind: "config-error",
        detail: `Device configuration changed: ${change}; restart the IOC`,
      };
    }
    const problems = configProblems(cfg);
    if (problems.length > 0) return { kind: "config-invalid", detail: problems.join("; ") };
    config = structuredClone(cfg);
    channelMeta = Object.fromEntries(config.channels.map((ch) => [ch.name, { ...ch.meta }]));
    log.info("Detector initialized", {
      channels: config.channels.map((c) => c.name).join(","),
      num_images: config.numImages,
      image_size: `${config.width}x${config.height}`,
      pixel_type: config.pixelType,
    });
    callHooks("config", config);
    return { kind: "config-ok" };
  }

  /** Runs the data hooks one after the other; holds the frame's pixels until they settled. */
  async function runDataHooks(frame: Frame): Promise<Input> {
    const giveBack = frame.retain();
    try {
      for (const h of [...hooks]) {
        if (h.data === undefined) continue;
        const r = h.data(frame);
        if (r !== undefined) await r;
      }
      return { kind: "hooks-settled" };
    } catch (err) {
      return { kind: "hooks-failed", detail: errorMessage(err) };
    } finally {
      giveBack();
    }
  }

  function runDeviceCancel(): Promise<void> {
    return callDevice(() => device.cancel()).catch((err) => {
      enqueue({ type: "error", message: `Cancel failed: ${errorMessage(err)}` });
    });
  }

  /** Turns one queued item into inputs of the table. */
  function handle(item: QueueItem): void {
    if (DATA_TYPES.has(item.type)) {
      feed(assembler.accept(item as Parameters<SeriesAssembler["accept"]>[0]));
      return;
    }
    switch (item.type) {
      case "init-state":
        if (item.initialized) feed({ kind: "device-initialized" });
        return;
      case "config": {
        if (config === undefined) return;
        const change = configChange(config, item.config);
        if (change !== undefined) {
          feed({
            kind: "device-error",
            detail: `Device configuration changed: ${change}; restart the IOC`,
          });
        }
        return;
      }
      case "runtime":
        runtime = item.values;
        callHooks("runtime", runtime);
        return;
      case "channel-state":
        return handleChannelState(item.channel, item.values);
      case "error":
        feed({ kind: item.fatal ? "device-fatal" : "device-error", detail: item.message });
        return;
      case "acquire-done": {
        const current = assembler.series?.uuid === item.uuid;
        if (item.error === undefined) {
          feed({ kind: current ? "task-returned" : "stale-task-returned" });
        } else {
          feed({ kind: current ? "task-failed" : "stale-task-failed", detail: item.error });
        }
        return;
      }
      case "initialize-done":
        if (item.token !== initToken) return;
        feed(
          item.error === undefined
            ? { kind: "initialize-done" }
            : { kind: "initialize-failed", detail: item.error },
        );
        return;
      case "clear-done": {
        if (finished) return;
        const waiting = clearing;
        clearing = undefined;
        feed(
          item.error === undefined
            ? { kind: "clear-done" }
            : { kind: "clear-failed", detail: item.error },
        );
        waiting?.resolve();
        return;
      }
      case "timer":
        if (item.uuid !== undefined && item.uuid !== assembler.series?.uuid) return;
        if (item.input.kind === "auto-acquire") requestedDuration = options.autoAcquire ?? 0;
        feed(item.input);
        return;
    }
  }

  function handleChannelState(channel: string, values: Record<string, MetaValue>): void {
    const meta = channelMeta[channel];
    if (config === undefined) {
      log.debug("Channel state before the configuration is known", { channel });
      return;
    }
    if (meta === undefined) {
      feed({ kind: "device-error", detail: `Channel state for unknown channel ${channel}` });
      return;
    }
    Object.assign(meta, values);
    callHooks("channel", channel, { ...meta });
  }

  function pollRuntime(): void {
    if (finished) return;
    const state = machine.state;
    if (state !== "INIT" && state !== "WARMUP" && state !== "FAIL") {
      try {
        if (device.getRuntime !== undefined) {
          enqueue({ type: "runtime", values: device.getRuntime() });
        }
        if (config !== undefined && state === "READY") {
          const cfg = device.getConfig();
          if (cfg !== undefined) enqueue({ type: "config", config: cfg });
        }
      } catch (err) {
        enqueue({ type: "error", message: `Runtime query failed: ${errorMessage(err)}` });
      }
    }
    startTimer(pollRuntime, runtimeInterval);
  }

  function adjustRefusal(channel: string, values: Record<string, MetaValue>): string | undefined {
    const meta = channelMeta[channel];
    if (config === undefined || meta === undefined) return `Unknown channel ${channel}`;
    for (const [key, value] of Object.entries(values)) {
      if (!(key in meta)) return `Unknown metadata ${channel}:${key}`;
      if (typeof value !== typeof meta[key]) {
        return `Metadata ${channel}:${key} must be a ${typeof meta[key]}`;
      }
    }
    if (device.adjustChannel === undefined) {
      return "The backend does not support channel adjustment";
    }
    return undefined;
  }

  async function adjust(channel: string, values: Record<string, MetaValue>): Promise<void> {
    log.info("Channel adjust", { channel, values });
    try {
      await device.adjustChannel!(channel, values);
    } catch (err) {
      enqueue({ type: "error", message: `ChannelAdjust failed: ${errorMessage(err)}` });
      throw err;
    }
  }

  const REQUEST_INPUTS = {
    Acquire: "acquire",
    Cancel: "cancel",
    Clear: "clear",
    ChannelAdjust: "adjust",
  } as const;

  function refusal(command: CommandRequest): string | undefined {
    if (finished) return "Controller stopped";
    if (command.command === "Initialize") return "Initialize is run by the controller itself";
    const byState = refusalOf(machine, REQUEST_INPUTS[command.command]);
    if (machine.state === "FAIL") return byState;
    if (command.command === "Acquire") {
      const d = command.duration;
      if (typeof d !== "number" || !Number.isFinite(d) || d < 0) {
        return `Invalid duration ${d}: must be a finite number >= 0`;
      }
    }
    if (command.command === "ChannelAdjust") {
      return adjustRefusal(command.channel, command.values) ?? byState;
    }
    return byState;
  }

  function request(command: CommandRequest): Promise<void> {
    const reason = refusal(command);
    if (reason !== undefined) return refuse(reason);
    switch (command.command) {
      case "Acquire":
        requestedDuration = command.duration;
        feed({ kind: "acquire" });
        return Promise.resolve();
      case "Cancel":
        feed({ kind: "cancel" });
        return Promise.resolve();
      case "Clear":
        feed({ kind: "clear" });
        return clearing?.promise ?? Promise.resolve();
      case "ChannelAdjust":
        feed({ kind: "adjust" });
        return adjust(command.channel, command.values);
      default:
        return refuse("Unsupported request");
    }
  }

  function refuse(message: string): Promise<void> {
    log.warning("Request refused", { reason: message, state: machine.state });
    return Promise.reject(new RequestRefusedError(message));
  }

  /** Waits for `p`, at most `ms` of clock time (a hanging backend must not block shutdown). */
  async function bounded(p: Promise<unknown>, ms: number, what: string): Promise<void> {
    let handle: TimerHandle | undefined;
    const timeout = new Promise<void>((resolve) => {
      handle = clock.setTimeout(() => {
        log.error("Backend did not finish in time during shutdown", { step: what, ms });
        resolve();
      }, ms);
    });
    try {
      await Promise.race([p.then(() => {}, () => {}), timeout]);
    } finally {
      clock.clearTimeout(handle!);
    }
  }

  async function finish(exit: ControllerExit): Promise<void> {
    if (finished) return;
    finished = true;
    stopWarming?.();
    stopRefresh();
    for (const t of timers) clock.clearTimeout(t);
    timers.clear();
    tableTimers.clear();
    shutdown.abort(new Error("shutdown"));
    const teardown = callDevice(() => device.teardown?.()).catch((err) => {
      log.error("Teardown failed", { error: errorMessage(err) });
    });
    await bounded(teardown, SHUTDOWN_STEP_MS, "teardown");
    clearing?.resolve();
    resolveDone(exit);
  }

  async function stop(): Promise<void> {
    if (finished) {
      await done;
      return;
    }
    feed({ kind: "stop" });
    const info = assembler.series;
    if (info !== undefined && machine.taskRunning && seriesAbort !== undefined) {
      log.info("Cancelling the running acquisition before shutdown", { uuid: info.uuid });
      seriesAbort.abort(new Error("shutdown"));
      await bounded(runDeviceCancel(), SHUTDOWN_STEP_MS, "cancel");
    }
    await finish({ failed: machine.state === "FAIL", reason: errors.at(-1) });
  }

  return {
    get state() {
      return machine.state;
    },
    get config() {
      return config;
    },
    get errors() {
      return errors;
    },
    get series() {
      const info = assembler.series ?? lastSeries;
      return info === undefined ? undefined : { ...info };
    },
    get channelMeta() {
      return channelMeta;
    },
    get runtime() {
      return runtime;
    },
    subscribe(h) {
      hooks.add(h);
      return () => hooks.delete(h);
    },
    async start() {
      log.info("Waiting for initialization", { state: machine.state });
      try {
        await device.startup?.();
      } catch (err) {
        feed({ kind: "startup-failed", detail: errorMessage(err) });
        return;
      }
      if (finished) return;
      feed({ kind: "start" });
      if (runtimeInterval > 0) startTimer(pollRuntime, runtimeInterval);
    },
    request,
    refusal,
    stop,
    done,
  };
}
