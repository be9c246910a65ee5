/**
 * DECTRIS stream v2 messages (`start`, `image`, `end`): typed decoding for the EIGER2 backend and
 * encoding for the simulator.
 *
 * Wire format: CBOR, self-described tag 55799 first, a map whose first key is `type`. Images are
 * `40([dims, <typed-array tag>(bytes | 56500([alg, modifier, bytes]))])` with `alg` `bslz4` or
 * `lz4` (see `docs/eiger-stream.md` and `shared/specs/eiger-stream2.md`). Decoded pixel data is an
 * aligned typed array in host order, owned by the caller: a buffer of its own for compressed data,
 * a view into the message bytes for an aligned uncompressed array (no copy; big-endian arrays are
 * byte-swapped in place there). Everything malformed throws
 * {@link StreamError}; sizes are validated before allocating.
 *
 * @module
 */

import {
  type CborEncodable,
  CborFloat64,
  CborTag,
  type CborValue,
  decodeCbor,
  encodeCbor,
  encodeCborParts,
} from "./cbor.ts";
import {
  compressBslz4,
  CompressionError,
  compressLz4Hdf5,
  decompressBslz4,
  decompressLz4Hdf5,
} from "./bslz4.ts";
import { takeDecodeBuffer } from "./decode_buffers.ts";

