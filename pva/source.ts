/**
 * What a pvAccess channel serves: the {@link PvaSource} contract, and sources over the IOC's
 * PV records ({@link recordSource}: NTScalar, NTScalarArray, NTEnum), constant structures
 * ({@link staticSource}, e.g. PVI) and image records ({@link ndArraySource}: NTNDArray).
 * Values are built lazily, once per record version, and never change afterwards, so queued
 * messages may reference their arrays without copying.
 *
 * @module
 */

import {
  type ClientInfo,
  DBE,
  defaultCodec,
  type NativeType,
  type NativeValue,
  type PvRecord,
  type SubscriberSink,
  WriteRefusedError,
} from "../ca/mod.ts";
import {
  alarmValue,
  dimension,
  DISPLAY_FORMS,
  ND_VALUE_MEMBERS,
  NT_ENUM,
  NT_NDARRAY,
  ntScalarType,
  timeValue,
} from "./nt.ts";
import {
  type AnyValue,
  ARRAY_CONSTRUCTORS,
  SCALAR_SIZES,
  type ScalarType,
  type StructDesc,
  type StructValue,
  type TypedArray,
} from "./pvdata.ts";
import type { BitSet } from "./wire.ts";
import { errorMessage } from "../core/errors.ts";

/** A served pvAccess PV. */
export interface PvaSource {
  /** The full type; fixed for the source's lifetime. */
  readonly type: StructDesc;
  /** Changes whenever the value does. */
  version(): number;
  /**
   * Current value (shared: do not modify). Its large arrays may be recycled for a later version
   * once superseded, unless {@link hold held}: hold it while messages referencing it are queued.
   */
  value(): StructValue;
  /** Marks the current value as in use until the returned release function is called. */
  hold?(): () => void;
  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  /**
   * A client write of the fields in `changed` (bits per the type's numbering) of `value`.
   * Rejects with {@link WriteRefusedError} (text sent to the client) to refuse.
   */
  put(value: StructValue, changed: BitSet, client: ClientInfo): Promise<void>;
}

/** pvData scalar type serving each CA native type. */
export const NATIVE_SCALAR: Readonly<Record<NativeType, ScalarType>> = {
  string: "string",
  short: "short",
  float: "float",
  enum: "ushort",
  char: "ubyte",
  long: "int",
  double: "double",
};

function recordIsArray(record: PvRecord): boolean {
  return record.maxCount > 1 || record.metadata.recordType === "waveform";
}

/** Subscribes `listener` to every change of `record`. */
function watch(record: PvRecord, listener: () => void): () => void {
  const sink: SubscriberSink = {
    mask: DBE.VALUE | DBE.LOG | DBE.ALARM | DBE.PROPERTY,
    notify: listener,
  };
  record.subscribers.add(sink);
  return () => record.subscribers.delete(sink);
}

/**
 * Copies a typed array (values held by sources must not change under queued messages) with
 * `set`, a plain memory copy (`slice` measured 4× slower for image-sized arrays).
 */
export function copyTyped<A extends TypedArray>(src: A): A {
  const out = new (src.constructor as new (n: number) => A)(src.length);
  (out as Uint8Array).set(src as unknown as Uint8Array);
  return out;
}

function ownCopy(value: NativeValue): TypedArray | string[] {
  return Array.isArray(value) ? [...value] : copyTyped(value as TypedArray);
}

/** NTScalar / NTScalarArray / NTEnum over one IOC record, with its alarm and metadata. */
export function recordSource(record: PvRecord): PvaSource {
  const isEnum = record.native === "enum";
  const array = recordIsArray(record);
  const scalar = NATIVE_SCALAR[record.native];
  const type = isEnum ? NT_ENUM : ntScalarType(scalar, array);
  let cached: { version: number; value: StructValue } | undefined;

  const build = (): StructValue => {
    const m = record.metadata;
    const raw = record.value();
    const out: StructValue = {
      alarm: alarmValue(record.severity, record.status),
      timeStamp: timeValue(record.timestamp),
    };
    if (isEnum) {
      out.value = { index: Number(raw[0] ?? 0), choices: [...(m.enumLabels ?? [])] };
      out.display = { description: m.description ?? "" };
      return out;
    }
    if (array) out.value = ownCopy(raw);
    else out.value = scalar === "string" ? String(raw[0] ?? "") : Number(raw[0] ?? 0);
    if (scalar === "string") {
      out.display = { description: m.description ?? "", units: m.units ?? "" };
      return out;
    }
    const [low, high] = m.displayLimits ?? [0, 0];
    const [clow, chigh] = m.controlLimits ?? [0, 0];
    out.display = {
      limitLow: low,
      limitHigh: high,
      description: m.description ?? "",
      units: m.units ?? "",
      precision: m.precision ?? 0,
      form: { index: 0, choices: DISPLAY_FORMS },
    };
    out.control = { limitLow: clow, limitHigh: chigh, minStep: 0 };
    return out;
  };

  return {
    type,
    version: () => record.version,
    value() {
      if (cached?.version !== record.version) {
        cached = { version: record.version, value: build() };
      }
      return cached.value;
    },
    subscribe: (listener) => watch(record, listener),
    async put(value, changed, client) {
      if (!record.definition.writable) throw new WriteRefusedError(`${record.name} is read-only`);
      // Bits: 1 = value; for NTEnum 1 = value, 2 = value.index.
      if (!changed.get(0) && !changed.get(1) && !(isEnum && changed.get(2))) {
        throw new WriteRefusedError("nothing to write: only value can be written");
      }
      let written: unknown = value.value;
      if (isEnum) written = (written as StructValue | undefined)?.index;
      let native: NativeValue;
      try {
        native = defaultCodec.toNative(
          toCodecInput(written),
          record.native,
          record.maxCount,
        );
      } catch (err) {
        throw new WriteRefusedError(errorMessage(err));
      }
      await record.write(native, client);
    },
  };
}

