/**
 * EIGER2 backend: drives a DECTRIS detector control unit over SIMPLON REST and takes the images
 * from its stream v2 (CBOR over ZeroMQ PUSH/PULL).
 *
 * Modes (`EIGER_DEVICE_MODE`): `snapshot` = internal trigger (`ints`, count_time = duration, arm,
 * trigger, disarm); `single`/`double` = external gating (`extg`, nexpi from duration × gating
 * frequency, arm, wait for the images, disarm). Channels are `threshold_1` and, when threshold 2
 * is enabled on the DCU, `threshold_2`, each with the metadata `threshold_energy`.
 *
 * Every REST failure, image overdue, stream loss or bad stream message ends the acquisition with
 * an error whose message names the key, HTTP status or series; images that arrived complete are
 * emitted before the error.
 *
 * @module
 */

import type {
  ChannelConfig,
  DataEvent,
  Device,
  DeviceConfig,
  DeviceContext,
  LentSeriesStacks,
  MetaValue,
  PixelType,
  RuntimeStateEvent,
} from "../contract.ts";
import { PIXEL_ARRAY_TYPES } from "../contract.ts";
import { type EigerSettings, gatesPerImage, parseEigerSettings } from "./settings.ts";
import {
  sequenceIdOf,
  SimplonClient,
  SimplonError,
  type SimplonValue,
  type Subsystem,
} from "./simplon.ts";
import { SeriesCollector, type StreamEvent, type StreamMessage } from "./series.ts";
import { CancelledSeries, type DroppedReport } from "./cancelled_series.ts";
import { releaseDecodeBuffers } from "./decode_buffers.ts";
import { zmqStreamOpener } from "./stream_source.ts";
import { DEFAULT_BACKLOG } from "./decode_pool.ts";
import { imageTarget, TargetHolder } from "./image_target.ts";
import { errorMessage } from "../../core/errors.ts";
import { sleep, systemClock, type TimerHandle } from "../../core/clock.ts";

/** Opens the image stream; yields events until `signal` aborts (reconnecting by itself). */
export type StreamOpener = (signal: AbortSignal) => AsyncIterable<StreamEvent>;

/** Test and integration hooks of {@link EigerDevice}. */
export interface EigerDeviceOptions {
  /** Image stream source; default: ZeroMQ PULL to `EIGER_DEVICE_HOST:EIGER_STREAM_PORT`. */
  openStream?: StreamOpener;
  /** Pause between state checks while waiting for the DCU, ms (default 250). */
  statePollMs?: number;
}

const INITIALIZE_TIMEOUT_MS = 240_000;
const ARM_TIMEOUT_MS = 120_000;
const READY_WAIT_MS = 300_000;
const END_WAIT_MS = 10_000;

const PIXEL_TYPES: Record<number, PixelType> = { 8: "uint8", 16: "uint16", 32: "uint32" };

type Write = [Subsystem, string, SimplonValue];

