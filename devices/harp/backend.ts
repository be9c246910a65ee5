/**
 * Harp backend (`--backend harp`, alias `miniquant`): a PicoQuant HydraHarp 400 in histogram
 * mode, driven through PicoQuant's own library (HHLib) with Deno's FFI.
 *
 * Start: the library is loaded (`HARP_LIBRARY` or the vendor's install locations) and its version
 * checked; any problem stops the IOC with a one-line message. Initialize: open the device
 * (`HARP_DEVICE_INDEX`, `HARP_SERIAL`, or the first that opens), initialize histogram mode with the
 * reference clock, calibrate, write sync/input/histogram settings, read the resolution. Acquire
 * (`duration` s): clear the histogram memory, start a measurement of `duration` ms, poll
 * `CTCStatus` on a timer, stop, check the flags, read every input's histogram into a recycled
 * buffer and emit one image: width = histogram length, height 1, one `uint32` channel per input
 * (`ch1`..`chN`, the front-panel numbers). Cancel stops the measurement (CancelData).
 *
 * Every call's return code is checked: a negative one is an error naming the call with the
 * library's text. A device that stops answering (unplugged) is noticed by the runtime poll (sync
 * and count rates, warnings) and reported once; Clear closes it, and the controller's new
 * Initialize opens and sets it up again.
 *
 * @module
 */

import type {
  ChannelConfig,
  Device,
  DeviceConfig,
  DeviceContext,
  MetaValue,
  RuntimeStateEvent,
} from "../contract.ts";
import { type Clock, sleep, systemClock } from "../../core/clock.ts";
import { errorMessage } from "../../core/errors.ts";
import {
  bitNames,
  ERROR_DEVICE_OPEN_FAIL,
  FATAL_FLAGS,
  FLAGS,
  type HarpFamily,
  HYDRAHARP,
  MODE_HIST,
  REF_SOURCES,
  WARNINGS,
} from "./api.ts";
import { cString, HarpCallError, HarpLibrary } from "./library.ts";
import { type HarpSettings, inputValue, lengthCode, parseHarpSettings } from "./settings.ts";

/** Test and integration hooks of {@link HarpDevice}. */
export interface HarpDeviceOptions {
  /** Library family; default HydraHarp. */
  family?: HarpFamily;
  /** Clock of the polls, the overdue check and the timestamps; default the system clock. */
  clock?: Clock;
}

/** Image buffers kept for reuse once the controller released them. */
const MAX_SPARE_BUFFERS = 32;
/** Smallest buffer handed to the library for a string it writes. */
const MIN_STRING_BUFFER = 64;

/** Metadata keys of each input channel. */
const META_KEYS = ["offset", "cfd_level", "cfd_zero_cross"] as const;

/** One input's settings as channel metadata. */
interface InputMeta extends Record<string, MetaValue> {
  offset: number;
  cfd_level: number;
  cfd_zero_cross: number;
}

/** The HydraHarp device backend. */
export class HarpDevice implements Device {
  readonly #ctx: DeviceContext;
  readonly #settings: HarpSettings;
  readonly #lib: HarpLibrary;
  readonly #clock: Clock;
  readonly #stop = new AbortController();
  #poll: Promise<void> | undefined;
  /** Index of the open device. */
  #device: number | undefined;
  #initialized = false;
  #config: DeviceConfig | undefined;
  #inputs: InputMeta[] = [];
  #histLen = 0;
  #resolution = 0;
  #runtime: RuntimeStateEvent["values"] = {};
  /** The library error the runtime poll reported (reported once, until Clear). */
  #pollError: string | undefined;
  #measuring: AbortController | undefined;
  /** A measurement was started and not yet stopped successfully. */
  #started = false;
  #series = 0;
  #spare: Uint32Array[] = [];
  /** Out-parameters of commands (initialize, acquire) and, separately, of the runtime poll. */
  readonly #int = new Int32Array(1);
  readonly #pollInt = new Int32Array(1);
  readonly #double = new Float64Array(1);