/** Converts a decoded pvData value to what `DbrCodec.toNative` accepts. */
function toCodecInput(v: unknown): Parameters<typeof defaultCodec.toNative>[0] {
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number" || typeof v === "string") return v;
  if (v instanceof BigInt64Array || v instanceof BigUint64Array) {
    return Array.from(v, (x) => Number(x));
  }
  if (ArrayBuffer.isView(v)) return v as Parameters<typeof defaultCodec.toNative>[0];
  if (Array.isArray(v)) return v.map(String);
  throw new WriteRefusedError(`cannot write a value of this type`);
}

/** A constant structure (e.g. PVI); writes are refused. */
export function staticSource(type: StructDesc, value: StructValue): PvaSource {
  return {
    type,
    version: () => 0,
    value: () => value,
    subscribe: () => () => {},
    put: () => Promise.reject(new WriteRefusedError("read-only")),
  };
}

/** One NTNDArray attribute. */
export interface NdAttribute {
  name: string;
  /** Held value (type and value of the `any`). */
  value: AnyValue;
  descriptor: string;
}

/** Per-series information of an image source, set before the pixels are posted. */
export interface NdFrameInfo {
  /** `uniqueId`. */
  uniqueId: number;
  /** `dataTimeStamp`, ms since the Unix epoch. */
  dataTime: number;
  /** `attribute` entries besides `ColorMode`. */
  attributes: NdAttribute[];
}

/** Shape of the images of an {@link ndArraySource}. */
export interface NdShape {
  width: number;
  height: number;
  /** Images per series: a third dimension when > 1. */
  images: number;
  /** pvData type of the pixels (the NTNDArray `value` union member). */
  pixel: Exclude<ScalarType, "string">;
}

/** An NTNDArray source over an image record, plus the setter for per-series information. */
export interface NdArraySource extends PvaSource {
  /** Sets what the next value carries besides the pixels (call before posting them). */
  setFrame(info: NdFrameInfo): void;
}

/** A int32 `any` value. */
export function anyInt(v: number): AnyValue {
  return { type: { kind: "scalar", type: "int" }, value: v };
}

/** A double (one element) or double[] `any` value. */
export function anyDoubles(values: ArrayLike<number>): AnyValue {
  return values.length === 1
    ? { type: { kind: "scalar", type: "double" }, value: values[0] }
    : { type: { kind: "scalarArray", type: "double" }, value: Float64Array.from(values) };
}

/** A string `any` value. */
export function anyString(v: string): AnyValue {
  return { type: { kind: "scalar", type: "string" }, value: v };
}