/** Thrown when a stream message is malformed (bad CBOR, unknown type, wrong sizes, corrupt data). */
export class StreamError extends Error {
  /** Creates an error; `cause` keeps the underlying CBOR/compression error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StreamError";
  }
}

/** Element types of RFC 8746 typed arrays this module decodes (host byte order after decoding). */
export type ElementType =
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "float32"
  | "float64";

/** A decoded typed array. */
export type ElementArray =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

/** How an array travelled: DECTRIS tag 56500 `bslz4` / `lz4`, or a plain byte string. */
export type Compression = "bslz4" | "lz4" | "none";

/** A decoded (multi-dimensional) array: `dims` row-major, `[rows, cols]` for images. */
export interface StreamArray {
  /** Dimensions, slowest first (`[image_size_y, image_size_x]` for images). */
  dims: number[];
  /** Element type from the typed-array tag. */
  dtype: ElementType;
  /** Elements, `dims` product long, host byte order. */
  data: ElementArray;
  /** Compression used on the wire. */
  compression: Compression;
}

/** A CBOR Rational `[numerator, denominator]` (seconds = num / den). */
export type Rational = [number, number];

/** Typed fields of a `start` message (all optional except the series identifiers). */
export interface StartFields {
  seriesId: number;
  seriesUniqueId: string;
  armDate?: string;
  beamCenterX?: number;
  beamCenterY?: number;
  channels?: string[];
  countTime?: number;
  frameTime?: number;
  countrateCorrectionEnabled?: boolean;
  countrateCorrectionLookupTable?: StreamArray;
  detectorDescription?: string;
  detectorSerialNumber?: string;
  detectorTranslation?: number[];
  flatfield?: Map<string, StreamArray>;
  flatfieldEnabled?: boolean;
  goniometer?: CborValue;
  imageDtype?: string;
  imageSizeX?: number;
  imageSizeY?: number;
  incidentEnergy?: number;
  incidentWavelength?: number;
  numberOfImages?: number;
  pixelMask?: Map<string, StreamArray>;
  pixelMaskEnabled?: boolean;
  pixelSizeX?: number;
  pixelSizeY?: number;
  saturationValue?: number;
  sensorMaterial?: string;
  sensorThickness?: number;
  thresholdEnergy?: Record<string, number>;
  userData?: CborValue;
  virtualPixelInterpolationEnabled?: boolean;
}

/** A decoded `start` message. `channels` defaults to `[]`; `fields` holds every raw field. */
export interface StartMessage extends StartFields {
  type: "start";
  channels: string[];
  /** All fields as decoded CBOR (including unknown ones), by wire name. */
  fields: Map<string, CborValue>;
}

/** A decoded `image` message. */
export interface ImageMessage {
  type: "image";
  seriesId: number;
  seriesUniqueId: string;
  /** 0-based image number within the series. */
  imageId: number;
  /** Real exposure time. */
  realTime?: Rational;
  /** Series start (RFC 3339 text). */
  seriesDate?: string;
  /** Image start, seconds relative to `seriesDate`. */
  startTime?: Rational;
  /** Image stop, seconds relative to `seriesDate`. */
  stopTime?: Rational;
  /** Channel name → image, in wire order. */
  data: Map<string, StreamArray>;
  userData?: CborValue;
  /** All fields as decoded CBOR (`data` with raw tags), by wire name. */
  fields: Map<string, CborValue>;
}

/** A decoded `end` message. */
export interface EndMessage {
  type: "end";
  seriesId: number;
  seriesUniqueId: string;
  fields: Map<string, CborValue>;
}

/** Any decoded stream v2 message. */
export type StreamMessage = StartMessage | ImageMessage | EndMessage;

/** Options for {@link decodeStreamMessage}. */
export interface DecodeOptions {
  /** Largest decoded array in bytes (default 1 GiB); larger claims are rejected unallocated. */
  maxArrayBytes?: number;
  /** Skip decoding `flatfield`, `pixel_mask` and the lookup table of `start` (default false). */
  skipStartArrays?: boolean;
  /**
   * Where the data of an image channel goes: asked once per channel array of an `image` message
   * (before decoding it), returns `byteLength` bytes (aligned for `dtype`) that the decoded
   * array is written to, or undefined for a buffer of its own (or a view into `bytes` when
   * uncompressed and aligned).
   */
  output?: (request: ImageOutputRequest) => Uint8Array | undefined;
}

/** What {@link DecodeOptions.output} is asked for. */
export interface ImageOutputRequest {
  /** `image_id` of the message. */
  imageId: number;
  /** Channel name. */
  channel: string;
  /** Element type and dimensions of the array. */
  dtype: ElementType;
  dims: readonly number[];
  /** Decoded size of the array. */
  byteLength: number;
}

const SELF_DESCRIBED = 55799;
const TAG_DATE = 0;
const TAG_MULTIDIM = 40;
const TAG_COMPRESSED = 56500;

interface TagInfo {
  dtype: ElementType;
  size: number;
  bigEndian: boolean;
}

const TYPED_TAGS: ReadonlyMap<number, TagInfo> = new Map<number, TagInfo>([
  [64, { dtype: "uint8", size: 1, bigEndian: false }],
  [65, { dtype: "uint16", size: 2, bigEndian: true }],
  [66, { dtype: "uint32", size: 4, bigEndian: true }],
  [67, { dtype: "uint64", size: 8, bigEndian: true }],
  [68, { dtype: "uint8", size: 1, bigEndian: false }],
  [69, { dtype: "uint16", size: 2, bigEndian: false }],
  [70, { dtype: "uint32", size: 4, bigEndian: false }],
  [71, { dtype: "uint64", size: 8, bigEndian: false }],
  [72, { dtype: "int8", size: 1, bigEndian: false }],
  [73, { dtype: "int16", size: 2, bigEndian: true }],
  [74, { dtype: "int32", size: 4, bigEndian: true }],
  [75, { dtype: "int64", size: 8, bigEndian: true }],
  [77, { dtype: "int16", size: 2, bigEndian: false }],
  [78, { dtype: "int32", size: 4, bigEndian: false }],
  [79, { dtype: "int64", size: 8, bigEndian: false }],
  [81, { dtype: "float32", size: 4, bigEndian: true }],
  [82, { dtype: "float64", size: 8, bigEndian: true }],
  [85, { dtype: "float32", size: 4, bigEndian: false }],
  [86, { dtype: "float64", size: 8, bigEndian: false }],
]);

/** Little-endian typed-array tag for each element type (what the encoder emits). */
export const TYPED_ARRAY_TAG: Readonly<Record<ElementType, number>> = {
  uint8: 64,
  uint16: 69,
  uint32: 70,
  uint64: 71,
  int8: 72,
  int16: 77,
  int32: 78,
  int64: 79,
  float32: 85,
  float64: 86,
};

const ELEMENT_SIZE: Readonly<Record<ElementType, number>> = {
  uint8: 1,
  uint16: 2,
  uint32: 4,
  uint64: 8,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float32: 4,
  float64: 8,
};

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Decodes one stream v2 message (one ZeroMQ frame).
 *
 * Accepts the message with or without the 55799 self-described prefix. Throws {@link StreamError}
 * for malformed CBOR, a missing/unknown `type`, missing or mistyped required fields, array size
 * mismatches and corrupt compressed data.
 */
export function decodeStreamMessage(bytes: Uint8Array, opts: DecodeOptions = {}): StreamMessage {
  let root: CborValue;
  try {
    root = decodeCbor(bytes);
  } catch (e) {
    throw new StreamError(`bad CBOR: ${(e as Error).message}`, { cause: e });
  }
  if (root instanceof CborTag && root.tag === SELF_DESCRIBED) root = root.value;
  if (!(root instanceof Map)) throw new StreamError("message is not a CBOR map");
  const fields = new Map<string, CborValue>();
  for (const [k, v] of root) {
    if (typeof k !== "string") throw new StreamError("message map has a non-text key");
    fields.set(k, v);
  }
  const maxBytes = opts.maxArrayBytes ?? 1 << 30;
  const type = fields.get("type");
  switch (type) {
    case "start":
      return decodeStart(fields, maxBytes, opts.skipStartArrays ?? false);
    case "image":
      return decodeImage(fields, maxBytes, opts.output);
    case "end":
      return {
        type: "end",
        seriesId: getInt(fields, "series_id", true)!,
        seriesUniqueId: getText(fields, "series_unique_id", true)!,
        fields,
      };
    default:
      throw new StreamError(
        typeof type === "string" ? `unknown message type "${type}"` : "missing message type",
      );
  }
}

function getInt(f: Map<string, CborValue>, key: string, required = false): number | undefined {
  const v = f.get(key);
  if (v === undefined && !f.has(key) && !required) return undefined;
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (!f.has(key)) throw new StreamError(`missing field ${key}`);
  throw new StreamError(`field ${key} is not an integer`);
}

function getFloat(f: Map<string, CborValue>, key: string): number | undefined {
  if (!f.has(key)) return undefined;
  const v = f.get(key);
  if (typeof v === "number") return v;
  throw new StreamError(`field ${key} is not a number`);
}

function getText(f: Map<string, CborValue>, key: string, required = false): string | undefined {
  if (!f.has(key)) {
    if (required) throw new StreamError(`missing field ${key}`);
    return undefined;
  }
  const v = f.get(key);
  if (typeof v === "string") return v;
  throw new StreamError(`field ${key} is not a text string`);
}

function getBool(f: Map<string, CborValue>, key: string): boolean | undefined {
  if (!f.has(key)) return undefined;
  const v = f.get(key);
  if (typeof v === "boolean") return v;
  throw new StreamError(`field ${key} is not a boolean`);
}

function getDate(f: Map<string, CborValue>, key: string): string | undefined {
  if (!f.has(key)) return undefined;
  let v = f.get(key);
  if (v instanceof CborTag && v.tag === TAG_DATE) v = v.value;
  if (typeof v === "string") return v;
  throw new StreamError(`field ${key} is not a date/time string`);
}

function getRational(f: Map<string, CborValue>, key: string): Rational | undefined {
  if (!f.has(key)) return undefined;
  const v = f.get(key);
  if (
    Array.isArray(v) && v.length === 2 && typeof v[0] === "number" && typeof v[1] === "number" &&
    Number.isInteger(v[0]) && Number.isInteger(v[1])
  ) {
    return [v[0], v[1]];
  }
  throw new StreamError(`field ${key} is not a rational [num, den]`);
}

function getFloatArray(f: Map<string, CborValue>, key: string): number[] | undefined {
  if (!f.has(key)) return undefined;
  const v = f.get(key);
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v as number[];
  throw new StreamError(`field ${key} is not an array of numbers`);
}

function getTextArray(f: Map<string, CborValue>, key: string): string[] | undefined {
  if (!f.has(key)) return undefined;
  const v = f.get(key);
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  throw new StreamError(`field ${key} is not an array of text strings`);
}

function getFloatMap(f: Map<string, CborValue>, key: string): Record<string, number> | undefined {
  if (!f.has(key)) return undefined;
  const v = f.get(key);
  if (!(v instanceof Map)) throw new StreamError(`field ${key} is not a map`);
  const entries: [string, number][] = [];
  for (const [k, x] of v) {
    if (typeof k !== "string" || typeof x !== "number") {
      throw new StreamError(`field ${key} is not a map of text to number`);
    }
    entries.push([k, x]);
  }
  return Object.fromEntries(entries);
}

function getArrayMap(
  f: Map<string, CborValue>,
  key: string,
  maxBytes: number,
): Map<string, StreamArray> | undefined {
  if (!f.has(key)) return undefined;
  const v = f.get(key);
  if (!(v instanceof Map)) throw new StreamError(`field ${key} is not a map`);
  const out = new Map<string, StreamArray>();
  for (const [k, x] of v) {
    if (typeof k !== "string") throw new StreamError(`field ${key} has a non-text key`);
    out.set(k, decodeMultiDimArray(x, `${key}.${k}`, maxBytes));
  }
  return out;
}

function decodeStart(f: Map<string, CborValue>, maxBytes: number, skip: boolean): StartMessage {
  const table = f.get("countrate_correction_lookup_table");
  return {
    type: "start",
    seriesId: getInt(f, "series_id", true)!,
    seriesUniqueId: getText(f, "series_unique_id", true)!,
    armDate: getDate(f, "arm_date"),
    beamCenterX: getFloat(f, "beam_center_x"),
    beamCenterY: getFloat(f, "beam_center_y"),
    channels: getTextArray(f, "channels") ?? [],
    countTime: getFloat(f, "count_time"),
    frameTime: getFloat(f, "frame_time"),
    countrateCorrectionEnabled: getBool(f, "countrate_correction_enabled"),
    countrateCorrectionLookupTable: table === undefined || skip
      ? undefined
      : decodeTypedArray(table, "countrate_correction_lookup_table", undefined, maxBytes),
    detectorDescription: getText(f, "detector_description"),
    detectorSerialNumber: getText(f, "detector_serial_number"),
    detectorTranslation: getFloatArray(f, "detector_translation"),
    flatfield: skip ? undefined : getArrayMap(f, "flatfield", maxBytes),
    flatfieldEnabled: getBool(f, "flatfield_enabled"),
    goniometer: f.get("goniometer"),
    imageDtype: getText(f, "image_dtype"),
    imageSizeX: getInt(f, "image_size_x"),
    imageSizeY: getInt(f, "image_size_y"),
    incidentEnergy: getFloat(f, "incident_energy"),
    incidentWavelength: getFloat(f, "incident_wavelength"),
    numberOfImages: getInt(f, "number_of_images"),
    pixelMask: skip ? undefined : getArrayMap(f, "pixel_mask", maxBytes),
    pixelMaskEnabled: getBool(f, "pixel_mask_enabled"),
    pixelSizeX: getFloat(f, "pixel_size_x"),
    pixelSizeY: getFloat(f, "pixel_size_y"),
    saturationValue: getInt(f, "saturation_value"),
    sensorMaterial: getText(f, "sensor_material"),
    sensorThickness: getFloat(f, "sensor_thickness"),
    thresholdEnergy: getFloatMap(f, "threshold_energy"),
    userData: f.get("user_data"),
    virtualPixelInterpolationEnabled: getBool(f, "virtual_pixel_interpolation_enabled"),
    fields: f,
  };
}

function decodeImage(
  f: Map<string, CborValue>,
  maxBytes: number,
  output: DecodeOptions["output"],
): ImageMessage {
  const raw = f.get("data");
  if (!(raw instanceof Map)) throw new StreamError("field data is missing or not a map");
  const seriesId = getInt(f, "series_id", true)!;
  const seriesUniqueId = getText(f, "series_unique_id", true)!;
  const imageId = getInt(f, "image_id", true)!;
  const data = new Map<string, StreamArray>();
  for (const [k, x] of raw) {
    if (typeof k !== "string") throw new StreamError("field data has a non-text channel name");
    const into = output === undefined
      ? undefined
      : (dtype: ElementType, dims: readonly number[], byteLength: number) =>
        output({ imageId, channel: k, dtype, dims, byteLength });
    data.set(k, decodeMultiDimArray(x, `data.${k}`, maxBytes, into));
  }
  return {
    type: "image",
    seriesId,
    seriesUniqueId,
    imageId,
    realTime: getRational(f, "real_time"),
    seriesDate: getDate(f, "series_date"),
    startTime: getRational(f, "start_time"),
    stopTime: getRational(f, "stop_time"),
    data,
    userData: f.get("user_data"),
    fields: f,
  };
}

/** Decodes `40([dims, typedArray])` (row-major), checking the element count against `dims`. */
function decodeMultiDimArray(
  v: CborValue,
  what: string,
  maxBytes: number,
  into?: (
    dtype: ElementType,
    dims: readonly number[],
    byteLength: number,
  ) => Uint8Array | undefined,
): StreamArray {
  if (!(v instanceof CborTag) || v.tag !== TAG_MULTIDIM) {
    throw new StreamError(`${what}: expected a tag-40 multi-dimensional array`);
  }
  const c = v.value;
  if (!Array.isArray(c) || c.length !== 2 || !Array.isArray(c[0])) {
    throw new StreamError(`${what}: tag 40 content must be [dims, array]`);
  }
  const dims: number[] = [];
  let count = 1;
  for (const d of c[0]) {
    if (typeof d !== "number" || !Number.isInteger(d) || d < 0) {
      throw new StreamError(`${what}: invalid dimension`);
    }
    dims.push(d);
    count *= d;
  }
  if (dims.length === 0) throw new StreamError(`${what}: no dimensions`);
  if (count > maxBytes) throw new StreamError(`${what}: ${count} elements exceed the size limit`);
  const output = into === undefined
    ? undefined
    : (dtype: ElementType, byteLength: number) => into(dtype, dims, byteLength);
  return { ...decodeTypedArray(c[1], what, count, maxBytes, output), dims };
}

/** Decodes a typed-array tag over bytes or a 56500 compressed item. */
function decodeTypedArray(
  v: CborValue,
  what: string,
  count: number | undefined,
  maxBytes: number,
  output?: (dtype: ElementType, byteLength: number) => Uint8Array | undefined,
): StreamArray {
  if (!(v instanceof CborTag)) throw new StreamError(`${what}: expected a typed-array tag`);
  const info = TYPED_TAGS.get(v.tag);
  if (!info) throw new StreamError(`${what}: unsupported typed-array tag ${v.tag}`);
  const target = (byteLength: number): Uint8Array | undefined => {
    const into = output?.(info.dtype, byteLength);
    if (into !== undefined && (into.length !== byteLength || into.byteOffset % info.size !== 0)) {
      throw new Error(`${what}: output of ${into.length} B for ${byteLength} B`); // a bug
    }
    return into;
  };
  let bytes: Uint8Array;
  let compression: Compression = "none";
  const content = v.value;
  if (content instanceof Uint8Array) {
    if (count !== undefined && content.length !== count * info.size) {
      throw new StreamError(
        `${what}: ${content.length} bytes, expected ${count * info.size} for ${count} elements`,
      );
    }
    if (content.length % info.size !== 0) {
      throw new StreamError(`${what}: ${content.length} bytes is not a whole number of elements`);
    }
    // Into the requested output (one copy, here), else no copy: an aligned byte string is
    // viewed where it lies in the received frame (which the array then keeps alive); only a
    // misaligned one is copied, into a recycled buffer.
    const into = target(content.length);
    if (into !== undefined) {
      into.set(content);
      bytes = into;
    } else if (content.byteOffset % info.size === 0) bytes = content;
    else {
      bytes = takeDecodeBuffer(content.length).bytes;
      bytes.set(content);
    }
  } else if (content instanceof CborTag && content.tag === TAG_COMPRESSED) {
    const c = content.value;
    if (
      !Array.isArray(c) || c.length !== 3 || typeof c[0] !== "string" ||
      typeof c[1] !== "number" || !(c[2] instanceof Uint8Array)
    ) {
      throw new StreamError(`${what}: tag 56500 content must be [algorithm, modifier, bytes]`);
    }
    const [alg, modifier, payload] = c as [string, number, Uint8Array];
    let total: number;
    if (count !== undefined) total = count * info.size;
    else {
      // Size comes from the payload header; bound it before anything is allocated.
      if (payload.length < 12) throw new StreamError(`${what}: compressed payload too short`);
      const view = new DataView(payload.buffer, payload.byteOffset, 12);
      total = view.getUint32(0) * 0x100000000 + view.getUint32(4);
      if (total % info.size !== 0) {
        throw new StreamError(`${what}: ${total} bytes is not a whole number of elements`);
      }
    }
    if (total > maxBytes) throw new StreamError(`${what}: ${total} bytes exceed the size limit`);
    try {
      if (alg === "bslz4") {
        if (![1, 2, 4, 8].includes(modifier) || total % modifier !== 0) {
          throw new StreamError(`${what}: bslz4 element size ${modifier} invalid`);
        }
        bytes = decompressBslz4(payload, modifier, total / modifier, target(total));
        compression = "bslz4";
      } else if (alg === "lz4") {
        bytes = decompressLz4Hdf5(payload, total, target(total));
        compression = "lz4";
      } else {
        throw new StreamError(`${what}: unknown compression "${alg}"`);
      }
    } catch (e) {
      if (e instanceof CompressionError) {
        throw new StreamError(`${what}: ${e.message}`, { cause: e });
      }
      throw e;
    }
  } else {
    throw new StreamError(`${what}: typed array content must be bytes or tag 56500`);
  }
  if (info.bigEndian === LITTLE_ENDIAN_HOST && info.size > 1) swapBytes(bytes, info.size);
  const data = viewAs(info.dtype, bytes);
  return { dims: [data.length], dtype: info.dtype, data, compression };
}

function swapBytes(b: Uint8Array, size: number): void {
  for (let i = 0; i < b.length; i += size) {
    for (let lo = i, hi = i + size - 1; lo < hi; lo++, hi--) {
      const t = b[lo];
      b[lo] = b[hi];
      b[hi] = t;
    }
  }
}

/** Views `bytes` (offset 0 of its own buffer, aligned) as the typed array of `dtype`. */
function viewAs(dtype: ElementType, bytes: Uint8Array): ElementArray {
  const { buffer, byteOffset, byteLength } = bytes;
  const n = byteLength / ELEMENT_SIZE[dtype];
  switch (dtype) {
    case "uint8":
      return bytes;
    case "uint16":
      return new Uint16Array(buffer, byteOffset, n);
    case "uint32":
      return new Uint32Array(buffer, byteOffset, n);
    case "uint64":
      return new BigUint64Array(buffer, byteOffset, n);
    case "int8":
      return new Int8Array(buffer, byteOffset, n);
    case "int16":
      return new Int16Array(buffer, byteOffset, n);
    case "int32":
      return new Int32Array(buffer, byteOffset, n);
    case "int64":
      return new BigInt64Array(buffer, byteOffset, n);
    case "float32":
      return new Float32Array(buffer, byteOffset, n);
    case "float64":
      return new Float64Array(buffer, byteOffset, n);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding (simulator)

/** One image channel to encode. */
export interface ChannelImageInit {
  /** `[rows, cols]` (`[image_size_y, image_size_x]`). */
  dims: number[];
  /** Pixels, row-major, host order (little-endian hosts only for multi-byte types). */
  data: ElementArray;
  /** Wire compression (default `bslz4`). */
  compression?: Compression;
  /**
   * The already compressed payload of `data` for `compression` (a simulator that pre-compresses
   * its frames); the caller vouches that it matches `data`.
   */
  payload?: Uint8Array;
}

/** Input of {@link encodeStreamMessage} for a `start` message. */
export interface StartInit extends
  Omit<
    StartFields,
    "flatfield" | "pixelMask" | "countrateCorrectionLookupTable" | "userData" | "goniometer"
  > {
  type: "start";
  /** `user_data` (the header appendix), any CBOR-encodable value. */
  userData?: CborEncodable;
  /** `goniometer` map as it goes on the wire. */
  goniometer?: CborEncodable;
  flatfield?: Map<string, ChannelImageInit>;
  pixelMask?: Map<string, ChannelImageInit>;
  /** Further fields by wire name (appended after the known ones). */
  extra?: Record<string, CborEncodable>;
}

/** Input of {@link encodeStreamMessage} for an `image` message. */
export interface ImageInit {
  type: "image";
  seriesId: number;
  seriesUniqueId: string;
  imageId: number;
  realTime: Rational;
  seriesDate: string;
  startTime: Rational;
  stopTime: Rational;
  /** Channel name → image, in this order on the wire. */
  data: Map<string, ChannelImageInit>;
  /** `user_data` (the image appendix); omitted when undefined. */
  userData?: CborEncodable;
}

/** Input of {@link encodeStreamMessage} for an `end` message. */
export interface EndInit {
  type: "end";
  seriesId: number;
  seriesUniqueId: string;
}

/** Any message {@link encodeStreamMessage} can produce. */
export type StreamMessageInit = StartInit | ImageInit | EndInit;

const START_WIRE_NAMES: ReadonlyArray<[keyof StartInit, string]> = [
  ["seriesId", "series_id"],
  ["seriesUniqueId", "series_unique_id"],
  ["armDate", "arm_date"],
  ["beamCenterX", "beam_center_x"],
  ["beamCenterY", "beam_center_y"],
  ["channels", "channels"],
  ["countTime", "count_time"],
  ["frameTime", "frame_time"],
  ["countrateCorrectionEnabled", "countrate_correction_enabled"],
  ["detectorDescription", "detector_description"],
  ["detectorSerialNumber", "detector_serial_number"],
  ["detectorTranslation", "detector_translation"],
  ["flatfield", "flatfield"],
  ["flatfieldEnabled", "flatfield_enabled"],
  ["goniometer", "goniometer"],
  ["imageDtype", "image_dtype"],
  ["imageSizeX", "image_size_x"],
  ["imageSizeY", "image_size_y"],
  ["incidentEnergy", "incident_energy"],
  ["incidentWavelength", "incident_wavelength"],
  ["numberOfImages", "number_of_images"],
  ["pixelMask", "pixel_mask"],
  ["pixelMaskEnabled", "pixel_mask_enabled"],
  ["pixelSizeX", "pixel_size_x"],
  ["pixelSizeY", "pixel_size_y"],
  ["saturationValue", "saturation_value"],
  ["sensorMaterial", "sensor_material"],
  ["sensorThickness", "sensor_thickness"],
  ["thresholdEnergy", "threshold_energy"],
  ["userData", "user_data"],
  ["virtualPixelInterpolationEnabled", "virtual_pixel_interpolation_enabled"],
];

/** `start` fields of CBOR type Float: always encoded as floats, even when integral. */
const START_FLOAT_FIELDS: ReadonlySet<string> = new Set([
  "beamCenterX",
  "beamCenterY",
  "countTime",
  "frameTime",
  "incidentEnergy",
  "incidentWavelength",
  "pixelSizeX",
  "pixelSizeY",
  "sensorThickness",
]);

/** Encodes a typed array as `40([dims, tag(56500([alg, mod, payload]) | bytes)])`. */
export function encodeMultiDimArray(img: ChannelImageInit): CborTag {
  const dtype = dtypeOf(img.data);
  const size = ELEMENT_SIZE[dtype];
  let count = 1;
  for (const d of img.dims) count *= d;
  if (count !== img.data.length) {
    throw new StreamError(`dims ${img.dims.join("x")} do not match ${img.data.length} elements`);
  }
  if (!LITTLE_ENDIAN_HOST && size > 1) throw new StreamError("encoding needs a little-endian host");
  const raw = new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  const compression = img.compression ?? "bslz4";
  let content: CborValue;
  if (compression === "bslz4") {
    content = new CborTag(TAG_COMPRESSED, ["bslz4", size, img.payload ?? compressBslz4(raw, size)]);
  } else if (compression === "lz4") {
    content = new CborTag(TAG_COMPRESSED, ["lz4", 0, img.payload ?? compressLz4Hdf5(raw)]);
  } else {
    content = raw;
  }
  return new CborTag(TAG_MULTIDIM, [img.dims, new CborTag(TYPED_ARRAY_TAG[dtype], content)]);
}

function dtypeOf(a: ElementArray): ElementType {
  if (a instanceof Uint8Array) return "uint8";
  if (a instanceof Uint16Array) return "uint16";
  if (a instanceof Uint32Array) return "uint32";
  if (a instanceof BigUint64Array) return "uint64";
  if (a instanceof Int8Array) return "int8";
  if (a instanceof Int16Array) return "int16";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof BigInt64Array) return "int64";
  if (a instanceof Float32Array) return "float32";
  return "float64";
}

function arrayMap(m: Map<string, ChannelImageInit>): Map<CborValue, CborValue> {
  const out = new Map<CborValue, CborValue>();
  for (const [k, v] of m) out.set(k, encodeMultiDimArray(v));
  return out;
}

/**
 * Encodes a stream v2 message with the 55799 prefix, `type` first, images compressed per channel
 * (default bslz4 with 8192-byte blocks, like the DCU). Dates are emitted as tag 0 text; `start`
 * fields of type Float (times, energies, sizes, translation, threshold energies) always as
 * float64, so strict parsers such as DECTRIS' `stream2.c` accept integral values too.
 */
export function encodeStreamMessage(msg: StreamMessageInit): Uint8Array {
  return encodeCbor(streamMessageValue(msg));
}

/**
 * Encodes a stream v2 message like {@link encodeStreamMessage}, as pieces to write in order:
 * image payloads (given pre-compressed in `payload`, or compressed here) are referenced, not
 * copied, so a simulator can send the same pre-compressed frame many times without copying it.
 */
export function encodeStreamMessageParts(msg: StreamMessageInit): Uint8Array[] {
  return encodeCborParts(streamMessageValue(msg));
}

function streamMessageValue(msg: StreamMessageInit): CborEncodable {
  const m = new Map<CborEncodable, CborEncodable>([["type", msg.type]]);
  if (msg.type === "start") {
    for (const [key, wire] of START_WIRE_NAMES) {
      const v = msg[key];
      if (v === undefined) continue;
      if (key === "armDate") m.set(wire, new CborTag(TAG_DATE, v as string));
      else if (key === "flatfield" || key === "pixelMask") {
        m.set(wire, arrayMap(v as Map<string, ChannelImageInit>));
      } else if (START_FLOAT_FIELDS.has(key)) m.set(wire, new CborFloat64(v as number));
      else if (key === "detectorTranslation") {
        m.set(wire, (v as number[]).map((x) => new CborFloat64(x)));
      } else if (key === "thresholdEnergy") {
        m.set(
          wire,
          new Map(
            Object.entries(v as Record<string, number>).map(([k, x]) => [k, new CborFloat64(x)]),
          ),
        );
      } else m.set(wire, v as CborEncodable);
    }
    for (const [k, v] of Object.entries(msg.extra ?? {})) m.set(k, v);
  } else if (msg.type === "image") {
    m.set("series_id", msg.seriesId);
    m.set("series_unique_id", msg.seriesUniqueId);
    m.set("image_id", msg.imageId);
    m.set("real_time", msg.realTime);
    m.set("series_date", new CborTag(TAG_DATE, msg.seriesDate));
    m.set("start_time", msg.startTime);
    m.set("stop_time", msg.stopTime);
    m.set("data", arrayMap(msg.data));
    if (msg.userData !== undefined) m.set("user_data", msg.userData);
  } else {
    m.set("series_id", msg.seriesId);
    m.set("series_unique_id", msg.seriesUniqueId);
  }
  return new CborTag(SELF_DESCRIBED, m as Map<CborValue, CborValue>);
}