  /**
   * Reads the settings from `ctx.env` and loads the vendor library; throws with a one-line message
   * when a setting is invalid or the library is missing, incomplete or of another version.
   */
  constructor(ctx: DeviceContext, options: HarpDeviceOptions = {}) {
    const family = options.family ?? HYDRAHARP;
    this.#ctx = ctx;
    this.#clock = options.clock ?? systemClock;
    this.#settings = parseHarpSettings(ctx.env, family.limits);
    this.#lib = HarpLibrary.open(family, this.#settings.library);
    ctx.log.info("Harp library loaded", { path: this.#lib.path, version: this.#lib.version });
  }

  /** The parsed settings (read-only view). */
  get settings(): Readonly<HarpSettings> {
    return this.#settings;
  }

  get #prefix(): string {
    return this.#lib.family.prefix;
  }

  /** Starts the runtime poll (rates and warnings; notices a vanished device). */
  startup(): Promise<void> {
    this.#poll = this.#pollLoop(AbortSignal.any([this.#stop.signal, this.#ctx.signal]));
    return Promise.resolve();
  }

  /** Stops a running measurement, closes the device and unloads the library. Never throws. */
  async teardown(): Promise<void> {
    this.#stop.abort(new Error("teardown"));
    this.#measuring?.abort(new Error("teardown"));
    await this.#poll;
    await this.#closeDevice();
    await this.#lib.close();
  }

  /** HARP_OVERDUE: how long past the duration the backend itself waits for the measurement. */
  overdueSeconds(): number {
    return this.#settings.overdue;
  }

  isInitialized(): boolean {
    return this.#initialized;
  }

  getConfig(): DeviceConfig | undefined {
    return this.#config === undefined ? undefined : structuredClone(this.#config);
  }

  /** Last polled values: sync rate, count rate per input (1/s), warnings, resolution (ps). */
  getRuntime(): RuntimeStateEvent["values"] {
    return { ...this.#runtime };
  }

  // ---------------------------------------------------------------- runtime poll

  async #pollLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.#clock, this.#settings.pollInterval * 1000, signal).catch(() => {});
      if (signal.aborted) return;
      if (!this.#initialized || this.#device === undefined || this.#pollError !== undefined) {
        continue;
      }
      try {
        await this.#readRuntime();
      } catch (error) {
        if (signal.aborted || !this.#initialized) continue;
        this.#pollError = errorMessage(error);
        this.#ctx.log.warn("Runtime read failed", { error: this.#pollError });
        this.#ctx.emit({ type: "error", message: this.#pollError });
      }
    }
  }

  async #readRuntime(): Promise<void> {
    const dev = this.#device!;
    const values: RuntimeStateEvent["values"] = {};
    await this.#lib.call("GetSyncRate", dev, this.#pollInt);
    values.sync_rate = this.#pollInt[0];
    // The library computes its warnings from the rates read just before.
    for (let i = 0; i < this.#inputs.length; i++) {
      await this.#lib.call("GetCountRate", dev, i, this.#pollInt);
      values[`count_rate_ch${i + 1}`] = this.#pollInt[0];
    }
    await this.#lib.call("GetWarnings", dev, this.#pollInt);
    const warnings = this.#pollInt[0];
    values.warnings = warnings;
    values.warnings_names = bitNames(warnings, WARNINGS);
    values.warnings_text = warnings === 0 ? "" : await this.#warningsText(dev, warnings);
    values.resolution_ps = this.#resolution;
    const last = this.#runtime.warnings_text;
    if (values.warnings_text !== "" && values.warnings_text !== last) {
      this.#ctx.log.warn("Device warnings", { warnings: values.warnings_names });
    }
    this.#runtime = { ...this.#runtime, ...values };
  }

  async #warningsText(dev: number, warnings: number): Promise<string> {
    const buffer = new Uint8Array(this.#lib.family.limits.buffers.warningsText);
    await this.#lib.call("GetWarningsText", dev, buffer, warnings);
    return cString(buffer).replace(/\s+/g, " ");
  }

  // ---------------------------------------------------------------- initialize

