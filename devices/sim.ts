/**
 * The `sim` backend: a simulated detector producing deterministic detector-like images.
 *
 * Without settings it invents its configuration like the original (1–4 channels with random
 * 4-letter names, 1–7 images, 128–256 px per side, channel metadata `enerj`), drawn from a PRNG
 * seeded with `SIM_SEED` (random when unset, and logged). Environment variables:
 *
 * | variable         | meaning                                                   |
 * | ---------------- | --------------------------------------------------------- |
 * | `SIM_CHANNELS`   | comma-separated channel names                             |
 * | `SIM_NUM_IMAGES` | images per acquisition (1–10000)                          |
 * | `SIM_IMAGE_SIZE` | `WxH` in pixels (1–16384 each)                            |
 * | `SIM_PIXEL_TYPE` | `uint8`, `uint16`, `uint32` (default) or `float32`        |
 * | `SIM_SEED`       | integer 0–4294967295: configuration and image content     |
 *
 * An acquisition of `duration` seconds waits `duration` (split evenly over the images) on the
 * clock, then emits each image; a cancel ends the wait and emits CancelData.
 *
 * @module
 */

import {
  type Device,
  type DeviceConfig,
  type DeviceContext,
  type MetaValue,
  NAME_PATTERN,
  type PixelArray,
  type PixelType,
} from "./contract.ts";
import { type Clock, sleep, systemClock, type TimerHandle } from "../core/clock.ts";
import { createRandom, SimImageGenerator } from "./sim_image.ts";

/** Largest series (images × channels × pixels) whose images are computed ahead. */
const AHEAD_MAX_ELEMENTS = 8 * 1024 * 1024;
/** Image buffers kept for reuse once the controller released them. */
const MAX_SPARE_IMAGES = 8;

/** Pixel types the sim offers. */
export const SIM_PIXEL_TYPES: readonly PixelType[] = ["uint8", "uint16", "uint32", "float32"];

/** The sim's resolved settings. */
export interface SimSettings {
  seed: number;
  channels: string[];
  numImages: number;
  width: number;
  height: number;
  pixelType: PixelType;
}

function parseInteger(env: string, text: string, min: number, max: number): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new Error(`${env}=${text}: not an integer`);
  const v = Number(text);
  if (v < min || v > max) throw new Error(`${env}=${text}: must be ${min}..${max}`);
  return v;
}

/**
 * Resolves the sim settings from the environment; throws an Error with a one-line message on
 * bad values. Random choices are drawn in a fixed order, so setting one variable does not change
 * the others.
 */
export function resolveSimSettings(
  env: Readonly<Record<string, string | undefined>>,
): SimSettings {
  const seedText = env.SIM_SEED?.trim();
  const seed = seedText === undefined || seedText === ""
    ? crypto.getRandomValues(new Uint32Array(1))[0]
    : parseInteger("SIM_SEED", seedText, 0, 0xffffffff);
  const rnd = createRandom(seed);
  const randomChannels = Array.from(
    { length: 4 },
    () =>
      Array.from({ length: 4 }, () => String.fromCharCode(97 + Math.floor(rnd() * 26))).join(""),
  );
  const channelCount = 1 + Math.floor(rnd() * 4);
  let channels = randomChannels.slice(0, channelCount);
  let numImages = 1 + Math.floor(rnd() * 7);
  let width = 128 + Math.floor(rnd() * 129);
  let height = 128 + Math.floor(rnd() * 129);
  let pixelType: PixelType = "uint32";

  const channelText = env.SIM_CHANNELS?.trim();
  if (channelText !== undefined && channelText !== "") {
    channels = channelText.split(",").map((c) => c.trim());
    for (const c of channels) {
      if (!NAME_PATTERN.test(c)) {
        throw new Error(`SIM_CHANNELS=${channelText}: bad channel name ${JSON.stringify(c)}`);
      }
    }
    if (new Set(channels).size !== channels.length) {
      throw new Error(`SIM_CHANNELS=${channelText}: duplicate channel names`);
    }
  }
  const imagesText = env.SIM_NUM_IMAGES?.trim();
  if (imagesText !== undefined && imagesText !== "") {
    numImages = parseInteger("SIM_NUM_IMAGES", imagesText, 1, 10000);
  }
  const sizeText = env.SIM_IMAGE_SIZE?.trim();
  if (sizeText !== undefined && sizeText !== "") {
    const m = /^(\d+)x(\d+)$/i.exec(sizeText);
    if (m === null) throw new Error(`SIM_IMAGE_SIZE=${sizeText}: expected WxH, e.g. 1028x512`);
    width = parseInteger("SIM_IMAGE_SIZE width", m[1], 1, 16384);
    height = parseInteger("SIM_IMAGE_SIZE height", m[2], 1, 16384);
  }
  const typeText = env.SIM_PIXEL_TYPE?.trim();
  if (typeText !== undefined && typeText !== "") {
    if (!(SIM_PIXEL_TYPES as readonly string[]).includes(typeText)) {
      throw new Error(`SIM_PIXEL_TYPE=${typeText}: expected one of ${SIM_PIXEL_TYPES.join(", ")}`);
    }
    pixelType = typeText as PixelType;
  }
  return { seed, channels, numImages, width, height, pixelType };
}

/** Creates the image generator matching `settings` (what the sim itself uses). */
export function simGenerator(settings: SimSettings): SimImageGenerator {
  return new SimImageGenerator({
    seed: settings.seed,
    width: settings.width,
    height: settings.height,
    pixelType: settings.pixelType,
    channels: settings.channels.length,
  });
}

