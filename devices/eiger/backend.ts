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
  MetaValue,
  PixelType,
  RuntimeStateEvent,
} from "../contract.ts";
import { type EigerSettings, gatesPerImage, parseEigerSettings } from "./settings.ts";
import {
  sequenceIdOf,
  SimplonClient,
  SimplonError,
  type SimplonValue,
  type Subsystem,
} from "./simplon.ts";
import { SeriesCollector, type StreamEvent } from "./series.ts";
import { zmqStreamOpener } from "./stream_source.ts";
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
      });
    this.#statePollMs = options.statePollMs ?? 250;
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
  }

  /** EIGER_IMAGE_OVERDUE: the controller waits this (plus its margin) before giving up. */
  overdueSeconds(): number {
    return this.settings.imageOverdue;
  }

  /** True after a successful initialize. */
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
          const collector = this.#collector;
          if (collector !== undefined) collector.handle(event);
          else if (event.kind === "message") {
            log.debug("Stream message outside an acquisition", {
              type: event.message.type,
              series: event.message.seriesId,
            });
          }
        }
      } catch (error) {
        this.#setStreamUp(false);
        if (signal.aborted) break;
        log.warn("Image stream failed", { error: errorMessage(error) });
        this.#collector?.handle({ kind: "disconnected", reason: errorMessage(error) });
      }
      if (signal.aborted) break;
      await sleep(systemClock, 1000, signal).catch(() => {});
    }
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
    // Before initialization only the state is sure to exist (a DCU in `na` has nothing else).
    const keys: [Subsystem, string, string][] = this.#initialized
      ? [
        ["detector", "state", "state"],
        ["detector", "temperature", "temperature"],
        ["detector", "humidity", "humidity"],
        ["detector", "high_voltage/state", "high_voltage"],
        ["stream", "state", "stream_state"],
        ["stream", "dropped", "stream_dropped"],
      ]
      : [["detector", "state", "state"]];
    const values = await Promise.all(
      keys.map(([sub, key]) => this.#client.getValue(sub, "status", key, { signal })),
    );
    const runtime: RuntimeStateEvent["values"] = {};
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
      } else if (state !== "error") this.#dcuErrorReported = false;
    } catch (error) {
      if (signal.aborted) return;
      if (!this.#pollFailing) {
        this.#pollFailing = true;
        this.#ctx.emit({ type: "error", message: `status poll: ${errorMessage(error)}` });
      }
      this.#ctx.log.debug("Runtime poll failed", { error: errorMessage(error) });
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
        await this.#client.command("abort", { signal });
        await this.#client.command("disarm", { signal });
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

  /** Initialize: wait for a usable DCU, initialize if needed, write the mode, read back config. */
  async initialize(signal: AbortSignal): Promise<void> {
    const s = AbortSignal.any([signal, this.#stop.signal]);
    this.#initialized = false;
    const version = await this.#client.discoverVersion({ signal: s });
    this.#ctx.log.info("SIMPLON API", { version, host: this.#settings.host });
    await this.#bringToIdle(s);
    for (const [sub, key, value] of modeWrites(this.#settings)) {
      await this.#client.put(sub, key, value, { signal: s });
    }
    this.#config = await this.#readConfig(s);
    this.#initialized = true;
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
    if (!this.#initialized || config === undefined) throw new Error("EIGER not initialized");
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
      });
      const seriesNumber = sequenceIdOf(reply);
      if (seriesNumber === undefined) {
        throw new Error(`arm reply carries no sequence id: ${JSON.stringify(reply)}`);
      }
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
      );
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
          });
        }
      }
      if (outcome === "cancelled") {
        collector.close();
        this.#ctx.emit({ type: "cancel-data", seriesId: collector.id });
        if (cancel.signal.aborted) await this.#cancelling.catch(() => {});
        else if (!this.#stop.signal.aborted) await this.#stopDcuSeries();
      }
    } catch (error) {
      collector.close();
      if (cancel.signal.aborted && !this.#stop.signal.aborted) {
        // The abort of a pending trigger/arm request is the cancel itself.
        this.#ctx.emit({ type: "cancel-data", seriesId: collector.id });
        await this.#cancelling.catch(() => {});
        return;
      }
      await this.#stopDcuSeries();
      if (collector.error !== undefined && !(error instanceof SimplonError)) {
        throw new Error(collector.error);
      }
      throw error instanceof Error ? error : new Error(String(error));
    } finally {
      this.#collector = undefined;
      this.#cancel = undefined;
    }
  }

  /** Best-effort abort + disarm after a failed series, so that the next one can start. */
  async #stopDcuSeries(): Promise<void> {
    for (const name of ["abort", "disarm"]) {
      try {
        await this.#client.command(name, { signal: this.#stop.signal });
      } catch (error) {
        this.#ctx.log.warn("Cleanup command failed", { command: name, error: errorMessage(error) });
      }
    }
  }

  /** Cancel: abort and disarm the DCU; the running acquire emits CancelData. */
  async cancel(): Promise<void> {
    const stopDcu = async () => {
      await this.#client.command("abort", { signal: this.#stop.signal });
      await this.#client.command("disarm", { signal: this.#stop.signal });
    };
    const done = stopDcu();
    // The acquire task waits for these commands before it returns, so that they cannot hit
    // the next series.
    this.#cancelling = done;
    this.#cancel?.abort(new Error("cancelled"));
    await done;
  }

  /** Clear: checks the DCU answers and is usable again; throws while the fault persists. */
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
      await this.#client.put("detector", path, value, { signal: this.#stop.signal });
      const readBack = await this.#client.getValue("detector", "config", path, {
        signal: this.#stop.signal,
      });
      if (typeof readBack !== "number") throw new Error(`DCU ${path} read back ${readBack}`);
      result[key] = readBack;
      entry.meta[key] = readBack;
    }
    this.#ctx.emit({ type: "channel-state", channel, values: result });
  }
}
