/**
 * The served PVs: records implementing {@link PvHandle}, their `.FIELD` / `$` channel targets,
 * the shared per-version encode cache, and subscriber bookkeeping. No I/O: a post only marks
 * subscriptions dirty through {@link SubscriberSink}.
 *
 * @module
 */

import { type DbrCodec, type DbrSnapshot, ECA } from "./codec.ts";
import { DBE } from "./messages.ts";
import {
  type ClientInfo,
  type NativeType,
  type NativeValue,
  type NumericArray,
  OWNER_POSTS,
  type PostOptions,
  type PvDefinition,
  type PvHandle,
  type PvMetadata,
  type PvValue,
  WriteRefusedError,
} from "./pv.ts";

/** A subscription as the store sees it: its mask and where to report that it is dirty. */
export interface SubscriberSink {
  /** DBE mask of the subscription. */
  readonly mask: number;
  /** Called when the subscribed target changed with event bits intersecting `mask`. */
  notify(): void;
}

/** A channel's holder (circuit side), told when the PV goes away. */
export interface ChannelHolder {
  /** The PV was removed: drop the channel and tell the client (SERVER_DISCONN). */
  disconnect(): void;
}

/** What a channel name resolves to: the record itself (`VAL`) or one of its fields. */
export interface ChannelTarget {
  /** The underlying record. */
  readonly record: PvRecord;
  /** Field name (`VAL` for the value), with a trailing `$` for long-string channels. */
  readonly field: string;
  /** Native type announced to clients. */
  readonly native: NativeType;
  /** Native count (capacity) announced to clients, ≥ 1. */
  readonly maxCount: number;
  /** Whether clients may write at all (before the access hook). */
  readonly writable: boolean;
  /** Current value and metadata. */
  snapshot(): DbrSnapshot;
  /** Current element count. */
  length(): number;
  /** Encoded payload of `type`×`count` for the current version (cached, shared; do not mutate). */
  encoded(type: number, count: number): Uint8Array;
  /**
   * Marks a payload from {@link encoded} as in use (queued or being written) until the returned
   * release function is called; image-sized payloads are recycled only after their release.
   */
  hold(payload: Uint8Array): () => void;
  /** Performs a client write (already decoded to {@link native}). Rejects to refuse. */
  write(value: NativeValue, client: ClientInfo): Promise<void>;
  /** Enum labels (for write conversion). */
  enumLabels(): readonly string[];
}

const MAX_STRING = 40;

const SEVERITY_LABELS = ["NO_ALARM", "MINOR", "MAJOR", "INVALID"];
/** Alarm status names by CA STAT value (`alarm.h` order). */
export const STATUS_LABELS: readonly string[] = [
  "NO_ALARM",
  "READ",
  "WRITE",
  "HIHI",
  "HIGH",
  "LOLO",
  "LOW",
  "STATE",
  "COS",
  "COMM",
  "TIMEOUT",
  "HWLIMIT",
  "CALC",
  "SCAN",
  "LINK",
  "SOFT",
  "BAD_SUB",
  "UDF",
  "DISABLE",
  "SIMM",
  "READ_ACCESS",
  "WRITE_ACCESS",
];

/** Fields served for every record, besides VAL. */
export const SERVED_FIELDS = [
  "RTYP",
  "DESC",
  "EGU",
  "PREC",
  "HOPR",
  "LOPR",
  "HIHI",
  "HIGH",
  "LOW",
  "LOLO",
  "DRVH",
  "DRVL",
  "SEVR",
  "STAT",
  "NAME",
  "NELM",
  "NORD",
] as const;

/** Default record type name for a native type. */
function defaultRecordType(definition: PvDefinition): string {
  const count = definition.maxCount ?? 1;
  if (count > 1) return "waveform";
  switch (definition.type) {
    case "string":
      return "stringin";
    case "enum":
      return "mbbi";
    case "double":
    case "float":
      return "ai";
    default:
      return "longin";
  }
}

