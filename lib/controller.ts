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
 * @module
 */

import {
  type CommandRequest,
  configChange,
  configProblems,
  type DataEvent,
  type Device,
  type DeviceConfig,
  type DeviceContext,
  type DeviceEvent,
  type MetaValue,
  PIXEL_ARRAY_TYPES,
  type PixelArray,
  type RuntimeStateEvent,
} from "../devices/contract.ts";
import { type Clock, systemClock, type TimerHandle } from "../core/clock.ts";
import { getLog, type Logger } from "../core/log.ts";
import { errorMessage } from "../core/errors.ts";

/** Controller states (served as strings on the `state` PV). */
export type ControllerState =
  | "INIT"
  | "WARMUP"
  | "READY"
  | "INTEGRATE"
  | "PROCESS"
  | "CANCEL"
  | "ERROR"
  | "FAIL";

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

/** The acquisition currently running (or last started). */
export interface SeriesInfo {
  /** Locally generated UUID of the series. */
  uuid: string;
  /** Short sequence counter 0..15, incremented per started acquisition. */
  ssqcnt: number;
  /** Requested exposure duration in seconds. */
  duration: number;
  /** The device's series id (from StartData), undefined before StartData. */
  seriesId?: string;
  /** The device's numeric series number (from StartData), -1 when unknown. */
  seriesNumber: number;
  /** Start of the acquisition (clock ms). */
  startedAt: number;
}