/** The simulated detector backend (`--backend sim`). */
export class SimDevice implements Device {
  /** Resolved settings (from the environment at construction). */
  readonly settings: SimSettings;
  readonly #ctx: DeviceContext;
  readonly #clock: Clock;
  #config: DeviceConfig | undefined;
  #generator: SimImageGenerator | undefined;
  #series = 0;
  #cancel: AbortController | undefined;
  /** Images of the next series, computed ahead while idle (same content, lower latency). */
  #ahead: { series: number; duration: number; images: PixelArray[][] } | undefined;
  #aheadTimer: TimerHandle | undefined;
  /** Image buffers the controller released (see `ImageDataEvent.release`), for reuse. */
  #spare: PixelArray[] = [];

  /** Reads the settings from `ctx.env` (throws on bad values); `clock` drives exposure waits. */
  constructor(ctx: DeviceContext, clock: Clock = systemClock) {
    this.#ctx = ctx;
    this.#clock = clock;
    this.settings = resolveSimSettings(ctx.env);
  }

  isInitialized(): boolean {
    return this.#generator !== undefined;
  }

  getConfig(): DeviceConfig | undefined {
    return this.#config === undefined ? undefined : structuredClone(this.#config);
  }

  getRuntime(): Record<string, MetaValue | boolean> {
    return { series: this.#series, seed: this.settings.seed };
  }

  initialize(): Promise<void> {
    const s = this.settings;
    this.#generator = simGenerator(s);
    this.#config = {
      channels: s.channels.map((name) => ({ name, meta: { enerj: 3.14 } })),
      numImages: s.numImages,
      width: s.width,
      height: s.height,
      pixelType: s.pixelType,
      pixelSize: [75e-6, 75e-6],
      extra: { seed: s.seed },
    };
    this.#ctx.log.info("Sim initialized", {
      seed: s.seed,
      num_images: s.numImages,
      image_size: `${s.width}x${s.height}`,
      pixel_type: s.pixelType,
      channels: s.channels.join(","),
    });
    return Promise.resolve();
  }

  async acquire(duration: number, signal: AbortSignal): Promise<void> {
    const gen = this.#generator;
    const cfg = this.#config;
    if (gen === undefined || cfg === undefined) throw new Error("Sim not initialized");
    const series = this.#series++;
    const seriesId = `sim-${series}`;
    const cancel = new AbortController();
    this.#cancel = cancel;
    const stop = AbortSignal.any([cancel.signal, signal]);
    const emit = this.#ctx.emit;
    emit({ type: "start-data", seriesId, seriesNumber: series });
    const slice = duration / cfg.numImages;
    const ahead = this.#ahead?.series === series && this.#ahead.duration === duration
      ? this.#ahead.images
      : undefined;
    this.#ahead = undefined;
    try {
      for (let index = 0; index < cfg.numImages; index++) {
        const timestamp = this.#clock.now() / 1000;
        if (slice > 0) await sleep(this.#clock, slice * 1000, stop);
        if (stop.aborted) throw stop.reason;
        const images: Record<string, PixelArray> = {};
        cfg.channels.forEach((ch, c) => {
          images[ch.name] = ahead?.[index][c] ??
            gen.image(series, index, c, duration, this.#spare.pop());
        });
        let released = false;
        const release = () => {
          if (!released) this.#recycle(Object.values(images));
          released = true;
        };
        emit({ type: "image-data", seriesId, index, timestamp, exposure: slice, images, release });
      }
    } catch (err) {
      if (!stop.aborted) throw err;
      emit({ type: "cancel-data", seriesId });
      return;
    } finally {
      if (this.#cancel === cancel) this.#cancel = undefined;
    }
    emit({ type: "end-data", seriesId });
    this.#computeAhead(series + 1, duration);
  }

  /**
   * After a series, computes the next one's images (for the same duration) in a later event-loop
   * turn, so that a following acquisition only emits them. Skipped for large series.
   */
  #computeAhead(series: number, duration: number): void {
    const cfg = this.#config!;
    const elements = cfg.numImages * cfg.channels.length * cfg.width * cfg.height;
    if (elements > AHEAD_MAX_ELEMENTS) return;
    if (this.#aheadTimer !== undefined) this.#clock.clearTimeout(this.#aheadTimer);
    this.#aheadTimer = this.#clock.setTimeout(() => {
      this.#aheadTimer = undefined;
      const gen = this.#generator;
      if (gen === undefined || this.#series !== series || this.#ctx.signal.aborted) return;
      const images = Array.from(
        { length: cfg.numImages },
        (_, index) =>
          cfg.channels.map((_, c) => gen.image(series, index, c, duration, this.#spare.pop())),
      );
      this.#ahead = { series, duration, images };
    }, 0);
  }

  /** Keeps released image buffers (of the current geometry) for the next images. */
  #recycle(images: PixelArray[]): void {
    const cfg = this.#config;
    if (cfg === undefined) return;
    for (const image of images) {
      if (this.#spare.length >= MAX_SPARE_IMAGES) return;
      if (image.length === cfg.width * cfg.height) this.#spare.push(image);
    }
  }

  teardown(): Promise<void> {
    if (this.#aheadTimer !== undefined) this.#clock.clearTimeout(this.#aheadTimer);
    this.#aheadTimer = undefined;
    this.#ahead = undefined;
    this.#spare = [];
    return Promise.resolve();
  }

  cancel(): Promise<void> {
    this.#cancel?.abort(new Error("cancelled"));
    return Promise.resolve();
  }

  clear(): Promise<void> {
    return Promise.resolve();
  }

  adjustChannel(channel: string, values: Record<string, MetaValue>): Promise<void> {
    const ch = this.#config?.channels.find((c) => c.name === channel);
    if (ch === undefined) throw new Error(`Unknown channel ${channel}`);
    Object.assign(ch.meta, values);
    this.#ctx.emit({ type: "channel-state", channel, values: { ...ch.meta } });
    return Promise.resolve();
  }
}