/** Zero value for a native type. */
function emptyValue(native: NativeType, length: number): NativeValue {
  switch (native) {
    case "string":
      return new Array<string>(length).fill("");
    case "short":
      return new Int16Array(length);
    case "float":
      return new Float32Array(length);
    case "enum":
      return new Uint16Array(length);
    case "char":
      return new Uint8Array(length);
    case "long":
      return new Int32Array(length);
    case "double":
      return new Float64Array(length);
  }
}

/** Shortest array stored without conversion (small values are simply converted). */
const STORE_AS_IS_MIN = 1024;

/** Typed-array constructor of each numeric native type. */
const NATIVE_ARRAYS = {
  string: Array,
  short: Int16Array,
  float: Float32Array,
  enum: Uint16Array,
  char: Uint8Array,
  long: Int32Array,
  double: Float64Array,
} as const;

/** Typed-array conversions that keep every value exactly, by target constructor. */
const EXACT_WIDENINGS = new Map<unknown, Set<unknown>>([
  [
    Float64Array,
    new Set([
      Int8Array,
      Uint8Array,
      Int16Array,
      Uint16Array,
      Int32Array,
      Uint32Array,
      Float32Array,
    ]),
  ],
  [Float32Array, new Set([Int8Array, Uint8Array, Int16Array, Uint16Array])],
  [Int32Array, new Set([Int8Array, Uint8Array, Int16Array, Uint16Array])],
  [Int16Array, new Set([Int8Array, Uint8Array])],
]);

/**
 * Memory kept alive only because a slow client still holds it: superseded payloads that some
 * circuit is still writing (or has queued). Shared by every record of one store; the server
 * compares it with its slow-client budget.
 */
export class RetainedMemory {
  /** Bytes of superseded payloads still held by a writer. */
  bytes = 0;
  /** Called after {@link bytes} grew. */
  onGrow: (() => void) | undefined;

  /** Adds (or, negative, removes) retained bytes. */
  change(delta: number): void {
    this.bytes += delta;
    if (delta > 0) this.onGrow?.();
  }
}

/**
 * Counts one more holder of `key` in `holds`; the returned release (idempotent) counts it down
 * and calls `onLast` once the last holder released.
 */
