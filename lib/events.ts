/**
 * Typed events exchanged between a device backend and the controller.
 *
 * Requests flow from the application/controller to the device (queries answer fast, commands may
 * take long); state events and data events flow from the device to the controller.
 *
 * @module
 */

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

/** Names of query requests (answered synchronously and fast). */
export type QueryName = "IsInitialized" | "GetConfig" | "GetRuntime";

/** A query request sent to the device. */
export interface QueryRequest {
  kind: "query";
  query: QueryName;
}

/** A command request sent to the device (runs as a task, may take long). */
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

/** Names of command requests. */
export type CommandName = CommandRequest["command"];

/** Any request from the controller to the device. */
export type Request = QueryRequest | CommandRequest;

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
  /** Pixels by channel name, each `height*width` elements. Ownership passes to the controller. */
  images: Record<string, PixelArray>;
  /**
   * Optional: lets a backend reuse its image buffers. The controller calls it (at most once) when
   * nothing reads `images` any more: after copying them into a multi-image series, or after the
   * data hooks of a single-image series settled. It may never be called (a dropped or cancelled
   * series): then the arrays are simply left to the garbage collector.
   */
  release?: () => void;
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

/** Number of bytes one element of a pixel type occupies. */
export const PIXEL_TYPE_BYTES: Readonly<Record<PixelType, number>> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
};
