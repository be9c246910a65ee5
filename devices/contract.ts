/**
 * The device contract: everything a backend and an application agree on, in one module.
 *
 * - {@link Device}: what a backend implements. A backend is a class constructed with a
 *   {@link DeviceContext}. Queries are synchronous methods that answer at once from what the
 *   backend already knows. Commands are async methods that the controller starts as tasks running
 *   concurrently with its loop; they report progress, data and errors by emitting
 *   {@link DeviceEvent}s through `ctx.emit`. A command that throws (or rejects) is reported by the
 *   controller as an error event carrying the thrown message.
 * - The events: state events (answers and reports about the device) and data events (the image
 *   stream: StartData, exactly `numImages` ImageData, then EndData or CancelData).
 * - {@link CommandRequest}: the commands an application asks the controller to run.
 * - {@link DeviceConfig} and its checks ({@link configProblems}, {@link configChange}).
 *
 * ## Who owns the pixels
 *
 * Pixels are lent along the image path, never copied by it: the arrays of an ImageData event stay
 * the backend's, and every later holder (the controller, data hooks, the PVs) only reads them,
 * taking a reference with `Frame.retain()` to keep reading after its hook returned. The backend
 * may write to an array again only after the event's `release` was called, which the controller
 * does once the last holder gave its reference back (a multi-image series is copied into the
 * controller's series stack, so its images are released right after that copy).
 *
 * A multi-image series may be written in place instead: the controller lends a backend that
 * implements {@link Device.lendSeriesStacks} the series stacks (shared memory) before the acquire
 * runs, and an ImageData event whose image of a channel is a view of exactly its slot in that
 * channel's stack is not copied again.
 *
 * Backends import this module (and `core/` for logging, clocks, bytes); nothing else of the
 * program.
 *
 * @module
 */

import type { Logger } from "../core/log.ts";

/** Pixel element types a backend may deliver. */
export type PixelType =
  | "uint8"
  | "int8"
  | "uint16"
  | "int16"
  | "uint32"
  | "int32"
  | "float32"
  | "float64";

/** A typed array holding image pixels, row-major `[image][y][x]` or one image `[y][x]`. */
export type PixelArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array;

/** A channel metadata value (e.g. a threshold energy). */
export type MetaValue = number | string;

/** One image channel of a detector (e.g. `threshold_1`), with its writable metadata. */
export interface ChannelConfig {
  /** Channel name as used in PV names (`{prefix}{name}:image`). */
  name: string;
  /** Initial metadata values by key (each becomes a writable `{prefix}{name}:{key}` PV). */
  meta: Record<string, MetaValue>;
}

/** Quasi-static device configuration, read once after initialization. */
export interface DeviceConfig {
  /** Image channels; every ImageData event carries one image per channel. */
  channels: ChannelConfig[];
  /** Images per acquisition (series) and channel. */
  numImages: number;
  /** Image width in pixels (x, fastest index). */
  width: number;
  /** Image height in pixels (y). */
  height: number;
  /** Pixel element type of delivered images. */
  pixelType: PixelType;
  /** Physical pixel size in metres `[x, y]`, informational. */
  pixelSize?: [number, number];
  /** Backend-specific extra facts (serial number, firmware, ...), informational. */
  extra?: Record<string, string | number | boolean>;
}

/** A command an application asks the controller to run on the device (runs as a task). */
export type CommandRequest =
  | { kind: "command"; command: "Initialize" }
  | { kind: "command"; command: "Acquire"; duration: number }
  | { kind: "command"; command: "Cancel" }
  | { kind: "command"; command: "Clear" }
  | {
    kind: "command";
    command: "ChannelAdjust";
    channel: string;
    values: Record<string, MetaValue>;
  };

/** Device reports whether it is initialized (answer to IsInitialized). */
export interface InitStateEvent {
  type: "init-state";
  initialized: boolean;
}

/** Device reports its configuration (answer to GetConfig). */
export interface ConfigStateEvent {
  type: "config";
  config: DeviceConfig;
}

/** Device reports runtime values such as temperature or detector state (answer to GetRuntime). */
export interface RuntimeStateEvent {
  type: "runtime";
  values: Record<string, MetaValue | boolean>;
}

/** Device reports (new) metadata values of a channel, e.g. after ChannelAdjust. */
export interface ChannelStateEvent {
  type: "channel-state";
  channel: string;
  values: Record<string, MetaValue>;
}

/** Device reports an error. `fatal` errors are unrecoverable and move the controller to FAIL. */
export interface ErrorEvent {
  type: "error";
  message: string;
  fatal?: boolean;
}