/** Equal SIMPLON values (numbers within a relative 1e-9, as a DCU may store floats rounded). */
function sameValue(a: SimplonValue, b: SimplonValue): boolean {
  if (typeof a === "number" && typeof b === "number") {
    return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
  }
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The configuration writes of a mode, in order (fixing the original's threshold/2/mode bug). */
export function modeWrites(settings: EigerSettings): Write[] {
  const gated = settings.mode !== "snapshot";
  const writes: Write[] = [];
  if (gated) {
    writes.push(
      ["detector", "trigger_mode", "extg"],
      ["detector", "extg_mode", settings.mode],
      ["detector", "ntrigger", 1],
      ["detector", "nimages", settings.mode === "double" ? 2 : 1],
    );
  } else {
    writes.push(
      ["detector", "trigger_mode", "ints"],
      ["detector", "ntrigger", 1],
      ["detector", "nimages", settings.numImages],
    );
  }
  writes.push(
    ["detector", "test_image_mode", ""],
    ["detector", "countrate_correction_applied", !gated],
    ["detector", "pixel_mask_applied", false],
    ["detector", "auto_summation", false],
    ["detector", "counting_mode", "normal"],
    ["detector", "compression", "bslz4"],
  );
  if (settings.threshold1Energy !== undefined) {
    writes.push(["detector", "threshold/1/energy", settings.threshold1Energy]);
  }
  if (settings.threshold2Energy !== undefined) {
    writes.push(
      ["detector", "threshold/2/mode", "enabled"],
      ["detector", "threshold/2/energy", settings.threshold2Energy],
    );
  }
  writes.push(["stream", "format", "cbor"], ["stream", "mode", "enabled"]);
  return writes;
}

/** The EIGER2 device backend. */
export class EigerDevice implements Device {
  #ctx: DeviceContext;
  #settings: EigerSettings;
  #client: SimplonClient;
  #openStream: StreamOpener;
  #statePollMs: number;
  #stop = new AbortController();
  #tasks: Promise<void>[] = [];
  #initialized = false;
  #config: DeviceConfig | undefined;
  #runtime: RuntimeStateEvent["values"] = {};
  #collector: SeriesCollector | undefined;
  #cancel: AbortController | undefined;
  #cancelling: Promise<unknown> = Promise.resolve();
  #pollFailing = false;
  #dcuErrorReported = false;
  #streamUp = false;
  #streamWaiters: (() => void)[] = [];
  /** Why the DCU's configuration is no longer trusted (cleared by a successful initialize). */
  #lost: string | undefined;
  /** Threshold energies to write at (re-)initialization: the settings, then channel adjusts. */
  #thresholds: { 1?: number; 2?: number };
  /** Settings written at initialization and read back, checked one per poll (`sub/config/key`). */
  #expected = new Map<string, { sub: Subsystem; key: string; value: SimplonValue }>();
  #expectedVersion = 0;
  #checkIndex = 0;
  #adjusting = 0;
  /** Series this IOC abandoned; their late messages are dropped. */
  #abandoned = new CancelledSeries((report) => this.#reportDropped(report));
  /** Number of the last series that ended normally (an abort reply naming it is no news). */
  #lastCompleted: number | undefined;
  /** Series stacks the controller lent: the stream decoder writes images into them. */
  #imageTarget = new TargetHolder();

  /** Reads the settings from `ctx.env`; throws with a clear message when one is invalid. */
  constructor(ctx: DeviceContext, options: EigerDeviceOptions = {}) {
    this.#ctx = ctx;
    this.#settings = parseEigerSettings(ctx.env);
    this.#client = new SimplonClient({
      host: this.#settings.host,
      port: this.#settings.apiPort,
      version: this.#settings.apiVersion,
      timeoutMs: this.#settings.requestTimeout * 1000,
      signal: this.#stop.signal,
    });
    this.#openStream = options.openStream ??
      zmqStreamOpener({
        host: this.#settings.host,
        port: this.#settings.streamPort,
        decode: { workers: this.#settings.decodeWorkers, backlog: this.#settings.decodeBacklog },
        target: this.#imageTarget,
      });
    this.#statePollMs = options.statePollMs ?? 250;
    this.#thresholds = {
      1: this.#settings.threshold1Energy,
      2: this.#settings.threshold2Energy,
    };
  }

  /** The parsed settings (read-only view). */
  get settings(): Readonly<EigerSettings> {
    return this.#settings;
  }

  /** Starts the stream reader and the runtime poller. */
  startup(): Promise<void> {
    const signal = AbortSignal.any([this.#stop.signal, this.#ctx.signal]);
    this.#tasks.push(this.#streamLoop(signal), this.#pollLoop(signal));
    return Promise.resolve();
  }

  /** Stops the background tasks. Never throws. */
  async teardown(): Promise<void> {
    this.#stop.abort(new Error("teardown"));
    this.#cancel?.abort(new Error("teardown"));
    await Promise.allSettled(this.#tasks);
    this.#abandoned.flush();
  }

  /** Lent series stacks: the stream's images are decoded into them in place (`image_target.ts`). */
  lendSeriesStacks(stacks: LentSeriesStacks | undefined): void {
    if (this.#settings.decodeInPlace) this.#imageTarget.set(imageTarget(stacks));
  }

  /** EIGER_IMAGE_OVERDUE: the controller waits this (plus its margin) before giving up. */
  overdueSeconds(): number {
    return this.settings.imageOverdue;
  }

  /** True after a successful initialize, until the DCU is found to have lost its configuration. */
  isInitialized(): boolean {
    return this.#initialized;
  }

  /** Configuration read back from the DCU, or undefined before initialization. */
  getConfig(): DeviceConfig | undefined {
    return this.#config;
  }

  /** Last polled runtime values: detector state, temperature, humidity, HV and stream state. */
  getRuntime(): RuntimeStateEvent["values"] {
    return { ...this.#runtime };
  }

  // ---------------------------------------------------------------- background tasks

  async #streamLoop(signal: AbortSignal): Promise<void> {
    const log = this.#ctx.log;
    while (!signal.aborted) {
      try {
        for await (const event of this.#openStream(signal)) {
          if (event.kind === "connected") {
            log.info("Image stream connected");
            this.#setStreamUp(true);
          } else if (event.kind === "disconnected") {
            log.warn("Image stream disconnected", { reason: event.reason });
            this.#setStreamUp(false);
          } else if (event.kind === "error" || event.kind === "overflow") {
            log.warn("Bad stream message", { error: event.message });
          }
          if (event.kind === "message" && this.#dropAbandoned(event.message)) continue;
          const collector = this.#collector;
          if (collector !== undefined && !collector.closed) collector.handle(event);
          else if (event.kind === "message") this.#foreignMessage(event.message);
          if (event.kind === "disconnected") this.#streamLost(event.reason);
        }
      } catch (error) {
        this.#setStreamUp(false);
        if (signal.aborted) break;
        log.warn("Image stream failed", { error: errorMessage(error) });
        this.#collector?.handle({ kind: "disconnected", reason: errorMessage(error) });
        this.#streamLost(errorMessage(error));
      }
      if (signal.aborted) break;
      await sleep(systemClock, 1000, signal).catch(() => {});
    }
  }

  /** Drops (and counts) a message of a series this IOC abandoned; true when it was one. */
  #dropAbandoned(msg: StreamMessage): boolean {
    if (!this.#abandoned.claim(msg)) return false;
    this.#ctx.log.debug("Dropped stream message of an abandoned series", {
      type: msg.type,
      series: msg.seriesId,
      image: msg.type === "image" ? msg.imageId : undefined,
    });
    if (msg.type === "image") releaseDecodeBuffers(Object.values(msg.data).map((d) => d.pixels));
    return true;
  }

  #reportDropped(report: DroppedReport): void {
    const fields = {
      series: report.seriesId,
      uniqueId: report.uniqueId,
      dropped: report.dropped,
      why: report.why,
    };
    if (report.unexpected) this.#ctx.log.warn("Dropped late stream messages of a series", fields);
    else this.#ctx.log.debug("Dropped the end of an abandoned series", fields);
  }

  /**
   * A message of a series that is neither running nor abandoned by this IOC. Before the first
   * initialize it predates this IOC (initialize aborts such a series) and is dropped; later it is
   * a series someone else armed: an error. Its further messages are dropped with one report.
   */
  #foreignMessage(msg: StreamMessage): void {
    const why = this.#config === undefined
      ? "predates this IOC"
      : this.#collector !== undefined
      ? "cancelled"
      : "armed by someone else";
    this.#abandoned.add(msg.seriesId, msg.uniqueId, why);
    this.#dropAbandoned(msg);
    // Before the first initialize, or while a given-up acquisition still winds down (a cancel
    // during `arm` learns the series number only from the abort reply), the series is not foreign.
    if (this.#config === undefined || this.#collector !== undefined) return;
    this.#ctx.emit({
      type: "error",
      message:
        `stream ${msg.type} of unknown series ${msg.seriesId} (${msg.uniqueId}) while no acquisition runs: was the DCU armed by another client?`,
    });
  }

  /**
   * Remembers a series this IOC gives up on, so its late messages are dropped: `cancelled` or
   * `failed` (aborted after an error).
   */
  #abandon(collector: SeriesCollector, why: "cancelled" | "failed"): void {
    if (collector.seriesNumber !== undefined) {
      this.#abandoned.add(collector.seriesNumber, collector.uniqueId, why);
    }
    const rejected = collector.rejectedStart;
    if (rejected !== undefined) this.#abandoned.add(rejected.seriesId, rejected.uniqueId, why);
    collector.close();
  }

  /** Records the series an abort/disarm reply names (a series this IOC stopped). */
  #abandonReply(reply: unknown, why: string): void {
    const n = sequenceIdOf(reply);
    if (n !== undefined && n !== this.#lastCompleted && n > 0) {
      this.#abandoned.add(n, undefined, why);
    }
  }

  /** The stream connection dropped: the DCU (or its stream service) may have restarted. */
  #streamLost(reason: string): void {
    this.#abandoned.flush();
    this.#configLost(`image stream connection lost (${reason})`, true);
  }

  /**
   * The DCU may have lost the configuration this IOC wrote (restart, state `na`, changed
   * settings, failed arm): until the next initialize the backend reports itself uninitialized, so
   * that the controller's clear initializes it again. With `report`, says so as an error (through
   * the running series, if any).
   */
  #configLost(reason: string, report: boolean): void {
    if (!this.#initialized) return;
    this.#initialized = false;
    this.#lost = reason;
    this.#ctx.log.warn("DCU configuration lost", { reason });
    if (!report) return;
    const collector = this.#collector;
    const text = `DCU lost its configuration: ${reason}; clear initializes it again`;
    if (collector !== undefined && !collector.closed) collector.fail(`${collector.label}: ${text}`);
    else this.#ctx.emit({ type: "error", message: text });
  }

  #setStreamUp(up: boolean): void {
    this.#streamUp = up;
    if (!up) return;
    const waiters = this.#streamWaiters;
    this.#streamWaiters = [];
    for (const w of waiters) w();
  }

  /** Waits (bounded by the request timeout) until the image stream is connected. */
  async #awaitStream(signal: AbortSignal): Promise<void> {
    if (this.#streamUp) return;
    const ms = this.#settings.requestTimeout * 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    let resolveUp: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        resolveUp = resolve;
        this.#streamWaiters.push(resolve);
        timer = setTimeout(() => {
          const { host, streamPort } = this.#settings;
          reject(
            new Error(`image stream ${host}:${streamPort} not connected after ${ms / 1000} s`),
          );
        }, ms);
        onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener("abort", onAbort);
      this.#streamWaiters = this.#streamWaiters.filter((w) => w !== resolveUp);
    }
  }

  async #pollLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.#pollOnce(signal);
      await sleep(systemClock, this.#settings.pollInterval * 1000, signal).catch(() => {});
    }
  }

  async #pollRuntime(signal?: AbortSignal): Promise<void> {
    await this.#client.discoverVersion({ signal });
    const state = await this.#client.getValue("detector", "status", "state", { signal });
    // Before initialization only the state is sure to exist (a DCU in `na` has nothing else).
    const keys: [Subsystem, string, string][] = this.#initialized && state !== "na"
      ? [
        ["detector", "temperature", "temperature"],
        ["detector", "humidity", "humidity"],
        ["detector", "high_voltage/state", "high_voltage"],
        ["stream", "state", "stream_state"],
        ["stream", "dropped", "stream_dropped"],
      ]
      : [];
    const values = await Promise.all(
      keys.map(([sub, key]) => this.#client.getValue(sub, "status", key, { signal })),
    );
    const runtime: RuntimeStateEvent["values"] = {};
    if (typeof state === "string") runtime.state = state;
    keys.forEach(([, , name], i) => {
      const v = values[i];
      if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") {
        runtime[name] = v;
      }
    });
    this.#runtime = runtime;
  }

  async #pollOnce(signal: AbortSignal): Promise<void> {
    try {
      await this.#pollRuntime(signal);
      if (this.#pollFailing) this.#ctx.log.info("Runtime poll works again");
      this.#pollFailing = false;
      const state = this.#runtime.state;
      if (state === "error" && this.#initialized && !this.#dcuErrorReported) {
        this.#dcuErrorReported = true;
        this.#ctx.emit({ type: "error", message: "DCU reports detector state error" });
        this.#configLost("detector state error", false);
      } else if (state !== "error") this.#dcuErrorReported = false;
      if (state === "na") this.#configLost("detector state na (restarted?)", true);
      await this.#checkOneSetting(signal);
    } catch (error) {
      if (signal.aborted) return;
      if (!this.#pollFailing) {
        this.#pollFailing = true;
        this.#ctx.emit({ type: "error", message: `status poll: ${errorMessage(error)}` });
      }
      this.#ctx.log.debug("Runtime poll failed", { error: errorMessage(error) });
    }
  }

  /**
   * Reads back one of the settings written at initialization (a different one each poll) and
   * reports the configuration lost when it changed behind this IOC's back.
   */
  async #checkOneSetting(signal: AbortSignal): Promise<void> {
    const entries = [...this.#expected.values()];
    if (!this.#initialized || this.#adjusting > 0 || entries.length === 0) return;
    const { sub, key, value } = entries[this.#checkIndex++ % entries.length];
    const version = this.#expectedVersion;
    const now = await this.#client.getValue(sub, "config", key, { signal });
    if (version !== this.#expectedVersion || this.#adjusting > 0) return;
    if (!sameValue(now, value)) {
      this.#configLost(
        `${sub}/config/${key} is ${JSON.stringify(now)}, was ${JSON.stringify(value)}`,
        true,
      );
    }
  }

  // ---------------------------------------------------------------- initialize

  async #state(signal: AbortSignal): Promise<string> {
    const value = await this.#client.getValue("detector", "status", "state", { signal });
    return String(value);
  }

  /** Waits until the DCU is idle, initializing or disarming it when needed. */
  async #bringToIdle(signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + READY_WAIT_MS;
    let initialized = false;
    let disarmed = false;
    while (true) {
      const state = await this.#state(signal);
      if (state === "idle") return;
      if ((state === "na" || state === "error") && !initialized) {
        this.#ctx.log.info("Initializing DCU", { state });
        await this.#client.command("initialize", { timeoutMs: INITIALIZE_TIMEOUT_MS, signal });
        initialized = true;
        continue;
      }
      if ((state === "ready" || state === "acquire") && !disarmed) {
        this.#ctx.log.info("DCU is armed: disarming", { state });
        this.#abandonReply(
          await this.#client.command("abort", { signal }),
          "aborted at initialize",
        );
        this.#abandonReply(
          await this.#client.command("disarm", { signal }),
          "aborted at initialize",
        );
        disarmed = true;
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`DCU stays in state ${state}: cannot initialize`);
      }
      if (state === "na" || state === "error") {
        throw new Error(`DCU is in state ${state} after initialize`);
      }
      await sleep(systemClock, this.#statePollMs, signal);
    }
  }

  async #readConfig(signal: AbortSignal): Promise<DeviceConfig> {
    const get = (sub: Subsystem, key: string) =>
      this.#client.getValue(sub, "config", key, { signal });
    const num = async (key: string) => {
      const v = await get("detector", key);
      if (typeof v !== "number") throw new Error(`DCU detector/config/${key} is not a number`);
      return v;
    };
    const [format, mode] = await Promise.all([get("stream", "format"), get("stream", "mode")]);
    if (format !== "cbor" || mode !== "enabled") {
      throw new Error(`DCU stream is format=${format} mode=${mode}, expected cbor/enabled`);
    }
    const width = await num("x_pixels_in_detector");
    const height = await num("y_pixels_in_detector");
    const bitDepth = await num("bit_depth_image");
    const pixelType = PIXEL_TYPES[bitDepth];
    if (pixelType === undefined) throw new Error(`DCU bit_depth_image ${bitDepth} unsupported`);
    const pixelSize: [number, number] = [await num("x_pixel_size"), await num("y_pixel_size")];
    const channels: ChannelConfig[] = [
      { name: "threshold_1", meta: { threshold_energy: await num("threshold/1/energy") } },
    ];
    // Detectors with one threshold have no threshold/2 keys (404): one channel then.
    const t2mode = await get("detector", "threshold/2/mode").catch((error) => {
      if (error instanceof SimplonError && error.status === 404) return "absent";
      throw error;
    });
    if (t2mode === "enabled") {
      channels.push({
        name: "threshold_2",
        meta: { threshold_energy: await num("threshold/2/energy") },
      });
    }
    const extra: Record<string, string | number | boolean> = {
      mode: this.#settings.mode,
      apiVersion: this.#client.version ?? "",
    };
    for (const key of ["description", "detector_number", "eiger_fw_version", "software_version"]) {
      try {
        const v = await get("detector", key);
        if (typeof v === "string" || typeof v === "number") extra[key] = v;
      } catch (error) {
        this.#ctx.log.debug("Optional key unreadable", { key, error: errorMessage(error) });
      }
    }
    return {
      channels,
      numImages: this.#settings.mode === "double" ? 2 : this.#settings.numImages,
      width,
      height,
      pixelType,
      pixelSize,
      extra,
    };
  }

  /**
   * Initialize: wait for a usable DCU, initialize if needed, write the mode, read back config.
   * The same complete sequence runs again after the DCU lost its configuration (the controller's
   * clear calls it): the API version is asked again and channel adjustments are written again.
   */
  async initialize(signal: AbortSignal): Promise<void> {
    const s = AbortSignal.any([signal, this.#stop.signal]);
    this.#initialized = false;
    this.#expected.clear();
    this.#expectedVersion++;
    const previous = this.#config;
    if (previous !== undefined) {
      this.#ctx.log.info("Initializing the DCU again", { reason: this.#lost ?? "clear" });
    }
    this.#client.forgetVersion();
    const version = await this.#client.discoverVersion({ signal: s });
    this.#ctx.log.info("SIMPLON API", { version, host: this.#settings.host });
    await this.#bringToIdle(s);
    // Series numbers may have restarted (initialize, DCU restart): forget numbers without ids.
    this.#abandoned.numbersRestart();
    this.#lastCompleted = undefined;
    const writes = modeWrites({
      ...this.#settings,
      threshold1Energy: this.#thresholds[1],
      threshold2Energy: this.#thresholds[2],
    });
    for (const [sub, key, value] of writes) {
      await this.#client.put(sub, key, value, { signal: s });
    }
    const config = await this.#readConfig(s);
    const expected = new Map<string, { sub: Subsystem; key: string; value: SimplonValue }>();
    for (const [sub, key] of writes) {
      const value = await this.#client.getValue(sub, "config", key, { signal: s });
      expected.set(`${sub}/${key}`, { sub, key, value });
    }
    for (const ch of config.channels) {
      const key = `threshold/${ch.name.slice("threshold_".length)}/energy`;
      const value = ch.meta.threshold_energy;
      if (typeof value === "number") {
        expected.set(`detector/${key}`, { sub: "detector", key, value });
      }
    }
    this.#config = config;
    // Get the stream decoders ready for images of this size now, not in the first series.
    const pixelBytes = PIXEL_ARRAY_TYPES[config.pixelType].BYTES_PER_ELEMENT;
    this.#imageTarget.prepare(config.width * config.height * pixelBytes);
    this.#expected = expected;
    this.#expectedVersion++;
    this.#lost = undefined;
    this.#initialized = true;
    if (previous !== undefined) {
      // Threshold energies may differ after a restart: publish what the DCU has now.
      for (const ch of config.channels) {
        if (previous.channels.some((p) => p.name === ch.name)) {
          this.#ctx.emit({ type: "channel-state", channel: ch.name, values: { ...ch.meta } });
        }
      }
    }
    const c = this.#config;
    this.#ctx.log.info("EIGER initialized", {
      mode: this.#settings.mode,
      width: c.width,
      height: c.height,
      pixelType: c.pixelType,
      channels: c.channels.map((ch) => ch.name).join(","),
    });
  }

  // ---------------------------------------------------------------- acquire / cancel

  /** Waits until `done()` holds; throws the series error or an overdue error. */
  async #waitFor(
    collector: SeriesCollector,
    done: () => boolean,
    deadline: number | undefined,
    cancel: AbortSignal,
    what: () => string,
  ): Promise<"done" | "cancelled"> {
    while (true) {
      if (cancel.aborted) return "cancelled";
      if (collector.error !== undefined) throw new Error(collector.error);
      if (done()) return "done";
      const remaining = deadline === undefined ? undefined : deadline - Date.now();
      if (remaining !== undefined && remaining <= 0) throw new Error(what());
      const waiters: Promise<unknown>[] = [collector.changed()];
      let timer: TimerHandle | undefined;
      if (remaining !== undefined) {
        // Durations may be long (beyond the runtime's 2^31-1 ms timers): the system clock chains.
        waiters.push(new Promise<void>((r) => timer = systemClock.setTimeout(r, remaining)));
      }
      let onAbort: (() => void) | undefined;
      waiters.push(
        new Promise<void>((r) => {
          onAbort = () => r();
          cancel.addEventListener("abort", onAbort, { once: true });
        }),
      );
      await Promise.race(waiters);
      if (timer !== undefined) systemClock.clearTimeout(timer);
      if (onAbort) cancel.removeEventListener("abort", onAbort);
    }
  }

  /** Acquire one series of `duration` seconds; see the module doc for the mode sequences. */
  async acquire(duration: number, signal: AbortSignal): Promise<void> {
    const config = this.#config;
    if (!this.#initialized || config === undefined) {
      const why = this.#lost === undefined ? "" : ` (${this.#lost}): clear initializes it again`;
      throw new Error(`EIGER not initialized${why}`);
    }
    if (!(duration > 0) || !Number.isFinite(duration)) {
      throw new Error(`invalid duration ${duration}`);
    }
    if (this.#collector !== undefined) throw new Error("an acquisition is already running");
    const settings = this.#settings;
    const cancel = new AbortController();
    this.#cancel = cancel;
    const stopAll = AbortSignal.any([signal, this.#stop.signal, cancel.signal]);
    const emit = (event: DataEvent) => this.#ctx.emit(event);
    const collector = new SeriesCollector(crypto.randomUUID(), {
      numImages: config.numImages,
      channels: config.channels.map((c) => c.name),
      width: config.width,
      height: config.height,
      pixelType: config.pixelType,
    }, emit);
    this.#collector = collector;
    const overdue = settings.imageOverdue;
    // A snapshot series of N images takes about N count times (frame time = count time + readout).
    const seriesSeconds = settings.mode === "snapshot" ? duration * config.numImages : duration;
    let deadline: number | undefined;
    const overdueText = () => {
      const secs = (seriesSeconds + overdue).toFixed(1);
      return collector.started
        ? `${collector.label}: image overdue, ${collector.received} of ${config.numImages} images after ${secs} s`
        : `${collector.label}: no stream start within ${secs} s (timeout waiting for data stream)`;
    };
    try {
      await this.#awaitStream(stopAll);
      if (settings.mode === "snapshot") {
        await this.#client.put("detector", "count_time", duration, { signal: stopAll });
      } else {
        const nexpi = gatesPerImage(duration, settings.gatingFrequency, settings.mode);
        await this.#client.put("detector", "nexpi", nexpi, { signal: stopAll });
      }
      const reply = await this.#client.command("arm", {
        timeoutMs: ARM_TIMEOUT_MS,
        signal: stopAll,
      }).catch((error) => {
        if (!stopAll.aborted) this.#configLost(`arm failed: ${errorMessage(error)}`, false);
        throw error;
      });
      const seriesNumber = sequenceIdOf(reply);
      if (seriesNumber === undefined) {
        throw new Error(`arm reply carries no sequence id: ${JSON.stringify(reply)}`);
      }
      this.#abandoned.armed(seriesNumber);
      collector.armed(seriesNumber);
      this.#ctx.log.info("Armed", { series: seriesNumber, duration, mode: settings.mode });
      deadline = overdue > 0 ? Date.now() + (seriesSeconds + overdue) * 1000 : undefined;
      if (settings.mode === "snapshot") {
        await this.#client.command("trigger", {
          timeoutMs: (seriesSeconds + overdue + settings.requestTimeout) * 1000,
          signal: stopAll,
        });
      }
      let outcome = await this.#waitFor(
        collector,
        () => collector.complete || collector.ended,
        deadline,
        stopAll,
        overdueText,
      ).catch((error) => {
        // Armed, but the DCU never started streaming the series: its stream setup is gone.
        if (!collector.started && collector.error === undefined) {
          this.#configLost("no stream start after arm", false);
        }
        throw error;
      });
      if (outcome === "done") {
        await this.#client.command("disarm", { signal: stopAll });
        const endBy = Date.now() + END_WAIT_MS;
        outcome = await this.#waitFor(
          collector,
          () => collector.ended,
          endBy,
          stopAll,
          () => `${collector.label}: no stream end after disarm`,
        );
        if (outcome === "done") {
          this.#ctx.log.info("Series received", {
            series: collector.seriesNumber,
            images: collector.received,
            rate: Math.round(collector.imageRate),
            in_place: collector.inPlace,
            // Frames at most waiting for decoding, of the bound (EIGER_DECODE_BACKLOG).
            max_backlog: collector.maxBacklog,
            backlog_bound: this.#settings.decodeBacklog ?? DEFAULT_BACKLOG,
          });
        }
      }
      if (outcome === "cancelled") {
        this.#abandon(collector, "cancelled");
        this.#ctx.emit({ type: "cancel-data", seriesId: collector.id });
        if (cancel.signal.aborted) await this.#cancelling.catch(() => {});
        else if (!this.#stop.signal.aborted) await this.#stopDcuSeries();
      } else {
        this.#lastCompleted = seriesNumber;
        // Whatever earlier series still had in the pipeline was sent before this one ended.
        this.#abandoned.flush();
      }
    } catch (error) {
      this.#abandon(collector, cancel.signal.aborted ? "cancelled" : "failed");
      if (cancel.signal.aborted && !this.#stop.signal.aborted) {
        // The abort of a pending trigger/arm request is the cancel itself.
        this.#ctx.emit({ type: "cancel-data", seriesId: collector.id });
        await this.#cancelling.catch(() => {});
        return;
      }
      await this.#stopDcuSeries();
      let message = collector.error !== undefined && !(error instanceof SimplonError)
        ? collector.error
        : errorMessage(error);
      if (this.#lost !== undefined && !message.includes("clear initializes it again")) {
        message += `; the DCU needs initialization (${this.#lost}): clear initializes it again`;
      }
      throw new Error(message);
    } finally {
      this.#collector = undefined;
      this.#cancel = undefined;
    }
  }

  /** Best-effort abort + disarm after a failed series, so that the next one can start. */
  async #stopDcuSeries(): Promise<void> {
    for (const name of ["abort", "disarm"]) {
      try {
        const reply = await this.#client.command(name, { signal: this.#stop.signal });
        this.#abandonReply(reply, "failed");
      } catch (error) {
        this.#ctx.log.warn("Cleanup command failed", { command: name, error: errorMessage(error) });
      }
    }
  }

  /** Cancel: abort and disarm the DCU; the running acquire emits CancelData. */
  async cancel(): Promise<void> {
    // From now on, late messages of the running series are dropped, not taken as foreign.
    if (this.#collector !== undefined) this.#abandon(this.#collector, "cancelled");
    const stopDcu = async () => {
      const signal = this.#stop.signal;
      this.#abandonReply(await this.#client.command("abort", { signal }), "cancelled");
      this.#abandonReply(await this.#client.command("disarm", { signal }), "cancelled");
    };
    const done = stopDcu();
    // The acquire task waits for these commands before it returns, so that they cannot hit
    // the next series.
    this.#cancelling = done;
    this.#cancel?.abort(new Error("cancelled"));
    await done;
  }

  /**
   * Clear: checks the DCU answers and is usable again; throws while the fault persists. When the
   * DCU lost its configuration the backend stays uninitialized, and the controller runs
   * {@link EigerDevice.initialize} next.
   */
  async clear(): Promise<void> {
    const signal = this.#stop.signal;
    this.#pollFailing = false;
    this.#dcuErrorReported = false;
    await this.#pollRuntime(signal);
    if (this.#collector === undefined && this.#initialized) {
      const state = String(this.#runtime.state);
      if (state !== "idle") await this.#bringToIdle(signal);
    }
  }

  /** ChannelAdjust: writes `threshold/N/energy` and reports the read-back value. */
  async adjustChannel(channel: string, values: Record<string, MetaValue>): Promise<void> {
    const match = /^threshold_([12])$/.exec(channel);
    const entry = this.#config?.channels.find((c) => c.name === channel);
    if (match === null || entry === undefined) throw new Error(`unknown channel ${channel}`);
    const result: Record<string, MetaValue> = {};
    for (const [key, value] of Object.entries(values)) {
      if (key !== "threshold_energy") throw new Error(`channel ${channel} has no metadata ${key}`);
      if (typeof value !== "number" || !(value > 0)) {
        throw new Error(`${channel}:threshold_energy must be a positive number, not ${value}`);
      }
      const path = `threshold/${match[1]}/energy`;
      this.#adjusting++;
      try {
        await this.#client.put("detector", path, value, { signal: this.#stop.signal });
        this.#thresholds[match[1] === "1" ? 1 : 2] = value;
        const readBack = await this.#client.getValue("detector", "config", path, {
          signal: this.#stop.signal,
        });
        if (typeof readBack !== "number") throw new Error(`DCU ${path} read back ${readBack}`);
        result[key] = readBack;
        entry.meta[key] = readBack;
        this.#expected.set(`detector/${path}`, { sub: "detector", key: path, value: readBack });
      } finally {
        this.#expectedVersion++;
        this.#adjusting--;
      }
    }
    this.#ctx.emit({ type: "channel-state", channel, values: result });
  }
}