/** The pixels of `stored` as an owned array of `pixel` type (one copy, or a conversion). */
function pixelsOf(stored: NativeValue, pixel: ScalarType): TypedArray {
  const Ctor = ARRAY_CONSTRUCTORS[pixel as Exclude<ScalarType, "string">];
  if (Array.isArray(stored)) return new Ctor(0);
  const src = stored as TypedArray;
  if (src instanceof Ctor) return copyTyped(src);
  const size = SCALAR_SIZES[pixel];
  if (src.BYTES_PER_ELEMENT === size) {
    // Same bits (uint32 served as CA LONG): reinterpret, then copy once.
    const bytes = copyTyped(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    return new Ctor(bytes.buffer as ArrayBuffer);
  }
  return (Ctor as Float64ArrayConstructor).from(src as Float64Array);
}

/**
 * NTNDArray over an image record (series `[image][y][x]`, x fastest): dimension [x, y] for one
 * image per series, [x, y, n] for n > 1; attributes from {@link NdArraySource.setFrame} plus
 * `ColorMode` 0 (mono).
 */
export function ndArraySource(record: PvRecord, shape: NdShape): NdArraySource {
  const pixel = shape.pixel;
  const selector = ND_VALUE_MEMBERS.indexOf(pixel);
  let info: NdFrameInfo = { uniqueId: 0, dataTime: record.timestamp, attributes: [] };
  const dims = [dimension(shape.width), dimension(shape.height)];
  if (shape.images > 1) dims.push(dimension(shape.images));
  // Pixels are sent by reference. The version borrows the record's array
  // (`PvRecord.holdValue`) when the record allocated it (a copying post) or when the poster
  // handed it over with a `retain` (the IOC's frames): until it is superseded and no queued
  // message holds it — a version that borrows is retired at the record's next change, so a
  // backend's frame is never kept longer than the PVs or a queued message use it. Otherwise (an
  // array the poster handed over and may reuse) they are copied into a recycled buffer (fresh
  // image-sized allocations are slow), which goes back to `spare` likewise.
  interface Version {
    version: number;
    value: StructValue;
    pixels: TypedArray;
    /** Gives the borrowed record array back; undefined for an own copy. */
    giveBack: (() => void) | undefined;
    holds: number;
    retired: boolean;
  }
  let current: Version | undefined;
  const spare: TypedArray[] = [];
  const recycle = (v: Version) => {
    if (v.giveBack !== undefined) v.giveBack();
    else if (spare.length < 2) spare.push(v.pixels);
  };
  const Ctor = ARRAY_CONSTRUCTORS[pixel as Exclude<ScalarType, "string">];
  const sameBits = (src: TypedArray) =>
    src instanceof Ctor || src.BYTES_PER_ELEMENT === SCALAR_SIZES[pixel];

  const pixelsNow = (): { pixels: TypedArray; giveBack?: () => void } => {
    const lent = record.holdValue();
    if (lent !== undefined) {
      const src = lent.value as TypedArray;
      if (sameBits(src)) {
        const pixels = src instanceof Ctor
          ? src
          : new Ctor(src.buffer as ArrayBuffer, src.byteOffset, src.length);
        return { pixels, giveBack: lent.release };
      }
      lent.release();
    }
    const stored = record.snapshot().value as NativeValue;
    if (!Array.isArray(stored)) {
      const src = stored as TypedArray;
      const i = spare.findIndex((p) => p.length === src.length);
      if (i >= 0 && sameBits(src)) {
        const out = spare.splice(i, 1)[0];
        const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
        bytes.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
        return { pixels: out };
      }
    }
    return { pixels: pixelsOf(stored, pixel) };
  };

  const build = (pixels: TypedArray): StructValue => {
    // The stored array as posted (uint32 pixels stay uint32 on a CA DOUBLE record).
    const bytes = pixels.length * SCALAR_SIZES[pixel];
    const complete = pixels.length === shape.width * shape.height * shape.images;
    return {
      value: { index: selector, value: pixels },
      codec: { name: "", parameters: anyInt(selector) },
      compressedSize: BigInt(bytes),
      uncompressedSize: BigInt(bytes),
      // An empty record (before the first series) has no image: no dimensions.
      dimension: complete ? dims : [],
      uniqueId: info.uniqueId,
      dataTimeStamp: timeValue(info.dataTime),
      attribute: [
        {
          name: "ColorMode",
          value: anyInt(0),
          descriptor: "Color mode",
          sourceType: 0,
          source: "",
        },
        ...info.attributes.map((a) => ({ ...a, sourceType: 0, source: "" })),
      ],
      descriptor: record.metadata.description ?? "",
      alarm: alarmValue(record.severity, record.status),
      timeStamp: timeValue(record.timestamp),
      display: { limitLow: 0, limitHigh: 0, description: "", format: "", units: "" },
    };
  };

  /** Subscribed while `current` borrows: retires it at the record's next change. */
  let unwatch: (() => void) | undefined;
  const retire = () => {
    const v = current;
    if (v === undefined || v.version === record.version) return;
    current = undefined;
    unwatch?.();
    unwatch = undefined;
    v.retired = true;
    if (v.holds === 0) recycle(v);
  };

  const now = (): Version => {
    if (current?.version !== record.version) {
      retire();
      const { pixels, giveBack } = pixelsNow();
      const value = build(pixels);
      current = { version: record.version, value, pixels, giveBack, holds: 0, retired: false };
      if (giveBack !== undefined) unwatch = watch(record, retire);
    }
    return current!;
  };

  return {
    type: NT_NDARRAY,
    version: () => record.version,
    value: () => now().value,
    hold() {
      const v = now();
      v.holds++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        v.holds--;
        if (v.holds === 0 && v.retired) recycle(v);
      };
    },
    subscribe: (listener) => watch(record, listener),
    put: () => Promise.reject(new WriteRefusedError(`${record.name} is read-only`)),
    setFrame(next) {
      info = next;
    },
  };
}