/** Start of an image series. */
export interface StartDataEvent {
  type: "start-data";
  /** Series id; every following data event of the series carries the same id. */
  seriesId: string;
  /** Device's own numeric series number (e.g. EIGER `series_id`), or -1 when it has none. */
  seriesNumber: number;
}

/** One image per channel, `index` counting from 0 within the series. */
export interface ImageDataEvent {
  type: "image-data";
  seriesId: string;
  /** Image index within the series, 0 .. numImages-1. */
  index: number;
  /** Image start time, Unix seconds. */
  timestamp: number;
  /** Real exposure time in seconds. */
  exposure: number;
  /**
   * Pixels by channel name, each `height*width` elements: lent, read in place by everyone after
   * (see "Who owns the pixels" above); the backend does not write to them until `release`.
   */
  images: Record<string, PixelArray>;
  /**
   * Optional per-image facts from the device, e.g. its own timestamp or frame counter: kept with
   * the series (`Frame.imageMeta`) and published with the image (NTNDArray attributes).
   */
  meta?: Readonly<Record<string, MetaValue>>;
  /**
   * Optional: lets a backend reuse its image buffers. The controller calls it (at most once) when
   * nobody reads `images` any more: right after copying them into a multi-image series, or when
   * the last reader of a single-image frame gave it back (the data hooks settled and, e.g., the
   * PVs replaced it with the next frame). It may never be called (a dropped or cancelled series,
   * or a frame still served at shutdown): then the arrays are left to the garbage collector.
   */
  release?: () => void;
}

/**
 * The one rule for image order within a series: images arrive in index order `0, 1, …,
 * numImages-1`, each exactly once. Returns what is wrong with image `index` when `received`
 * images came before it, or undefined when it is the expected one.
 */
export function imageOrderProblem(
  index: number,
  received: number,
  numImages: number,
): string | undefined {
  if (received >= numImages) return `Too many images: more than ${numImages}`;
  if (index !== received) return `Image index ${index} out of order (expected ${received})`;
  return undefined;
}

/** Regular end of an image series. */
export interface EndDataEvent {
  type: "end-data";
  seriesId: string;
}

/** The series was cancelled; no data events of this series may follow. */
export interface CancelDataEvent {
  type: "cancel-data";
  seriesId: string;
}

/** State events (answers and reports about the device). */
export type StateEvent =
  | InitStateEvent
  | ConfigStateEvent
  | RuntimeStateEvent
  | ChannelStateEvent
  | ErrorEvent;

/** Data events that structure the image stream. */
export type DataEvent = StartDataEvent | ImageDataEvent | EndDataEvent | CancelDataEvent;

/** Any event a device emits. */
export type DeviceEvent = StateEvent | DataEvent;

/** Everything a backend gets from the program that runs it. */
export interface DeviceContext {
  /** Sends an event to the controller's queue. Never blocks. */
  emit(event: DeviceEvent): void;
  /** Logger for this backend (`key=value` structured lines). */
  log: Logger;
  /** Environment variables (the process environment, or a test's own map). */
  env: Readonly<Record<string, string | undefined>>;
  /** Aborted when the program shuts down. */
  signal: AbortSignal;
}

/** The interface every backend implements. */
export interface Device {
  /** Called once before anything else, for async setup (connections, ...). */
  startup?(): Promise<void>;
  /** Called once at the end, for cleanup. Must not throw. */
  teardown?(): Promise<void>;

  /** Query IsInitialized: is the device ready to acquire? */
  isInitialized(): boolean;
  /** Query GetConfig: the configuration, or undefined while unknown (before initialization). */
  getConfig(): DeviceConfig | undefined;
  /** Query GetRuntime: current runtime values (temperature, detector state, ...). */
  getRuntime?(): RuntimeStateEvent["values"];

  /**
   * Seconds this backend itself waits beyond the duration before it reports missing images
   * (0 = it never gives up). The controller then allows this plus a margin, so the backend's more
   * specific error comes first, unless the operator set an explicit overdue.
   */
  overdueSeconds?(): number;