  #stringBuffer(size: number): Uint8Array {
    return new Uint8Array(Math.max(size, MIN_STRING_BUFFER));
  }

  /** Opens the configured device; returns its index and serial number. */
  async #openDevice(): Promise<{ index: number; serial: string }> {
    const { deviceIndex, serial } = this.#settings;
    const limits = this.#lib.family.limits;
    const buffer = this.#stringBuffer(limits.buffers.serial);
    const indices = deviceIndex !== undefined
      ? [deviceIndex]
      : Array.from({ length: limits.maxDevices }, (_, i) => i);
    const seen: string[] = [];
    for (const index of indices) {
      buffer.fill(0);
      try {
        await this.#lib.call("OpenDevice", index, buffer);
      } catch (error) {
        // With an explicit index every failure counts; while searching, an empty slot is normal.
        if (
          deviceIndex !== undefined ||
          !(error instanceof HarpCallError && error.code === ERROR_DEVICE_OPEN_FAIL)
        ) throw error;
        continue;
      }
      const found = cString(buffer);
      if (serial === undefined || found === serial) return { index, serial: found };
      seen.push(`${index}:${found}`);
      await this.#lib.call("CloseDevice", index).catch(() => {});
    }
    const what = serial !== undefined ? ` with serial ${serial}` : "";
    const found = seen.length > 0 ? `; found ${seen.join(" ")}` : "";
    throw new Error(
      `${this.#prefix}OpenDevice found no ${this.#lib.family.product}${what} (indices ${
        indices.join(",")
      }${found})`,
    );
  }

  async #closeDevice(): Promise<void> {
    const dev = this.#device;
    this.#device = undefined;
    this.#initialized = false;
    this.#started = false;
    if (dev === undefined) return;
    try {
      await this.#lib.call("CloseDevice", dev);
    } catch (error) {
      this.#ctx.log.debug("Close failed", { error: errorMessage(error) });
    }
  }

  /** Open, initialize in histogram mode, calibrate, write the settings, read the result back. */
  async initialize(signal: AbortSignal): Promise<void> {
    const s = this.#settings;
    const lib = this.#lib;
    const limits = lib.family.limits;
    await this.#closeDevice();
    this.#pollError = undefined;
    const { index: dev, serial } = await this.#openDevice();
    this.#device = dev;
    try {
      await lib.call("Initialize", dev, MODE_HIST, REF_SOURCES[s.refSource]);
      const model = this.#stringBuffer(limits.buffers.model);
      const part = this.#stringBuffer(limits.buffers.partNumber);
      const version = this.#stringBuffer(limits.buffers.hardwareVersion);
      await lib.call("GetHardwareInfo", dev, model, part, version);
      await lib.call("GetNumOfInputChannels", dev, this.#int);
      const inputCount = this.#int[0];
      if (!(inputCount >= 1)) throw new Error(`device reports ${inputCount} inputs`);
      for (
        const [name, list] of [
          ["HARP_INPUT_CFD_LEVEL", s.inputCfdLevel],
          ["HARP_INPUT_CFD_ZERO_CROSS", s.inputCfdZeroCross],
          ["HARP_INPUT_OFFSET", s.inputOffset],
        ] as const
      ) {
        if (list.length !== 1 && list.length !== inputCount) {
          throw new Error(
            `${name} lists ${list.length} values; the device has ${inputCount} inputs`,
          );
        }
      }
      signal.throwIfAborted();
      await lib.call("Calibrate", dev);
      await lib.call("SetSyncDiv", dev, s.syncDivider);
      await lib.call("SetSyncCFD", dev, s.syncCfdLevel, s.syncCfdZeroCross);
      await lib.call("SetSyncChannelOffset", dev, s.syncOffset);
      const inputs: InputMeta[] = [];
      for (let i = 0; i < inputCount; i++) {
        const meta: InputMeta = {
          offset: inputValue(s.inputOffset, i, "HARP_INPUT_OFFSET"),
          cfd_level: inputValue(s.inputCfdLevel, i, "HARP_INPUT_CFD_LEVEL"),
          cfd_zero_cross: inputValue(s.inputCfdZeroCross, i, "HARP_INPUT_CFD_ZERO_CROSS"),
        };
        await lib.call("SetInputCFD", dev, i, meta.cfd_level, meta.cfd_zero_cross);
        await lib.call("SetInputChannelOffset", dev, i, meta.offset);
        inputs.push(meta);
      }
      await lib.call("SetHistoLen", dev, lengthCode(s.histoLen, limits), this.#int);
      const histLen = this.#int[0];
      if (histLen !== s.histoLen) {
        throw new Error(`${this.#prefix}SetHistoLen gave ${histLen} bins, not ${s.histoLen}`);
      }
      await lib.call("SetBinning", dev, s.binning);
      await lib.call("SetOffset", dev, s.offset);
      await lib.call("GetResolution", dev, this.#double);
      const resolution = this.#double[0];
      await lib.call("GetBaseResolution", dev, this.#double, this.#int);
      const baseResolution = this.#double[0];
      signal.throwIfAborted();

      if (histLen !== this.#histLen) this.#spare = [];
      this.#histLen = histLen;
      this.#resolution = resolution;
      this.#inputs = inputs;
      this.#runtime = { resolution_ps: resolution };
      const channels: ChannelConfig[] = inputs.map((meta, i) => ({
        name: `ch${i + 1}`,
        meta: { ...meta },
      }));
      this.#config = {
        channels,
        numImages: 1,
        width: histLen,
        height: 1,
        pixelType: "uint32",
        extra: {
          product: lib.family.product,
          model: cString(model),
          part_number: cString(part),
          hardware_version: cString(version),
          serial,
          device_index: dev,
          library_version: lib.version,
          base_resolution_ps: baseResolution,
          resolution_ps: resolution,
          binning: s.binning,
          offset_ns: s.offset,
          sync_divider: s.syncDivider,
          ref_source: s.refSource,
        },
      };
      this.#initialized = true;
      this.#ctx.log.info("Harp initialized", {
        model: cString(model),
        serial,
        index: dev,
        inputs: inputCount,
        bins: histLen,
        resolution_ps: resolution,
      });
    } catch (error) {
      await this.#closeDevice();
      throw error;
    }
  }

  // ---------------------------------------------------------------- acquire / cancel

  /** One measurement of `duration` seconds; emits one image of every input's histogram. */
  async acquire(duration: number, signal: AbortSignal): Promise<void> {
    const dev = this.#device;
    const config = this.#config;
    if (!this.#initialized || dev === undefined || config === undefined) {
      throw new Error(`${this.#lib.family.product} not initialized`);
    }
    if (this.#measuring !== undefined) throw new Error("a measurement is already running");
    const [minMs, maxMs] = this.#lib.family.limits.acquisitionMs;
    const ms = Math.round(duration * 1000);
    if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) {
      throw new Error(`duration ${duration} s is outside ${minMs / 1000}..${maxMs / 1000} s`);
    }
    const lib = this.#lib;
    const cancel = new AbortController();
    this.#measuring = cancel;
    const stop = AbortSignal.any([cancel.signal, signal, this.#stop.signal]);
    const series = this.#series++;
    const seriesId = `harp-${series}`;
    const emit = this.#ctx.emit;
    try {
      emit({ type: "start-data", seriesId, seriesNumber: series });
      // A measurement whose stop failed before is stopped first (StartMeas would refuse).
      if (this.#started) await this.#stopMeasurement(dev);
      await lib.call("ClearHistMem", dev);
      if (stop.aborted) throw stop.reason;
      const timestamp = this.#clock.now() / 1000;
      this.#started = true;
      await lib.call("StartMeas", dev, ms);
      const started = this.#clock.now();
      const limit = this.#settings.overdue > 0 ? ms + this.#settings.overdue * 1000 : Infinity;
      while (true) {
        await sleep(this.#clock, this.#settings.ctcPollMs, stop);
        await lib.call("CTCStatus", dev, this.#int);
        if (this.#int[0] !== 0) break;
        if (this.#clock.now() - started > limit) {
          throw new Error(
            `${this.#prefix}CTCStatus: measurement of ${ms} ms not finished after ${
              ((this.#clock.now() - started) / 1000).toFixed(1)
            } s`,
          );
        }
      }
      // The device's own timer ended the measurement: the exposure is the requested time.
      const exposure = ms / 1000;
      await this.#stopMeasurement(dev);
      await lib.call("GetFlags", dev, this.#int);
      const flags = this.#int[0];
      if ((flags & FATAL_FLAGS) !== 0) {
        throw new Error(`${this.#prefix}GetFlags reports ${bitNames(flags & FATAL_FLAGS, FLAGS)}`);
      }
      if ((flags & FLAGS.overflow) !== 0) {
        this.#ctx.log.warn("Histogram overflow: some bins reached their maximum", { series });
      }
      this.#runtime = { ...this.#runtime, flags: bitNames(flags, FLAGS) };
      const buffers: Uint32Array[] = [];
      const images: Record<string, Uint32Array> = {};
      for (let i = 0; i < config.channels.length; i++) {
        const buffer = this.#spare.pop() ?? new Uint32Array(this.#histLen);
        buffers.push(buffer);
        await lib.call("GetHistogram", dev, buffer, i, 0);
        images[config.channels[i].name] = buffer;
      }
      if (stop.aborted) throw stop.reason;
      let released = false;
      const release = () => {
        if (!released) this.#recycle(buffers);
        released = true;
      };
      emit({ type: "image-data", seriesId, index: 0, timestamp, exposure, images, release });
      emit({ type: "end-data", seriesId });
    } catch (error) {
      if (this.#started) {
        await this.#stopMeasurement(dev).catch((e) =>
          this.#ctx.log.warn("Stop after a failed measurement failed", { error: errorMessage(e) })
        );
      }
      if (stop.aborted && !(error instanceof HarpCallError)) {
        emit({ type: "cancel-data", seriesId });
        return;
      }
      throw error;
    } finally {
      this.#measuring = undefined;
    }
  }

  async #stopMeasurement(dev: number): Promise<void> {
    await this.#lib.call("StopMeas", dev);
    this.#started = false;
  }

  #recycle(buffers: Uint32Array[]): void {
    for (const buffer of buffers) {
      if (this.#spare.length >= MAX_SPARE_BUFFERS) return;
      if (buffer.length === this.#histLen) this.#spare.push(buffer);
    }
  }

  /** Cancel: the running acquisition stops the measurement and emits CancelData. */
  cancel(): Promise<void> {
    this.#measuring?.abort(new Error("cancelled"));
    return Promise.resolve();
  }

  /**
   * Clear: closes the device and forgets the initialization, so that the controller initializes
   * again (open, initialize, calibrate, settings), which fails while the device is still gone.
   */
  async clear(): Promise<void> {
    this.#pollError = undefined;
    if (this.#measuring !== undefined) return;
    await this.#closeDevice();
  }

  /**
   * ChannelAdjust: writes `offset` (ps), `cfd_level` and `cfd_zero_cross` (mV) of one input to
   * the device. HHLib has no getters for these, so the value reported back is the one the library
   * accepted (return code 0).
   */
  async adjustChannel(channel: string, values: Record<string, MetaValue>): Promise<void> {
    const index = this.#config?.channels.findIndex((c) => c.name === channel) ?? -1;
    const dev = this.#device;
    if (index < 0 || dev === undefined || !this.#initialized) {
      throw new Error(`unknown channel ${channel}`);
    }
    const limits = this.#lib.family.limits;
    const ranges: Record<(typeof META_KEYS)[number], [number, number]> = {
      offset: limits.channelOffset,
      cfd_level: limits.cfdLevel,
      cfd_zero_cross: limits.zeroCross,
    };
    const next: InputMeta = { ...this.#inputs[index] };
    for (const [key, value] of Object.entries(values)) {
      if (!(META_KEYS as readonly string[]).includes(key)) {
        throw new Error(`channel ${channel} has no metadata ${key}`);
      }
      const [min, max] = ranges[key as keyof typeof ranges];
      if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
        throw new Error(`${channel}:${key} must be an integer ${min}..${max}, not ${value}`);
      }
      next[key] = value;
    }
    const current = this.#inputs[index];
    if (next.cfd_level !== current.cfd_level || next.cfd_zero_cross !== current.cfd_zero_cross) {
      await this.#lib.call("SetInputCFD", dev, index, next.cfd_level, next.cfd_zero_cross);
      current.cfd_level = next.cfd_level;
      current.cfd_zero_cross = next.cfd_zero_cross;
    }
    if (next.offset !== current.offset) {
      await this.#lib.call("SetInputChannelOffset", dev, index, next.offset);
      current.offset = next.offset;
    }
    Object.assign(this.#config!.channels[index].meta, current);
    this.#ctx.emit({ type: "channel-state", channel, values: { ...current } });
  }
}
