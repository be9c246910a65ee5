/**
 * The simulated EIGER2 DCU: parameter store, detector state machine, commands and the series
 * producer (start / image / end messages handed to a {@link SimStreamOutput}), plus the fault
 * switches the test control endpoint sets. Transport-free: HTTP lives in `server.ts`, the ZeroMQ
 * stream in `stream.ts`.
 *
 * @module
 */

import {
  detectorConfig,
  detectorStatus,
  modeOnlyConfig,
  ParamError,
  type SimParam,
  type SimValue,
  streamConfig,
  streamStatus,
  writeDetectorConfig,
} from "./params.ts";
import {
  dtypeOfBitDepth,
  makePattern,
  renderImage,
  type SimDtype,
  type SimPixels,
} from "./images.ts";
import { sleep, systemClock } from "../../core/clock.ts";
import { compressBslz4 } from "../eiger/bslz4.ts";

/** Time base of the Rational times in image messages (50 MHz, as on a real DCU). */
export const TIME_BASE = 50_000_000;

/** Simulated `start` message. */
export interface SimStart {
  type: "start";
  seriesId: number;
  uniqueId: string;
  armDate: Date;
  channels: string[];
  countTime: number;
  frameTime: number;
  width: number;
  height: number;
  dtype: SimDtype;
  numberOfImages: number;
  thresholdEnergy: Record<string, number>;
  incidentEnergy: number;
  saturationValue: number;
}

/** Simulated `image` message; `corrupt` asks the encoder to damage the compressed data. */
export interface SimImage {
  type: "image";
  seriesId: number;
  uniqueId: string;
  imageId: number;
  seriesDate: Date;
  /** Rationals `[numerator, TIME_BASE]`. */
  realTime: [number, number];
  startTime: [number, number];
  stopTime: [number, number];
  width: number;
  height: number;
  dtype: SimDtype;
  data: Record<string, SimPixels>;
  /** Pre-compressed bslz4 payloads of `data` by channel (the encoder compresses the others). */
  payloads?: Record<string, Uint8Array>;
  corrupt?: boolean;
}

/** Simulated `end` message. */
export interface SimEnd {
  type: "end";
  seriesId: number;
  uniqueId: string;
}

/** Any simulated stream message. */
export type SimMessage = SimStart | SimImage | SimEnd;

/** Where the simulator's stream messages go. */
export interface SimStreamOutput {
  /** Sends one message to the consumer (queued or dropped when there is none). */
  send(message: SimMessage): void;
  /** Drops the current consumer connections (fault injection: stream lost mid-series). */
  drop(): void;
}

/** Fault switches (set through the control endpoint). */
export interface SimFaults {
  /** HTTP errors by key (`detector/config/count_time`, `detector/command/arm`, ...). */
  http: Map<string, { status: number; remaining?: number }>;
  /** Reply delays in ms by key. */
  delays: Map<string, number>;
  /** Next series: drop the stream connections after this many images. */
  dropAfterImages?: number;
  /** Next series: never send this image id. */
  missingImage?: number;
  /** Next series: damage the compressed data of this image id. */
  corruptImage?: number;
  /** Next series: stream messages carry a series id different from the arm reply. */
  wrongSeries?: boolean;
  /** Next series: when stopped early, its unsent images and its end come late (see SimLeftovers). */
  leftovers?: SimLeftovers;
}

/**
 * Late messages of a series stopped early (disarm/cancel/abort before its last image), as a DCU
 * may still send them: up to `images` of the unsent images (default all), then the `end`, held
 * back and sent `at`: `before-start` = at the next arm, before that series' start; `after-start`
 * = right after the next series' start; `on-request` = when {@link SimDetector.sendLeftovers} is
 * called (a DCU that is idle again).
 */
export interface SimLeftovers {
  at: "before-start" | "after-start" | "on-request";
  images?: number;
}

/** Options of {@link SimDetector}. */
export interface SimDetectorOptions {
  width?: number;
  height?: number;
  /** bit_depth_image for internal triggers (default 16). */
  bitDepth?: number;
  /** State after start: `idle` (default) or `na` (needs `initialize`). */
  startState?: "idle" | "na";
  /** Duration of `initialize` in ms (default 50). */
  initializeDelayMs?: number;
  /** extg series end by themselves after the last image (default true). */
  autoEnd?: boolean;
  /** Gate frequency used for `real_time` in extg (Hz, default 104500). */
  gateFrequency?: number;
  /** Every series stopped early sends leftovers like this (default: only on a fault request). */
  leftovers?: SimLeftovers;
}