  /** Command Initialize: bring the device into a state where it can acquire. */
  initialize(signal: AbortSignal): Promise<void>;
  /**
   * Command Acquire: run one series of `duration` seconds. Emits StartData, then exactly
   * `numImages` ImageData, then EndData (or CancelData after {@link Device.cancel}).
   */
  acquire(duration: number, signal: AbortSignal): Promise<void>;
  /** Command Cancel: stop the running acquisition; the acquire task then emits CancelData. */
  cancel(): Promise<void>;
  /** Command Clear: forget device-side errors. Called when the operator clears ERROR. */
  clear?(): Promise<void>;
  /** Command ChannelAdjust: write channel metadata; report read-back with a ChannelStateEvent. */
  adjustChannel?(channel: string, values: Record<string, MetaValue>): Promise<void>;
  /**
   * Optional: the controller lends the stacks of the series about to be acquired (before
   * {@link Device.acquire}), and takes them back with `undefined` (the series ended, was
   * cancelled or failed). While lent, the backend may write image `i` of channel `c` into
   * `stacks.images[c]` at elements `[i·w·h, (i+1)·w·h)` — each slot at most once, and only
   * before it emits that image — and emit ImageData with a view of exactly that slot, which the
   * controller then does not copy. Writes still running when the stacks are taken back must end
   * before the backend emits any later image. Must not throw.
   */
  lendSeriesStacks?(stacks: LentSeriesStacks | undefined): void;
}

/** Series stacks lent to a backend ({@link Device.lendSeriesStacks}). */
export interface LentSeriesStacks {
  /** The configuration of the series (channels, geometry, pixel type, number of images). */
  config: DeviceConfig;
  /** Per channel: `numImages·height·width` pixels of `config.pixelType` over a SharedArrayBuffer. */
  images: Readonly<Record<string, PixelArray>>;
}

/** A backend class: `new Backend(ctx)`. */
export type DeviceClass = new (ctx: DeviceContext) => Device;

/** Checks at run time that `value` is an object with the methods of {@link Device}. */
export function isDevice(value: unknown): value is Device {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return ["isInitialized", "getConfig", "initialize", "acquire", "cancel"].every((m) =>
    typeof v[m] === "function"
  );
}

/** Characters allowed in channel names and metadata keys (they become parts of PV names). */
export const NAME_PATTERN: RegExp = /^[A-Za-z0-9_.\-]+$/;

/** A typed-array constructor of a pixel type: by length, over a (shared) buffer, its element size. */
export interface PixelArrayConstructor {
  /** A zero-filled array of `length` pixels. */
  new (length: number): PixelArray;
  /** A view of `buffer` (e.g. shared memory). */
  new (buffer: ArrayBufferLike): PixelArray;
  /** Bytes per pixel. */
  readonly BYTES_PER_ELEMENT: number;
}

/** Typed-array constructor of each pixel type. */
export const PIXEL_ARRAY_TYPES: Readonly<Record<PixelType, PixelArrayConstructor>> = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/** Returns the problems of a configuration (empty when it is usable). */
export function configProblems(config: DeviceConfig): string[] {
  const problems: string[] = [];
  if (!Array.isArray(config.channels) || config.channels.length === 0) {
    problems.push("no channels");
  } else {
    const seen = new Set<string>();
    for (const ch of config.channels) {
      if (typeof ch.name !== "string" || !NAME_PATTERN.test(ch.name)) {
        problems.push(`bad channel name ${JSON.stringify(ch.name)}`);
      } else if (seen.has(ch.name)) problems.push(`duplicate channel ${ch.name}`);
      seen.add(ch.name);
      for (const [key, value] of Object.entries(ch.meta ?? {})) {
        if (!NAME_PATTERN.test(key)) problems.push(`bad metadata key ${JSON.stringify(key)}`);
        if (typeof value !== "number" && typeof value !== "string") {
          problems.push(`metadata ${ch.name}:${key} is neither number nor string`);
        }
      }
    }
  }
  for (const key of ["numImages", "width", "height"] as const) {
    const v = config[key];
    if (!Number.isSafeInteger(v) || v < 1) problems.push(`${key} must be a positive integer`);
  }
  if (!(config.pixelType in PIXEL_ARRAY_TYPES)) {
    problems.push(`unknown pixel type ${JSON.stringify(config.pixelType)}`);
  }
  return problems;
}

/**
 * Describes how `now` differs from `initial` in the parts that must not change while running
 * (channels and their metadata keys, image count, geometry, pixel type); undefined when equal.
 */
export function configChange(initial: DeviceConfig, now: DeviceConfig): string | undefined {
  const changes: string[] = [];
  for (const key of ["numImages", "width", "height", "pixelType"] as const) {
    if (initial[key] !== now[key]) changes.push(`${key} ${initial[key]} -> ${now[key]}`);
  }
  const names = (c: DeviceConfig) =>
    c.channels.map((ch) => `${ch.name}(${Object.keys(ch.meta ?? {}).join(",")})`).join(" ");
  if (names(initial) !== names(now)) changes.push(`channels ${names(initial)} -> ${names(now)}`);
  return changes.length === 0 ? undefined : changes.join("; ");
}