function holdCounted<K>(holds: Map<K, number>, key: K, onLast: () => void): () => void {
  holds.set(key, (holds.get(key) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = holds.get(key)! - 1;
    if (left > 0) {
      holds.set(key, left);
      return;
    }
    holds.delete(key);
    onLast();
  };
}

/** Whether two typed arrays have the same element type and length (one may fill the other). */
function sameShape(a: NumericArray, b: NumericArray): boolean {
  return a.constructor === b.constructor && a.length === b.length;
}

/** Smallest payload worth recycling (smaller ones are cheap to allocate). */
const RECYCLE_MIN = 64 * 1024;
/** Superseded payloads kept per target for reuse. */
const MAX_SPARE = 2;

/**
 * Encoded payloads of one target's current version, shared by every circuit that sends them.
 * Image-sized payloads are recycled instead of left to the garbage collector: a payload that a
 * writer {@link hold held} goes back to a small spare list once its version was superseded and
 * the last holder released it, and the next encode of the same size fills it. Payloads nobody
 * held are never reused (whoever asked for them may still read them).
 */
class EncodeCache {
  #version = -1;
  #map = new Map<number, Uint8Array>();
  /** Payloads lent to writers, with their number of holders. */
  #holds = new Map<Uint8Array, number>();
  /** Payloads of the current version that were lent at least once. */
  #lent = new Set<Uint8Array>();
  /** Superseded payloads still held: recycled on their last release. */
  #retired = new Set<Uint8Array>();
  #spare: Uint8Array[] = [];
  #retained: RetainedMemory;

  constructor(retained: RetainedMemory) {
    this.#retained = retained;
  }

  get(
    version: number,
    type: number,
    count: number,
    make: (reuse: (length: number) => Uint8Array | undefined) => Uint8Array,
  ): Uint8Array {
    if (version !== this.#version) {
      let retained = 0;
      for (const old of this.#lent) {
        if (this.#holds.has(old)) {
          this.#retired.add(old);
          retained += old.length;
        } else this.#recycle(old);
      }
      this.#lent.clear();
      this.#map.clear();
      this.#version = version;
      if (retained > 0) this.#retained.change(retained);
    }
    const key = type * 0x1_0000_0000 + count;
    let hit = this.#map.get(key);
    if (!hit) {
      hit = make((length) => this.#takeSpare(length));
      this.#map.set(key, hit);
    }
    return hit;
  }

  hold(payload: Uint8Array): () => void {
    if (payload.length < RECYCLE_MIN) return () => {};
    let current = false;
    for (const p of this.#map.values()) current ||= p === payload;
    if (!current && !this.#holds.has(payload)) return () => {};
    if (current) this.#lent.add(payload);
    return holdCounted(this.#holds, payload, () => {
      if (this.#retired.delete(payload)) {
        this.#retained.change(-payload.length);
        this.#recycle(payload);
      }
    });
  }

  #recycle(payload: Uint8Array): void {
    if (this.#spare.length >= MAX_SPARE) this.#spare.shift();
    this.#spare.push(payload);
  }

  #takeSpare(length: number): Uint8Array | undefined {
    const i = this.#spare.findIndex((p) => p.length === length);
    return i < 0 ? undefined : this.#spare.splice(i, 1)[0];
  }
}

/** One served PV (implements the public {@link PvHandle}). */
export class PvRecord implements PvHandle {
  /** Full PV name. */
  readonly name: string;
  /** The definition as given. */
  readonly definition: Readonly<PvDefinition>;
  /** Native type. */
  readonly native: NativeType;
  /** Capacity in elements. */
  readonly maxCount: number;
  /** Increments on every post and metadata change. */
  version = 0;
  /** Timestamp of the current value (ms since the Unix epoch). */
  timestamp: number;
  /** Alarm severity of the current value. */
  severity = 0;
  /** Alarm status of the current value. */
  status = 0;
  /** Current display metadata (definition merged with later {@link setMetadata} calls). */
  metadata: PvMetadata;
  /** Subscriptions on this record or its fields. */
  readonly subscribers = new Set<SubscriberSink>();
  /** Channels open on this record or its fields. */
  readonly holders = new Set<ChannelHolder>();
  /** The value as stored: native, or a narrower array of exact values (see {@link post}). */
  #value: NativeValue | NumericArray;
  /** Whether `#value` was allocated here (not handed over by a caller), so it may be reused. */
  #ownsValue = true;
  /** Own value arrays lent by {@link holdValue}, with their number of holders. */
  #valueHolds = new Map<NumericArray, number>();
  /** Takes a reference to a handed-over `#value` for a borrower (`PostOptions.retain`). */
  #retainValue: (() => () => void) | undefined;
  /** An own array superseded while lent and since given back: the next copying post fills it. */
  #spareValue: NumericArray | undefined;
  /** Native form of a narrow `#value`, made on demand by {@link value} (and its version). */
  #widened: { version: number; value: NativeValue } | undefined;
  #codec: DbrCodec;
  #targets = new Map<string, ChannelTarget>();
  #valTarget: ChannelTarget;
  /** Where superseded-but-held payloads of this record's targets are counted. */
  readonly retained: RetainedMemory;

  constructor(definition: PvDefinition, codec: DbrCodec, retained = new RetainedMemory()) {
    const maxCount = definition.maxCount ?? 1;
    if (!Number.isInteger(maxCount) || maxCount < 1) {
      throw new Error(`PV ${definition.name}: maxCount must be an integer ≥ 1`);
    }
    if (!definition.name || /[\s\0]/.test(definition.name)) {
      throw new Error(`invalid PV name ${JSON.stringify(definition.name)}`);
    }
    this.name = definition.name;
    this.definition = definition;
    this.native = definition.type;
    this.maxCount = maxCount;
    this.#codec = codec;
    this.retained = retained;
    this.metadata = {
      ...definition,
      recordType: definition.recordType ?? defaultRecordType(definition),
    };
    this.timestamp = Date.now();
    this.#value = definition.initial !== undefined
      ? codec.toNative(definition.initial, this.native, maxCount)
      : emptyValue(this.native, maxCount === 1 ? 1 : 0);
    this.#valTarget = new ValueTarget(this, codec);
  }

  /** Current value in native form (a narrow stored array is converted once per version). */
  value(): NativeValue {
    const stored = this.#value;
    if (Array.isArray(stored) || stored instanceof NATIVE_ARRAYS[this.native]) {
      return stored as NativeValue;
    }
    if (this.#widened?.version !== this.version) {
      const value = this.#codec.toNative(stored, this.native, this.maxCount);
      this.#widened = { version: this.version, value };
    }
    return this.#widened.value;
  }

  /** Current number of elements. */
  length(): number {
    return this.#value.length;
  }

  /**
   * Stores `value` and notifies subscribers (see {@link PvHandle.post}). An image-sized typed
   * array of the native type or of a narrower type whose values the native type holds exactly
   * (uint32 pixels on a DOUBLE PV) is stored as it is, without conversion: the encoders convert
   * while writing the payload, so a value nobody reads costs nothing and one that is read costs a
   * single pass. It is copied (into the array this record already owns when type and length
   * match) unless it is of the native type (or handed over with {@link PostOptions.keep}) and
   * {@link PostOptions.copy} is not set. Other values
   * are converted to the native type.
   */
  post(value: PvValue, options: PostOptions = {}): void {
    const copy = options.copy === true;
    let stored: NativeValue | NumericArray;
    const asIs = this.#storesAsIs(value);
    if (asIs !== undefined) {
      const current = this.#value;
      // Zero-copy for arrays of the native type, and for narrower ones handed over with `keep`.
      if (!copy && (options.keep === true || asIs instanceof NATIVE_ARRAYS[this.native])) {
        stored = asIs;
      } else if (
        this.#ownsValue && !Array.isArray(current) && sameShape(current, asIs) &&
        !this.#valueHolds.has(current)
      ) {
        (current as Float64Array).set(asIs as Float64Array);
        stored = current;
      } else if (this.#spareValue !== undefined && sameShape(this.#spareValue, asIs)) {
        // The current array is lent (see holdValue): fill the one given back before.
        (this.#spareValue as Float64Array).set(asIs as Float64Array);
        stored = this.#spareValue;
        this.#spareValue = undefined;
      } else stored = asIs.slice();
    } else {
      const native = this.#codec.toNative(value, this.native, this.maxCount);
      stored = copy && native === value && ArrayBuffer.isView(native) ? native.slice() : native;
    }
    this.#ownsValue = stored !== value;
    this.#retainValue = this.#ownsValue ? undefined : options.retain;
    this.#store(stored, options);
  }

  /**
   * Lends the stored value array to a reader that keeps referring to it after this call (a
   * queued pvAccess message sends its bytes by reference): until `release`, a copying
   * {@link post} fills another array (a spare given back earlier, else a new one) instead of
   * overwriting this one. An array handed over by the caller (who may reuse it once replaced) is
   * lent only when the post gave a {@link PostOptions.retain}: `release` then gives that
   * reference back. Undefined otherwise (the reader copies then).
   */
  holdValue(): { value: NumericArray; release: () => void } | undefined {
    const value = this.#value;
    if (Array.isArray(value)) return undefined;
    const array = value as NumericArray;
    if (!this.#ownsValue) {
      const retain = this.#retainValue;
      return retain === undefined ? undefined : { value: array, release: retain() };
    }
    const release = holdCounted(this.#valueHolds, array, () => {
      if (array !== this.#value) this.#spareValue = array;
    });
    return { value: array, release };
  }

  /** `value` when {@link post} keeps its element type (see there), else undefined. */
  #storesAsIs(value: PvValue): NumericArray | undefined {
    if (!ArrayBuffer.isView(value) || value.length < STORE_AS_IS_MIN) return undefined;
    if (value.length > this.maxCount) return undefined; // toNative refuses it with its error
    const Native = NATIVE_ARRAYS[this.native];
    const exact = value instanceof Native || EXACT_WIDENINGS.get(Native)?.has(value.constructor);
    return exact ? value : undefined;
  }

  /** Stores an already converted value and notifies subscribers. */
  storeNative(value: NativeValue, options: PostOptions = {}): void {
    if (value.length > this.maxCount) {
      throw new Error(`PV ${this.name}: ${value.length} elements exceed maxCount ${this.maxCount}`);
    }
    // A write handler may still hold the decoded array: never convert into it later.
    this.#ownsValue = false;
    this.#retainValue = undefined;
    this.#store(value, options);
  }

  #store(value: NativeValue | NumericArray, options: PostOptions): void {
    const severity = options.severity ?? 0;
    const status = options.status ?? 0;
    let bits = DBE.VALUE | DBE.LOG;
    if (severity !== this.severity || status !== this.status) bits |= DBE.ALARM;
    this.#value = value;
    this.severity = severity;
    this.status = status;
    this.timestamp = options.timestamp ?? Date.now();
    this.version++;
    this.#notify(bits);
  }

  /** Merges display metadata and notifies DBE_PROPERTY subscribers. */
  setMetadata(metadata: PvMetadata): void {
    this.metadata = { ...this.metadata, ...metadata };
    this.version++;
    this.#notify(DBE.PROPERTY | DBE.VALUE);
  }

  #notify(bits: number): void {
    for (const sub of this.subscribers) {
      if ((sub.mask & bits) !== 0) sub.notify();
    }
  }

  /** Snapshot of the value channel. */
  snapshot(): DbrSnapshot {
    return {
      value: this.#value,
      native: this.native,
      timestamp: this.timestamp,
      severity: this.severity,
      status: this.status,
      metadata: this.metadata,
    };
  }

  /** The channel target for `field` (`VAL`, a served field, or `X$`), or undefined. */
  target(field: string): ChannelTarget | undefined {
    if (field === "VAL" || field === "") return this.#valTarget;
    let target = this.#targets.get(field);
    if (target) return target;
    if (field.endsWith("$")) {
      const base = this.target(field.slice(0, -1));
      if (!base || base.native !== "string" || base.maxCount !== 1) return undefined;
      target = new LongStringTarget(this, this.#codec, field, base);
    } else if ((SERVED_FIELDS as readonly string[]).includes(field)) {
      target = new FieldTarget(this, this.#codec, field);
    } else {
      return undefined;
    }
    this.#targets.set(field, target);
    return target;
  }

  /** Client write to VAL: checks control limits, runs the handler, stores the result. */
  async write(value: NativeValue, client: ClientInfo): Promise<void> {
    const limits = this.metadata.controlLimits;
    if (limits && !Array.isArray(value) && limits[0] < limits[1]) {
      for (const v of value as Exclude<NativeValue, string[]>) {
        if (v < limits[0] || v > limits[1]) {
          throw new WriteRefusedError(`value ${v} outside control limits`);
        }
      }
    }
    const handler = this.definition.onWrite;
    const result = handler ? await handler(value, client) : undefined;
    if (result === OWNER_POSTS) return;
    if (result !== undefined) this.post(result);
    else this.storeNative(value);
  }
}

abstract class BaseTarget implements ChannelTarget {
  abstract readonly native: NativeType;
  abstract readonly maxCount: number;
  abstract readonly writable: boolean;
  #cache: EncodeCache;

  constructor(
    readonly record: PvRecord,
    readonly codec: DbrCodec,
    readonly field: string,
  ) {
    this.#cache = new EncodeCache(record.retained);
  }

  abstract snapshot(): DbrSnapshot;

  length(): number {
    return this.snapshot().value.length;
  }

  encoded(type: number, count: number): Uint8Array {
    return this.#cache.get(
      this.record.version,
      type,
      count,
      (spare) =>
        this.codec.encode(
          type,
          count,
          this.snapshot(),
          spare(Math.ceil(this.codec.sizeN(type, count) / 8) * 8),
        ),
    );
  }

  hold(payload: Uint8Array): () => void {
    return this.#cache.hold(payload);
  }

  write(_value: NativeValue, _client: ClientInfo): Promise<void> {
    return Promise.reject(new WriteRefusedError(`${this.field} is read-only`));
  }

  enumLabels(): readonly string[] {
    return this.snapshot().metadata.enumLabels ?? [];
  }
}

class ValueTarget extends BaseTarget {
  readonly native: NativeType;
  readonly maxCount: number;
  readonly writable: boolean;

  constructor(record: PvRecord, codec: DbrCodec) {
    super(record, codec, "VAL");
    this.native = record.native;
    this.maxCount = record.maxCount;
    this.writable = record.definition.writable ?? false;
  }

  snapshot(): DbrSnapshot {
    return this.record.snapshot();
  }

  override length(): number {
    return this.record.length();
  }

  override write(value: NativeValue, client: ClientInfo): Promise<void> {
    return this.record.write(value, client);
  }
}

const FIELD_TYPES: Record<string, NativeType> = {
  RTYP: "string",
  DESC: "string",
  EGU: "string",
  NAME: "string",
  PREC: "short",
  SEVR: "enum",
  STAT: "enum",
  NELM: "long",
  NORD: "long",
};

class FieldTarget extends BaseTarget {
  readonly native: NativeType;
  readonly maxCount = 1;
  readonly writable = false;

  constructor(record: PvRecord, codec: DbrCodec, field: string) {
    super(record, codec, field);
    this.native = FIELD_TYPES[field] ?? "double";
  }

  #value(): NativeValue {
    const r = this.record;
    const m = r.metadata;
    const limit = (pair: readonly [number, number] | undefined, i: 0 | 1) =>
      Float64Array.of(pair ? pair[i] : 0);
    switch (this.field) {
      case "RTYP":
        return [m.recordType ?? defaultRecordType(r.definition)];
      case "DESC":
        return [(m.description ?? "").slice(0, MAX_STRING - 1)];
      case "EGU":
        return [(m.units ?? "").slice(0, MAX_STRING - 1)];
      case "NAME":
        return [r.name.slice(0, MAX_STRING - 1)];
      case "PREC":
        return Int16Array.of(m.precision ?? 0);
      case "SEVR":
        return Uint16Array.of(r.severity);
      case "STAT":
        return Uint16Array.of(r.status);
      case "NELM":
        return Int32Array.of(r.maxCount);
      case "NORD":
        return Int32Array.of(r.length());
      case "HOPR":
        return limit(m.displayLimits, 1);
      case "LOPR":
        return limit(m.displayLimits, 0);
      case "HIHI":
        return limit(m.alarmLimits, 1);
      case "LOLO":
        return limit(m.alarmLimits, 0);
      case "HIGH":
        return limit(m.warningLimits, 1);
      case "LOW":
        return limit(m.warningLimits, 0);
      case "DRVH":
        return limit(m.controlLimits, 1);
      case "DRVL":
        return limit(m.controlLimits, 0);
      default:
        return Float64Array.of(0);
    }
  }

  snapshot(): DbrSnapshot {
    const r = this.record;
    const labels = this.field === "SEVR"
      ? SEVERITY_LABELS
      : this.field === "STAT"
      ? STATUS_LABELS.slice(0, 16)
      : undefined;
    return {
      value: this.#value(),
      native: this.native,
      timestamp: r.timestamp,
      severity: r.severity,
      status: r.status,
      metadata: { enumLabels: labels, recordType: r.metadata.recordType },
    };
  }
}