interface Series {
  id: number;
  streamId: number;
  uniqueId: string;
  date: Date;
  total: number;
  next: number;
  triggers: number;
  channels: string[];
  dtype: SimDtype;
  stop: AbortController;
  ended: boolean;
  faults: Pick<SimFaults, "dropAfterImages" | "missingImage" | "corruptImage" | "leftovers">;
  /** Pre-rendered, pre-compressed frames by `variant/channel/exposure`. */
  frames: Map<string, { pixels: SimPixels; payload: Uint8Array }>;
}

/**
 * Distinct frames a series cycles through: image i shows variant i mod this. Rendering and
 * compressing them at arm (not per image) lets the simulator stream at detector frame rates.
 */
export const FRAME_VARIANTS = 8;

/** Images sent at most per wake-up of the pacing loop of a triggered series. */
const MAX_BURST = 64;

const ULID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

function uniqueId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(26));
  let out = Date.now().toString(32).toUpperCase().padStart(10, "0").slice(-10);
  for (let i = 10; i < 26; i++) out += ULID_CHARS[bytes[i] & 31];
  return out;
}

function ticks(seconds: number): [number, number] {
  return [Math.round(seconds * TIME_BASE), TIME_BASE];
}

/** The simulated DCU. */
export class SimDetector {
  /** Parameters by subsystem and task (`detector/config`, `stream/status`, ...). */
  readonly params: Map<string, Map<string, SimParam>>;
  /** Fault switches. */
  readonly faults: SimFaults = { http: new Map(), delays: new Map() };
  /** Stream consumer; messages are discarded while unset. */
  output: SimStreamOutput | undefined;
  /** Whether extg series end by themselves. */
  autoEnd: boolean;
  readonly width: number;
  readonly height: number;
  readonly bitDepth: number;
  #initializeDelayMs: number;
  #gateFrequency: number;
  #alwaysLeftovers: SimLeftovers | undefined;
  #seriesCounter = 0;
  #series: Series | undefined;
  #pattern: Float32Array | undefined;
  #leftovers: { at: SimLeftovers["at"]; messages: SimMessage[] } | undefined;

  /** Creates a DCU in the start state. */
  constructor(options: SimDetectorOptions = {}) {
    this.width = options.width ?? 1028;
    this.height = options.height ?? 512;
    this.bitDepth = options.bitDepth ?? 16;
    if (![8, 16, 32].includes(this.bitDepth)) throw new Error("bit depth must be 8, 16 or 32");
    this.autoEnd = options.autoEnd ?? true;
    this.#initializeDelayMs = options.initializeDelayMs ?? 50;
    this.#gateFrequency = options.gateFrequency ?? 104500;
    this.#alwaysLeftovers = options.leftovers;
    this.params = new Map([
      [
        "detector/config",
        detectorConfig({ width: this.width, height: this.height, bitDepth: this.bitDepth }),
      ],
      ["detector/status", detectorStatus()],
      ["stream/config", streamConfig()],
      ["stream/status", streamStatus()],
      ["monitor/config", modeOnlyConfig()],
      ["filewriter/config", modeOnlyConfig()],
    ]);
    this.state = options.startState ?? "idle";
  }

  /** Detector state (`detector/status/state`). */
  get state(): string {
    return String(this.params.get("detector/status")!.get("state")!.value);
  }
  set state(value: string) {
    this.params.get("detector/status")!.get("state")!.value = value;
  }

  /** Last series id handed out by `arm`. */
  get seriesId(): number {
    return this.#seriesCounter;
  }

  /** Images sent in the current/last series. */
  get imagesSent(): number {
    return this.#series?.next ?? 0;
  }