/** A complete image series handed to data hooks in PROCESS. */
export interface Frame extends Readonly<SeriesInfo> {
  /** Configuration the images follow. */
  config: DeviceConfig;
  /** Pixels by channel, `numImages*height*width` elements each, row-major [image][y][x]. */
  images: Record<string, PixelArray>;
  /** Start time of each image, Unix seconds. */
  timestamps: Float64Array;
  /** Real exposure time of each image, seconds. */
  exposures: Float64Array;
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
   * pixel arrays are lent: they are valid until the hook returns (or its promise settles) and
   * may be reused for later series afterwards, so a hook that keeps pixels must copy them.
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

interface ActiveSeries extends SeriesInfo {
  received: number;
  images: Record<string, PixelArray>;
  /** {@link ImageDataEvent.release} of images the frame holds without a copy. */
  releases: (() => void)[];
  timestamps: Float64Array;
  exposures: Float64Array;
  closed?: "end" | "cancel";
  taskDone: boolean;
  abort: AbortController;
}

type QueueItem =
  | DeviceEvent
  | { type: "acquire-done"; uuid: string; error?: string }
  | { type: "initialize-done"; token: number; error?: string }
  | { type: "deadline"; uuid: string; what: "acquire" | "cancel" }
  | { type: "auto-acquire" }
  | { type: "init-poll" };

const DATA_NAMES: Record<DataEvent["type"], string> = {
  "start-data": "StartData",
  "image-data": "ImageData",
  "end-data": "EndData",
  "cancel-data": "CancelData",
};

/** Longest wait for each backend step (cancel, teardown) while shutting down, ms. */
const SHUTDOWN_STEP_MS = 3000;

/** Seconds the controller adds to a backend's own overdue allowance (see ControllerOptions). */
export const OVERDUE_MARGIN = 5;

function deviceOverdue(device: Device): number {
  const own = device.overdueSeconds?.();
  if (own === undefined || !Number.isFinite(own) || own < 0) return 5;
  return own === 0 ? 0 : own + OVERDUE_MARGIN;
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

  let state: ControllerState = "INIT";
  let config: DeviceConfig | undefined;
  let errors: string[] = [];
  let series: ActiveSeries | undefined;
  let lastSeries: ActiveSeries | undefined;
  /** Series stacks (multi-image series) whose data hooks settled, for reuse by the next series. */
  let spareStacks: Record<string, PixelArray> = {};
  let lastClosed: { seriesId: string; how: string } | undefined;
  let ssqcnt = -1;
  let channelMeta: Record<string, Record<string, MetaValue>> = {};
  let runtime: RuntimeStateEvent["values"] = {};
  let acquireRunning = false;
  let initToken = 0;
  let clearing = false;
  let processing = false;
  let stopping = false;
  const timers = new Set<TimerHandle>();
  let acquireDeadline: TimerHandle | undefined;
  let warmupDeadline: TimerHandle | undefined;
  const hooks = new Set<ControllerHooks>();
  const queue: QueueItem[] = [];
  let draining = false;
  let resolveDone!: (exit: ControllerExit) => void;
  const done = new Promise<ControllerExit>((resolve) => (resolveDone = resolve));
  let finished = false;

  const ctx: DeviceContext = {
    emit: (event) => enqueue(event),
    log: options.deviceLog ?? getLog("device"),
    env: options.env ?? Deno.env.toObject(),
    signal: shutdown.signal,
  };
  const device = options.device(ctx);
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

  function setState(next: ControllerState): void {
    if (next === state) return;
    const old = state;
    state = next;
    log.info("State switch", { old, new: next });
    stopTimer(warmupDeadline);
    if (next === "WARMUP") {
      warmupDeadline = startTimer(
        () => raiseError(`Initialization timed out after ${warmupTimeout} s`),
        warmupTimeout * 1000,
      );
    }
    callHooks("state", { old, state: next });
    if (next === "READY" && options.autoAcquire !== undefined && !stopping) {
      // Through a timer, not a microtask: a backend that finishes at once must not starve I/O.
      startTimer(() => enqueue({ type: "auto-acquire" }), 0);
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
          const pending = handle(item);
          if (pending instanceof Promise) await pending;
        } catch (err) {
          log.error("Internal error while handling an event", {
            event: item.type,
            error: errorMessage(err),
          });
          raiseError(`Internal error: ${errorMessage(err)}`);
        }
      }
    } finally {
      draining = false;
    }
  }

  function fail(reason: string): void {
    if (state === "FAIL") return;
    log.fatal("Unrecoverable failure", { reason });
    errors = [...errors, reason];
    callHooks("errors", errors);
    abortSeries();
    setState("FAIL");
    void finish({ failed: true, reason });
  }

  function raiseError(message: string): void {
    if (state === "FAIL" || finished) return;
    if (!errors.includes(message)) {
      errors = [...errors, message];
      log.error("Error", { error: message, state });
      callHooks("errors", errors);
    }
    abortSeries();
    setState("ERROR");
  }

  function abortSeries(): void {
    stopTimer(acquireDeadline);
    acquireDeadline = undefined;
    const s = series;
    if (s === undefined) return;
    series = undefined;
    if (s.seriesId !== undefined) lastClosed = { seriesId: s.seriesId, how: "abort" };
    if (!s.taskDone) {
      s.abort.abort(new Error("acquisition aborted"));
      runDeviceCancel();
    }
  }

  function runDeviceCancel(): Promise<void> {
    let p: Promise<void>;
    try {
      p = Promise.resolve(device.cancel());
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.catch((err) => {
      enqueue({ type: "error", message: `Cancel failed: ${errorMessage(err)}` });
    });
  }

  function handle(item: QueueItem): Promise<void> | void {
    switch (item.type) {
      case "init-state":
        if (state === "WARMUP" && item.initialized) finishWarmup();
        return;
      case "config": {
        if (config === undefined) return;
        const change = configChange(config, item.config);
        if (change !== undefined) {
          raiseError(`Device configuration changed: ${change}; restart the IOC`);
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
        if (item.fatal) fail(item.message);
        else raiseError(item.message);
        return;
      case "start-data":
      case "image-data":
      case "end-data":
      case "cancel-data":
        return handleData(item);
      case "acquire-done":
        return handleAcquireDone(item.uuid, item.error);
      case "initialize-done":
        if (item.token !== initToken || state !== "WARMUP") return;
        if (item.error !== undefined) raiseError(`Initialize failed: ${item.error}`);
        else pollInitialized();
        return;
      case "deadline":
        return handleDeadline(item.uuid, item.what);
      case "init-poll":
        pollInitialized();
        return;
      case "auto-acquire":
        if (state === "READY" && !stopping) {
          log.info("Auto-acquire", { duration: options.autoAcquire });
          startAcquire(options.autoAcquire!);
        }
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
      raiseError(`Channel state for unknown channel ${channel}`);
      return;
    }
    Object.assign(meta, values);
    callHooks("channel", channel, { ...meta });
  }

  function handleData(ev: DataEvent): Promise<void> | void {
    const name = DATA_NAMES[ev.type];
    if (state === "ERROR" || state === "FAIL") {
      log.warning("Ignoring data event while in error", { event: name, series: ev.seriesId });
      return;
    }
    const s = series;
    if (s === undefined || s.closed !== undefined) {
      const closed = s?.closed !== undefined
        ? { seriesId: s.seriesId ?? "", how: s.closed }
        : lastClosed;
      if (closed !== undefined && closed.seriesId === ev.seriesId) {
        const after = closed.how === "cancel"
          ? "CancelData"
          : closed.how === "end"
          ? "EndData"
          : "abort";
        raiseError(`${name} after ${after} of series ${ev.seriesId}`);
      } else raiseError(`${name} outside an acquisition (series ${ev.seriesId})`);
      return;
    }
    const cfg = config!;
    if (ev.type === "start-data") {
      if (s.seriesId !== undefined) {
        raiseError(`Second StartData (series ${ev.seriesId}) in series ${s.seriesId}`);
        return;
      }
      s.seriesId = ev.seriesId;
      s.seriesNumber = ev.seriesNumber;
      log.info("Series started", {
        uuid: s.uuid,
        ssqcnt: s.ssqcnt,
        series: ev.seriesId,
        numid: ev.seriesNumber,
      });
      callHooks("seriesStart", { ...publicSeries(s) });
      return;
    }
    if (s.seriesId === undefined) {
      raiseError(`${name} before StartData (series ${ev.seriesId})`);
      return;
    }
    if (ev.seriesId !== s.seriesId) {
      raiseError(`${name} of wrong series ${ev.seriesId} (expected ${s.seriesId})`);
      return;
    }
    if (ev.type === "image-data") {
      if (s.received >= cfg.numImages) {
        raiseError(`Too many images: more than ${cfg.numImages} in series ${s.seriesId}`);
        return;
      }
      if (ev.index !== s.received) {
        raiseError(`Image index ${ev.index} out of order (expected ${s.received})`);
        return;
      }
      const problem = storeImages(s, ev.images, cfg);
      if (problem !== undefined) {
        raiseError(problem);
        return;
      }
      if (ev.release !== undefined) {
        // A single image is handed to the hooks as is; more are copied into the series stack.
        if (cfg.numImages === 1) s.releases.push(ev.release);
        else releaseImages(ev.release);
      }
      s.timestamps[s.received] = ev.timestamp;
      s.exposures[s.received] = ev.exposure;
      s.received++;
      return;
    }
    if (ev.type === "end-data") {
      if (s.received < cfg.numImages) {
        raiseError(`Series ended after ${s.received} of ${cfg.numImages} images`);
        return;
      }
      s.closed = "end";
      lastClosed = { seriesId: s.seriesId, how: "end" };
      if (state === "CANCEL") {
        log.info("Series completed before the cancel took effect; discarded", { uuid: s.uuid });
        return maybeFinish();
      }
      return process(s, cfg);
    }
    // cancel-data
    s.closed = "cancel";
    lastClosed = { seriesId: s.seriesId, how: "cancel" };
    if (state === "INTEGRATE") {
      if (!stopping) log.warning("Device cancelled the series on its own", { uuid: s.uuid });
      setState("CANCEL");
    }
    return maybeFinish();
  }

  function storeImages(
    s: ActiveSeries,
    images: Record<string, PixelArray>,
    cfg: DeviceConfig,
  ): string | undefined {
    const size = cfg.width * cfg.height;
    const Ctor = PIXEL_ARRAY_TYPES[cfg.pixelType];
    for (const name of Object.keys(images)) {
      if (!(name in channelMeta)) return `Image of unknown channel ${name}`;
    }
    for (const ch of cfg.channels) {
      const img = images[ch.name];
      if (img === undefined) return `Image ${s.received} lacks channel ${ch.name}`;
      if (!(img instanceof Ctor)) {
        return `Image of channel ${ch.name} is ${img.constructor.name}, expected ${Ctor.name}`;
      }
      if (img.length !== size) {
        return `Image of channel ${ch.name} has ${img.length} pixels, expected ${size}`;
      }
    }
    for (const ch of cfg.channels) {
      const img = images[ch.name];
      if (cfg.numImages === 1) s.images[ch.name] = img;
      else {
        s.images[ch.name] ??= takeSpareStack(ch.name, Ctor, size * cfg.numImages) ??
          new Ctor(size * cfg.numImages);
        s.images[ch.name].set(img, s.received * size);
      }
    }
    return undefined;
  }

  /** A series stack of an earlier processed series, if it has the wanted type and length. */
  function takeSpareStack(
    channel: string,
    Ctor: (typeof PIXEL_ARRAY_TYPES)[keyof typeof PIXEL_ARRAY_TYPES],
    length: number,
  ): PixelArray | undefined {
    const spare = spareStacks[channel];
    if (spare === undefined || !(spare instanceof Ctor) || spare.length !== length) {
      return undefined;
    }
    delete spareStacks[channel];
    return spare;
  }

  /** Calls a backend's image release; a failing one is only logged (the images are done). */
  function releaseImages(release: () => void): void {
    try {
      release();
    } catch (err) {
      log.warning("Image release failed", { error: errorMessage(err) });
    }
  }

  /** After the data hooks settled: the frame's pixels may be reused. */
  function recycleFrame(s: ActiveSeries, cfg: DeviceConfig): void {
    const releases = s.releases;
    s.releases = [];
    for (const release of releases) releaseImages(release);
    if (cfg.numImages > 1) spareStacks = { ...s.images };
  }

  async function process(s: ActiveSeries, cfg: DeviceConfig): Promise<void> {
    setState("PROCESS");
    const frame: Frame = {
      ...publicSeries(s),
      config: cfg,
      images: s.images,
      timestamps: s.timestamps,
      exposures: s.exposures,
    };
    processing = true;
    try {
      for (const h of [...hooks]) {
        if (h.data === undefined) continue;
        const r = h.data(frame);
        if (r !== undefined) await r;
      }
    } catch (err) {
      raiseError(`Data hook failed: ${errorMessage(err)}`);
      return;
    } finally {
      processing = false;
      recycleFrame(s, cfg);
    }
    if (series === s) maybeFinish();
  }

  function maybeFinish(): void {
    const s = series;
    if (s === undefined || s.closed === undefined || !s.taskDone || processing) return;
    stopTimer(acquireDeadline);
    acquireDeadline = undefined;
    series = undefined;
    setState("READY");
  }

  function handleAcquireDone(uuid: string, error: string | undefined): void {
    const s = series;
    if (s === undefined || s.uuid !== uuid) {
      if (error !== undefined && state !== "ERROR") {
        raiseError(`Acquire failed: ${error}`);
      }
      return;
    }
    s.taskDone = true;
    if (error !== undefined) {
      raiseError(`Acquire failed: ${error}`);
      return;
    }
    if (s.closed === undefined) {
      raiseError(
        `Acquire returned without EndData or CancelData (${s.received} of ${
          config!.numImages
        } images)`,
      );
      return;
    }
    maybeFinish();
  }

  function handleDeadline(uuid: string, what: "acquire" | "cancel"): void {
    const s = series;
    if (s === undefined || s.uuid !== uuid) return;
    if (what === "cancel") {
      if (state === "CANCEL") {
        raiseError(`Cancel not confirmed by the device within ${cancelTimeout} s`);
      }
      return;
    }
    if (s.closed !== undefined) {
      raiseError(`Acquire task did not return within ${s.duration + overdue} s`);
    } else {
      raiseError(
        `Acquisition timed out after ${s.duration + overdue} s (duration ${s.duration} s + ` +
          `overdue ${overdue} s; ${s.received} of ${config!.numImages} images)`,
      );
    }
  }

  function publicSeries(s: ActiveSeries): SeriesInfo {
    return {
      uuid: s.uuid,
      ssqcnt: s.ssqcnt,
      duration: s.duration,
      seriesId: s.seriesId,
      seriesNumber: s.seriesNumber,
      startedAt: s.startedAt,
    };
  }

  function startAcquire(duration: number): void {
    const cfg = config!;
    ssqcnt = (ssqcnt + 1) % 16;
    const s: ActiveSeries = {
      uuid: crypto.randomUUID(),
      ssqcnt,
      duration,
      seriesNumber: -1,
      startedAt: clock.now(),
      received: 0,
      images: {},
      releases: [],
      timestamps: new Float64Array(cfg.numImages),
      exposures: new Float64Array(cfg.numImages),
      taskDone: false,
      abort: new AbortController(),
    };
    series = s;
    lastSeries = s;
    log.info("Acquire", { uuid: s.uuid, ssqcnt, duration });
    setState("INTEGRATE");
    if (overdue > 0) {
      acquireDeadline = startTimer(
        () => enqueue({ type: "deadline", uuid: s.uuid, what: "acquire" }),
        (duration + overdue) * 1000,
      );
    }
    acquireRunning = true;
    let task: Promise<void>;
    try {
      task = Promise.resolve(
        device.acquire(duration, AbortSignal.any([s.abort.signal, shutdown.signal])),
      );
    } catch (err) {
      task = Promise.reject(err);
    }
    task.then(
      () => {
        acquireRunning = false;
        enqueue({ type: "acquire-done", uuid: s.uuid });
      },
      (err) => {
        acquireRunning = false;
        enqueue({ type: "acquire-done", uuid: s.uuid, error: errorMessage(err) });
      },
    );
  }

  /** The device's IsInitialized answer, or undefined after raising the error it threw. */
  function askInitialized(): boolean | undefined {
    try {
      return device.isInitialized();
    } catch (err) {
      raiseError(`IsInitialized failed: ${errorMessage(err)}`);
      return undefined;
    }
  }

  function runInit(): void {
    const initialized = askInitialized();
    if (initialized === undefined) return;
    log.info("Config", { initialized, configured: config !== undefined });
    if (initialized) {
      finishWarmup();
      return;
    }
    setState("WARMUP");
    const token = ++initToken;
    let task: Promise<void>;
    try {
      task = Promise.resolve(device.initialize(shutdown.signal));
    } catch (err) {
      task = Promise.reject(err);
    }
    task.then(
      () => enqueue({ type: "initialize-done", token }),
      (err) => enqueue({ type: "initialize-done", token, error: errorMessage(err) }),
    );
  }

  function pollInitialized(): void {
    if (state !== "WARMUP") return;
    const initialized = askInitialized();
    if (initialized === undefined) return;
    if (initialized) finishWarmup();
    else startTimer(() => enqueue({ type: "init-poll" }), initPollInterval);
  }

  function safeInitialized(): boolean {
    try {
      return device.isInitialized();
    } catch {
      return false;
    }
  }

  function readConfig(): DeviceConfig | string {
    try {
      const cfg = device.getConfig();
      return cfg ?? "Device reports no configuration although initialized";
    } catch (err) {
      return `GetConfig failed: ${errorMessage(err)}`;
    }
  }

  function finishWarmup(): void {
    const cfg = readConfig();
    if (typeof cfg === "string") {
      raiseError(cfg);
      return;
    }
    if (config === undefined) {
      const problems = configProblems(cfg);
      if (problems.length > 0) {
        fail(`Invalid device configuration: ${problems.join("; ")}`);
        return;
      }
      config = structuredClone(cfg);
      channelMeta = Object.fromEntries(config.channels.map((ch) => [ch.name, { ...ch.meta }]));
      log.info("Detector initialized", {
        channels: config.channels.map((c) => c.name).join(","),
        num_images: config.numImages,
        image_size: `${config.width}x${config.height}`,
        pixel_type: config.pixelType,
      });
      callHooks("config", config);
    } else {
      const change = configChange(config, cfg);
      if (change !== undefined) {
        raiseError(`Device configuration changed: ${change}; restart the IOC`);
        return;
      }
    }
    setState("READY");
  }

  function pollRuntime(): void {
    if (finished) return;
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

  async function clear(): Promise<void> {
    if (state !== "ERROR") {
      if (errors.length > 0) {
        errors = [];
        callHooks("errors", errors);
      }
      return;
    }
    if (clearing) return;
    clearing = true;
    log.info("Clearing errors", { errors: errors.length });
    errors = [];
    callHooks("errors", errors);
    try {
      if (device.clear !== undefined) await device.clear();
    } catch (err) {
      clearing = false;
      raiseError(`Clear failed: ${errorMessage(err)}`);
      return;
    }
    clearing = false;
    if (state !== "ERROR" || errors.length > 0 || finished) return;
    if (acquireRunning) {
      raiseError("Previous acquisition is still running on the device");
      return;
    }
    if (config === undefined) {
      setState("INIT");
      runInit();
      return;
    }
    if (!safeInitialized()) {
      runInit();
      return;
    }
    finishWarmup();
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

  function refusal(command: CommandRequest): string | undefined {
    if (finished) return "Controller stopped";
    if (state === "FAIL") return "Controller failed";
    switch (command.command) {
      case "Acquire": {
        const d = command.duration;
        if (typeof d !== "number" || !Number.isFinite(d) || d < 0) {
          return `Invalid duration ${d}: must be a finite number >= 0`;
        }
        return state === "READY" ? undefined : `Cannot acquire in state ${state}`;
      }
      case "Cancel":
        return state === "CANCEL" || (state === "INTEGRATE" && series !== undefined)
          ? undefined
          : `Nothing to cancel in state ${state}`;
      case "Clear":
        return undefined;
      case "ChannelAdjust":
        return adjustRefusal(command.channel, command.values);
      case "Initialize":
        return "Initialize is run by the controller itself";
    }
  }

  function request(command: CommandRequest): Promise<void> {
    const reason = refusal(command);
    if (reason !== undefined) return refuse(reason);
    switch (command.command) {
      case "Acquire":
        startAcquire(command.duration);
        return Promise.resolve();
      case "Cancel": {
        if (state === "CANCEL") return Promise.resolve();
        const s = series!;
        log.info("Cancel", { uuid: s.uuid });
        setState("CANCEL");
        startTimer(
          () => enqueue({ type: "deadline", uuid: s.uuid, what: "cancel" }),
          cancelTimeout * 1000,
        );
        void runDeviceCancel();
        return Promise.resolve();
      }
      case "Clear":
        return clear();
      case "ChannelAdjust":
        return adjust(command.channel, command.values);
      default:
        return refuse("Unsupported request");
    }
  }

  function refuse(message: string): Promise<void> {
    log.warning("Request refused", { reason: message, state });
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
    for (const t of timers) clock.clearTimeout(t);
    timers.clear();
    shutdown.abort(new Error("shutdown"));
    let teardown: Promise<void>;
    try {
      teardown = Promise.resolve(device.teardown?.());
    } catch (err) {
      teardown = Promise.reject(err);
    }
    teardown = teardown.catch((err) => {
      log.error("Teardown failed", { error: errorMessage(err) });
    });
    await bounded(teardown, SHUTDOWN_STEP_MS, "teardown");
    resolveDone(exit);
  }

  async function stop(): Promise<void> {
    if (finished) {
      await done;
      return;
    }
    stopping = true;
    const s = series;
    if (s !== undefined && !s.taskDone) {
      log.info("Cancelling the running acquisition before shutdown", { uuid: s.uuid });
      s.abort.abort(new Error("shutdown"));
      await bounded(runDeviceCancel(), SHUTDOWN_STEP_MS, "cancel");
    }
    await finish({ failed: state === "FAIL", reason: errors.at(-1) });
  }

  return {
    get state() {
      return state;
    },
    get config() {
      return config;
    },
    get errors() {
      return errors;
    },
    get series() {
      const s = series ?? lastSeries;
      return s === undefined ? undefined : publicSeries(s);
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
      log.info("Waiting for initialization", { state });
      try {
        await device.startup?.();
      } catch (err) {
        fail(`Device startup failed: ${errorMessage(err)}`);
        return;
      }
      if (finished) return;
      runInit();
      if (runtimeInterval > 0) startTimer(pollRuntime, runtimeInterval);
    },
    request,
    refusal,
    stop,
    done,
  };
}