/** `FIELD$`: a string field served as a CHAR array of 40 bytes (NUL-terminated text). */
class LongStringTarget extends BaseTarget {
  readonly native: NativeType = "char";
  readonly maxCount = MAX_STRING;
  readonly writable: boolean;

  constructor(record: PvRecord, codec: DbrCodec, field: string, readonly base: ChannelTarget) {
    super(record, codec, field);
    this.writable = base.writable;
  }

  snapshot(): DbrSnapshot {
    const s = this.base.snapshot();
    const text = String((s.value as string[])[0] ?? "").slice(0, MAX_STRING - 1);
    const bytes = new Uint8Array(text.length + 1);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
    return { ...s, value: bytes, native: "char", metadata: {} };
  }

  override write(value: NativeValue, client: ClientInfo): Promise<void> {
    const bytes = value as Uint8Array;
    const end = bytes.indexOf(0);
    const text = String.fromCharCode(...(end < 0 ? bytes : bytes.subarray(0, end)));
    return this.base.write([text], client);
  }
}

/** Splits `name` into a record name and field (`PV`, `PV.VAL`, `PV.`, `PV.EGU`, `PV.DESC$`). */
export function splitChannelName(name: string): { record: string; field: string }[] {
  const out = [{ record: name, field: "VAL" }];
  const dot = name.lastIndexOf(".");
  if (dot > 0) {
    const field = name.slice(dot + 1);
    if (/^[A-Z0-9]{0,4}\$?$/.test(field)) {
      out.push({ record: name.slice(0, dot), field: field === "" ? "VAL" : field });
    }
  } else if (name.endsWith("$")) {
    out.push({ record: name.slice(0, -1), field: "VAL$" });
  }
  return out;
}