  #cfg(key: string): SimValue | undefined {
    return this.params.get("detector/config")!.get(key)?.value;
  }

  #setStream(key: string, value: SimValue): void {
    this.params.get("stream/status")!.get(key)!.value = value;
  }

  /** Whether GETs on `subsystem/task/key` are answered in the current state. */
  available(subsystem: string, task: string, key: string): boolean {
    if (this.state !== "na" || subsystem !== "detector") return true;
    return task === "status" && key === "state";
  }

  /** Applies a config write (already type-checked) with couplings; returns changed keys. */
  write(subsystem: string, key: string, value: SimValue): string[] {
    if (subsystem === "detector") {
      if (this.state === "na") throw new ParamError(404, `Parameter ${key} does not exist`);
      if (this.state === "ready" || this.state === "acquire") {
        throw new ParamError(403, `configuration read-only while armed (${key})`);
      }
      return writeDetectorConfig(this.params.get("detector/config")!, key, value, this.bitDepth);
    }
    const param = this.params.get(`${subsystem}/config`)?.get(key);
    if (param === undefined) throw new ParamError(404, `unknown parameter ${subsystem}/${key}`);
    param.value = value;
    if (subsystem === "stream" && key === "mode") {
      this.#setStream("state", value === "enabled" ? "ready" : "disabled");
    }
    return [key];
  }

  /** Runs a detector (or stream) command; returns the JSON reply. */
  async command(subsystem: string, name: string, value: SimValue | undefined): Promise<unknown> {
    if (subsystem === "stream" && name === "initialize") {
      this.params.get("stream/config")!.get("mode")!.value = "disabled";
      this.#setStream("state", "disabled");
      this.#setStream("dropped", 0);
      return {};
    }
    if (subsystem !== "detector") return {};
    switch (name) {
      case "initialize":
        return await this.#initialize();
      case "arm":
        return this.#arm();
      case "trigger":
        return await this.#trigger(value);
      case "disarm":
      case "cancel":
      case "abort":
        this.#finish();
        return { "sequence id": this.#seriesCounter };
      case "status_update":
      case "check_connections":
      case "hv_reset":
        return {};
      default:
        throw new ParamError(404, `unknown command ${name}`);
    }
  }

  async #initialize(): Promise<unknown> {
    this.#finish();
    this.state = "initialize";
    await sleep(systemClock, this.#initializeDelayMs);
    this.#seriesCounter = 0;
    this.state = "idle";
    return {};
  }

  #arm(): unknown {
    const state = this.state;
    if (state === "na") throw new ParamError(400, "detector not initialized");
    if (state !== "idle") throw new ParamError(400, `cannot arm in state ${state}`);
    const mode = this.#cfg("trigger_mode");
    const nimages = this.#cfg("nimages") as number;
    const ntrigger = this.#cfg("ntrigger") as number;
    if (mode === "extg" && this.#cfg("extg_mode") === "double") {
      if (nimages % 2 !== 0) throw new ParamError(400, "extg double needs an even nimages");
      if (ntrigger !== 1) throw new ParamError(400, "extg double needs ntrigger 1");
    }
    const id = ++this.#seriesCounter;
    const channels = ["threshold_1"];
    if (this.#cfg("threshold/2/mode") === "enabled") channels.push("threshold_2");
    const f = this.faults;
    const series: Series = {
      id,
      streamId: f.wrongSeries ? id + 1000 : id,
      uniqueId: uniqueId(),
      date: new Date(),
      total: mode === "inte" || mode === "exte" ? ntrigger : nimages * ntrigger,
      next: 0,
      triggers: 0,
      channels,
      dtype: dtypeOfBitDepth(this.#cfg("bit_depth_image") as number),
      stop: new AbortController(),
      ended: false,
      faults: {
        dropAfterImages: f.dropAfterImages,
        missingImage: f.missingImage,
        corruptImage: f.corruptImage,
        leftovers: f.leftovers ?? this.#alwaysLeftovers,
      },
      frames: new Map(),
    };
    f.leftovers = undefined;
    f.wrongSeries = undefined;
    f.dropAfterImages = undefined;
    f.missingImage = undefined;
    f.corruptImage = undefined;
    this.#series = series;
    if (this.#streaming()) this.#prepareFrames(series, mode === "extg" ? undefined : "count_time");
    this.#setStream("dropped", 0);
    this.state = "ready";
    if (this.#leftovers?.at === "before-start") this.sendLeftovers();
    if (this.#streaming()) {
      this.#setStream("state", "acquire");
      const thresholdEnergy: Record<string, number> = {};
      for (const n of [1, 2]) {
        thresholdEnergy[`threshold_${n}`] = this.#cfg(`threshold/${n}/energy`) as number;
      }
      this.output?.send({
        type: "start",
        seriesId: series.streamId,
        uniqueId: series.uniqueId,
        armDate: series.date,
        channels,
        countTime: this.#cfg("count_time") as number,
        frameTime: this.#cfg("frame_time") as number,
        width: this.width,
        height: this.height,
        dtype: series.dtype,
        numberOfImages: series.total,
        thresholdEnergy,
        incidentEnergy: this.#cfg("photon_energy") as number,
        saturationValue: series.dtype === "uint8"
          ? 254
          : series.dtype === "uint16"
          ? 65534
          : 2 ** 32 - 2,
      });
    }
    if (this.#leftovers?.at === "after-start") this.sendLeftovers();
    return { "sequence id": id };
  }

  /** The exposure a gated series' images will have (nexpi gates at the gate frequency). */
  #gatedExposure(): number {
    return (this.#cfg("nexpi") as number) / this.#gateFrequency;
  }

  /** Renders and compresses the frames of the series' expected exposure ahead of its images. */
  #prepareFrames(series: Series, exposureKey: "count_time" | undefined): void {
    const exposure = exposureKey === undefined
      ? this.#gatedExposure()
      : this.#cfg(exposureKey) as number;
    for (let v = 0; v < Math.min(FRAME_VARIANTS, series.total); v++) {
      series.channels.forEach((_, c) => this.#frame(series, v, c, exposure));
    }
  }

  /** Frame `variant` of channel number `c` at `exposure`, rendered and compressed once. */
  #frame(
    series: Series,
    variant: number,
    c: number,
    exposure: number,
  ): { pixels: SimPixels; payload: Uint8Array } {
    const key = `${variant}/${c}/${exposure}`;
    let frame = series.frames.get(key);
    if (frame === undefined) {
      this.#pattern ??= makePattern(this.width, this.height);
      const gain = c === 0 ? 1 : 0.3;
      const pixels = renderImage(
        this.#pattern,
        series.dtype,
        Math.max(exposure, 1e-3),
        gain * 100,
        series.id * 7919 + variant * 31 + c,
      );
      const bytes = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
      frame = { pixels, payload: compressBslz4(bytes, pixels.BYTES_PER_ELEMENT) };
      series.frames.set(key, frame);
    }
    return frame;
  }

  #streaming(): boolean {
    const c = this.params.get("stream/config")!;
    return c.get("mode")!.value === "enabled" && c.get("format")!.value === "cbor";
  }

  async #trigger(value: SimValue | undefined): Promise<unknown> {
    const series = this.#series;
    const mode = this.#cfg("trigger_mode");
    if (mode !== "ints" && mode !== "inte") {
      throw new ParamError(400, `trigger not allowed in trigger_mode ${mode}`);
    }
    if (series === undefined || series.ended || this.state !== "ready") {
      throw new ParamError(400, `trigger in state ${this.state}: not armed`);
    }
    this.state = "acquire";
    const count = mode === "inte" ? 1 : this.#cfg("nimages") as number;
    const countTime = mode === "inte" && typeof value === "number"
      ? value
      : this.#cfg("count_time") as number;
    const frameTime = Math.max(this.#cfg("frame_time") as number, countTime);
    // Paced against absolute deadlines: timer granularity does not add up over a long series.
    // Timers wake at most about once per millisecond, so every wake-up sends all images due by
    // then (less than a millisecond early at most), up to a burst bound, and then yields once so
    // that REST requests are served.
    const began = performance.now();
    const due = (i: number) => began + (i + 1) * frameTime * 1000;
    for (let i = 0; i < count;) {
      const wait = due(i) - performance.now();
      const ok = await sleep(systemClock, wait >= 1 ? Math.floor(wait) : 0, series.stop.signal)
        .then(() => true, () => false);
      if (!ok) return {};
      if (wait >= 1) continue;
      for (let burst = 0; burst < MAX_BURST && i < count; burst++, i++) {
        if (burst > 0 && due(i) - performance.now() >= 1) break;
        this.#sendImage(series, countTime, series.next * frameTime);
      }
    }
    series.triggers++;
    const ntrigger = this.#cfg("ntrigger") as number;
    if (series.triggers >= ntrigger) this.#finish();
    else this.state = "ready";
    return {};
  }

  /**
   * Test hook: external gate trains. Each measurement yields one image (`single`) or two
   * (`double`); returns the number of images sent. Throws unless armed in `extg`.
   */
  gate(measurements = 1): number {
    const series = this.#series;
    if (this.#cfg("trigger_mode") !== "extg") throw new ParamError(400, "not in extg mode");
    if (
      series === undefined || series.ended || (this.state !== "ready" && this.state !== "acquire")
    ) {
      throw new ParamError(400, `gates in state ${this.state}: not armed`);
    }
    this.state = "acquire";
    const perMeasurement = this.#cfg("extg_mode") === "double" ? 2 : 1;
    const nexpi = this.#cfg("nexpi") as number;
    const exposure = nexpi / this.#gateFrequency;
    let sent = 0;
    for (let m = 0; m < measurements && series.next < series.total; m++) {
      for (let k = 0; k < perMeasurement && series.next < series.total; k++) {
        const t0 = (series.next - k) * exposure * 2 + k * exposure;
        this.#sendImage(series, exposure, t0);
        sent++;
      }
    }
    if (series.next >= series.total && this.autoEnd) this.#finish();
    return sent;
  }

  /**
   * Test hook: external trigger edges (`exts`: nimages images per trigger; `exte`: one image of
   * count_time per trigger). Returns the number of images sent. Throws unless armed in exts/exte.
   */
  externalTrigger(count = 1): number {
    const series = this.#series;
    const mode = this.#cfg("trigger_mode");
    if (mode !== "exts" && mode !== "exte") throw new ParamError(400, "not in exts/exte mode");
    if (
      series === undefined || series.ended || (this.state !== "ready" && this.state !== "acquire")
    ) {
      throw new ParamError(400, `trigger in state ${this.state}: not armed`);
    }
    this.state = "acquire";
    const perTrigger = mode === "exte" ? 1 : this.#cfg("nimages") as number;
    const countTime = this.#cfg("count_time") as number;
    const frameTime = Math.max(this.#cfg("frame_time") as number, countTime);
    let sent = 0;
    for (let t = 0; t < count && !series.ended; t++) {
      for (let k = 0; k < perTrigger && series.next < series.total; k++) {
        this.#sendImage(series, countTime, series.next * frameTime);
        sent++;
      }
      series.triggers++;
      if (series.triggers >= (this.#cfg("ntrigger") as number)) this.#finish();
      else this.state = "ready";
    }
    return sent;
  }

  #sendImage(series: Series, exposure: number, startSeconds: number): void {
    const imageId = series.next++;
    const f = series.faults;
    if (f.dropAfterImages !== undefined && imageId === f.dropAfterImages) {
      f.dropAfterImages = undefined;
      this.output?.drop();
    }
    if (f.missingImage === imageId || !this.#streaming()) return;
    const data: Record<string, SimPixels> = {};
    const payloads: Record<string, Uint8Array> = {};
    series.channels.forEach((channel, c) => {
      const frame = this.#frame(series, imageId % FRAME_VARIANTS, c, exposure);
      data[channel] = frame.pixels;
      payloads[channel] = frame.payload;
    });
    this.output?.send({
      type: "image",
      seriesId: series.streamId,
      uniqueId: series.uniqueId,
      imageId,
      seriesDate: series.date,
      realTime: ticks(exposure),
      startTime: ticks(startSeconds),
      stopTime: ticks(startSeconds + exposure),
      width: this.width,
      height: this.height,
      dtype: series.dtype,
      data,
      payloads,
      corrupt: f.corruptImage === imageId,
    });
  }

  /**
   * Sends the held-back messages of a series stopped early (leftovers fault) now; returns how
   * many were sent.
   */
  sendLeftovers(): number {
    const held = this.#leftovers;
    this.#leftovers = undefined;
    for (const message of held?.messages ?? []) this.output?.send(message);
    return held?.messages.length ?? 0;
  }

  /** Leftovers fault: renders the unsent images and the end of `series` and holds them back. */
  #holdLeftovers(series: Series, fault: SimLeftovers): void {
    const messages: SimMessage[] = [];
    const output = this.output;
    this.output = { send: (m) => messages.push(m), drop() {} };
    try {
      const countTime = this.#cfg("count_time") as number;
      const last = Math.min(series.total, series.next + (fault.images ?? series.total));
      while (series.next < last) this.#sendImage(series, countTime, series.next * countTime);
    } finally {
      this.output = output;
    }
    messages.push({ type: "end", seriesId: series.streamId, uniqueId: series.uniqueId });
    this.#leftovers = { at: fault.at, messages };
  }

  /** Ends the open series (disarm/abort/cancel/auto-disarm): stream `end`, state idle. */
  #finish(): void {
    const series = this.#series;
    if (series !== undefined && !series.ended) {
      series.ended = true;
      series.stop.abort();
      const leftovers = series.faults.leftovers;
      if (leftovers !== undefined && series.next < series.total && this.#streaming()) {
        this.#holdLeftovers(series, leftovers);
        this.#setStream("state", "ready");
      } else if (this.#streaming()) {
        this.output?.send({ type: "end", seriesId: series.streamId, uniqueId: series.uniqueId });
        this.#setStream("state", "ready");
      }
    }
    if (this.state === "ready" || this.state === "acquire") this.state = "idle";
  }

  /** Stops timers of a running series (shutdown). */
  close(): void {
    this.#series?.stop.abort();
  }
}