/** All records of one server, in insertion order. */
export class PvStore {
  #records = new Map<string, PvRecord>();
  #codec: DbrCodec;
  /** Superseded payloads still held by slow writers, over all records. */
  readonly retained = new RetainedMemory();

  constructor(codec: DbrCodec) {
    this.#codec = codec;
  }

  /** Adds a record; throws if the name is taken or invalid. */
  add(definition: PvDefinition): PvRecord {
    if (this.#records.has(definition.name)) {
      throw new Error(`PV ${definition.name} already exists`);
    }
    const record = new PvRecord(definition, this.#codec, this.retained);
    this.#records.set(record.name, record);
    return record;
  }

  /** Removes a record and disconnects every channel on it. */
  remove(name: string): boolean {
    const record = this.#records.get(name);
    if (!record) return false;
    this.#records.delete(name);
    for (const holder of [...record.holders]) holder.disconnect();
    record.holders.clear();
    record.subscribers.clear();
    return true;
  }

  /** Looks up a record. */
  get(name: string): PvRecord | undefined {
    return this.#records.get(name);
  }

  /** Record names in insertion order. */
  names(): string[] {
    return [...this.#records.keys()];
  }

  /** Resolves a channel name (with optional `.FIELD` / `$`). */
  resolve(name: string): ChannelTarget | undefined {
    for (const { record, field } of splitChannelName(name)) {
      const r = this.#records.get(record);
      const target = r?.target(field);
      if (target) return target;
    }
    return undefined;
  }
}

/** ECA code for a refused write. */
export const WRITE_REFUSED_ECA = ECA.PUTFAIL;
