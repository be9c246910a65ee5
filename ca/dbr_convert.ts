/**
 * Value conversions of the DBR codec, following rsrv/dbConvert: C-style numeric casts between the
 * seven DBR value types, number → string formatting (`cvtDoubleToString`), string → number
 * parsing, enum labels, Latin-1 text, and normalisation of posted values to the native form.
 *
 * @module
 */

import { NATIVE_TYPE_CODES, type NativeType, type NativeValue, type PvValue } from "./pv.ts";
import { DBR, DbrError, ECA } from "./dbr_types.ts";
import type { DbrNumericArray } from "./dbr_swap.ts";
import { printfExponential, printfFixed } from "./dbr_printf.ts";

/** Typed-array constructors of the numeric DBR value types. */
export type DbrArrayCtor =
  | Int16ArrayConstructor
  | Float32ArrayConstructor
  | Uint16ArrayConstructor
  | Uint8ArrayConstructor
  | Int32ArrayConstructor
  | Float64ArrayConstructor;

const CTORS: readonly (DbrArrayCtor | undefined)[] = [
  undefined,
  Int16Array,
  Float32Array,
  Uint16Array,
  Uint8Array,
  Int32Array,
  Float64Array,
];

/** Typed-array constructor of a numeric value type 1..6 (throws for STRING). */
export function arrayCtorOf(base: number): DbrArrayCtor {
  const ctor = CTORS[base];
  if (!ctor) throw new DbrError(ECA.INTERNAL, `value type ${base} has no typed array`);
  return ctor;
}

/** Value type code 0..6 of a native type. */
export function nativeCode(native: NativeType): number {
  const code = NATIVE_TYPE_CODES[native];
  if (code === undefined) throw new DbrError(ECA.BADTYPE, `unknown native type ${String(native)}`);
  return code;
}

/** Whether value type `base` is FLOAT or DOUBLE. */
export function isFloatBase(base: number): boolean {
  return base === DBR.FLOAT || base === DBR.DOUBLE;
}

/** Largest finite float32. */
export const FLT_MAX = 3.4028234663852886e38;

/** Inclusive value range of the integer value types (CHAR accepts signed and unsigned bytes). */
const INT_RANGE: Readonly<Record<number, readonly [number, number]>> = {
  [DBR.SHORT]: [-32768, 32767],
  [DBR.ENUM]: [0, 65535],
  [DBR.CHAR]: [-128, 255],
  [DBR.LONG]: [-2147483648, 2147483647],
};

// ---------------------------------------------------------------------------------------------
// Latin-1 text in fixed-size slots

/** Decodes Latin-1 bytes `[start, start + maxLen)` of `bytes` up to the first NUL. */
export function latin1Decode(bytes: Uint8Array, start: number, maxLen: number): string {
  const end = Math.min(bytes.length, start + maxLen);
  let stop = start;
  while (stop < end && bytes[stop] !== 0) stop++;
  if (stop - start <= 64) {
    let text = "";
    for (let i = start; i < stop; i++) text += String.fromCharCode(bytes[i]);
    return text;
  }
  const parts: string[] = [];
  for (let i = start; i < stop; i += 8192) {
    parts.push(String.fromCharCode(...bytes.subarray(i, Math.min(stop, i + 8192))));
  }
  return parts.join("");
}

/**
 * Writes `text` as Latin-1 at `pos`, at most `slot - 1` characters so a NUL always follows
 * (the slot is assumed zero-filled). Characters above U+00FF become `?`.
 */
export function latin1Encode(dst: Uint8Array, pos: number, text: string, slot: number): void {
  const n = Math.min(text.length, slot - 1);
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    dst[pos + i] = c > 0xff ? 0x3f : c;
  }
}

/** Text of a CHAR array holding a long string (`$` channels, `caput -S`): bytes up to the first NUL. */
export function charArrayToString(bytes: Uint8Array): string {
  return latin1Decode(bytes, 0, bytes.length);
}

/** CHAR array for a long string: Latin-1 text plus a NUL, cut to `capacity` bytes (NUL kept). */
export function stringToCharArray(text: string, capacity: number): Uint8Array {
  const n = Math.max(0, Math.min(text.length, capacity - 1));
  const out = new Uint8Array(n + 1);
  latin1Encode(out, 0, text, n + 1);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Number → string (rsrv cvtDoubleToString)

const FRAC_MULTIPLIER = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000];

/**
 * Formats a DOUBLE value as rsrv does for DBR_STRING reads (libCom `cvtDoubleToString`, P =
 * precision, default 6): |v| ≤ 1e7 and P ≤ 8 → fixed point with P decimals (cvtFast rounding);
 * 1e7 < |v| ≤ 1e16 and P ≤ 8 → `%.{min(P,3)}f`; otherwise `%{P+7}.{min(P,17)}e`.
 */
export function formatFloat(value: number, precision = 6): string {
  let p = Math.trunc(precision);
  if (!(p >= 0)) p = 0;
  if (Number.isNaN(value) || p > 8 || value > 1e7 || value < -1e7) {
    if (p > 8 || value > 1e16 || value < -1e16) {
      p = Math.min(p, 17);
      return printfExponential(value, p).padStart(p + 7);
    }
    return printfFixed(value, Math.min(p, 3));
  }
  return cvtFastFixed(value, p);
}

/**
 * Formats a FLOAT value as rsrv does (libCom `cvtFloatToString`, which differs from the double
 * rule): |v| ≤ 1e7 and P ≤ 8 → fixed point; 1e7 < |v| < 1e8 and P ≤ 8 → `%.{min(P,3)}f`;
 * otherwise `%{P+6}.{min(P,12)}e`.
 */
export function formatFloat32(value: number, precision = 6): string {
  let p = Math.trunc(precision);
  if (!(p >= 0)) p = 0;
  if (Number.isNaN(value) || p > 8 || value > 1e7 || value < -1e7) {
    if (p > 8 || value >= 1e8 || value <= -1e8) {
      p = Math.min(p, 12);
      return printfExponential(value, p).padStart(p + 6);
    }
    return printfFixed(value, Math.min(p, 3));
  }
  return cvtFastFixed(value, p, true);
}

/**
 * cvtFast's own fixed-point conversion (|v| ≤ 1e7, 0 ≤ p ≤ 8): truncate, then round; the float
 * variant computes the fraction in float32 arithmetic as the C code does.
 */
function cvtFastFixed(value: number, p: number, single = false): string {
  let text = "";
  let v = value;
  if (v < 0) {
    text = "-";
    v = -v;
  }
  let whole = Math.trunc(v);
  const fplace = FRAC_MULTIPLIER[p];
  let fraction = single
    ? Math.trunc(Math.fround(Math.fround(Math.fround(v - whole) * fplace) * 10))
    : Math.trunc((v - whole) * fplace * 10);
  fraction = Math.trunc((fraction + 5) / 10);
  if (fraction / fplace >= 1) {
    whole++;
    fraction -= fplace;
  }
  text += String(whole);
  if (p > 0) text += "." + String(fraction).padStart(p, "0");
  return text;
}

/**
 * Formats element `x` of value type `base` for a DBR_STRING read: floats with
 * {@link formatFloat}, integers in decimal, enum indexes as their label when one exists.
 */
export function formatElement(
  x: number,
  base: number,
  precision: number | undefined,
  enumLabels: readonly string[] | undefined,
): string {
  if (base === DBR.DOUBLE) return formatFloat(x, precision ?? 6);
  if (base === DBR.FLOAT) return formatFloat32(x, precision ?? 6);
  if (base === DBR.ENUM && enumLabels !== undefined && x < enumLabels.length) {
    return enumLabels[x];
  }
  return String(x);
}

// ---------------------------------------------------------------------------------------------
// String → number

const FLOAT_PREFIX =
  /^[ \t\n\v\f\r]*([+-]?)(?:0[xX]([0-9a-fA-F]+)|((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(inf(?:inity)?)|(nan))/i;

/**
 * strtod-like parse: leading whitespace skipped, trailing text ignored; decimal, hex integers
 * (`0x1f`), `inf`/`infinity`/`nan`. Returns undefined when no number starts the text.
 */
export function parseFloatPrefix(text: string): number | undefined {
  const m = FLOAT_PREFIX.exec(text);
  if (!m) return undefined;
  const sign = m[1] === "-" ? -1 : 1;
  if (m[2] !== undefined) return sign * parseInt(m[2], 16);
  if (m[3] !== undefined) return sign * Number(m[3]);
  if (m[4] !== undefined) return sign * Infinity;
  return NaN;
}

const C_SPACE = "[ \\t\\n\\v\\f\\r]*";
const WHOLE_FLOAT = new RegExp(
  `^${C_SPACE}([+-]?)(?:0[xX]([0-9a-fA-F]+)|((?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?)|` +
    `(inf(?:inity)?)|(nan(?:\\([^)]*\\))?))${C_SPACE}$`,
  "i",
);
const WHOLE_INT = new RegExp(`^${C_SPACE}([+-]?\\d+)${C_SPACE}$`);

/**
 * Parses a whole written string as a floating-point number the way EPICS's `epicsParseDouble`
 * does without a units pointer: white space around the number is allowed, anything else after
 * it is refused (`"1,5"`, `"2abc"`, `"1e"`). Like `epicsStrtod`, `0x10` reads as the hex
 * integer 16, and `inf`, `infinity`, `nan` are accepted; a decimal that overflows a double
 * (`1e400`) is refused. Undefined when the text is not such a number.
 */
export function parseWholeFloat(text: string): number | undefined {
  const m = WHOLE_FLOAT.exec(text);
  if (!m) return undefined;
  const sign = m[1] === "-" ? -1 : 1;
  if (m[2] !== undefined) return sign * parseInt(m[2], 16);
  if (m[3] !== undefined) {
    const v = Number(m[3]);
    return Number.isFinite(v) ? sign * v : undefined;
  }
  if (m[4] !== undefined) return sign * Infinity;
  return NaN;
}

/**
 * Parses a whole written string as a base-10 integer (`epicsParseLong(str, &v, 10, NULL)`):
 * white space around it allowed, nothing else (`"1.9"`, `"0x10"`, `"1,5"` are refused).
 */
export function parseWholeInteger(text: string): number | undefined {
  const m = WHOLE_INT.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Converts a string to the number a read of a STRING PV as a numeric type gives (strtod; empty or
 * blank string → 0). Throws DbrError(GETFAIL) for text that is not a number.
 */
export function stringToReadNumber(text: string): number {
  if (text.trim() === "") return 0;
  const v = parseFloatPrefix(text);
  if (v === undefined) {
    throw new DbrError(ECA.GETFAIL, `cannot convert string "${text}" to a number`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Numeric casts (read path: C casts)

/**
 * C cast of the first `n` elements of `src` to value type `base`: float → int truncates toward
 * zero, int narrowing keeps the low bits, double → float saturates at ±FLT_MAX. Returns `src`
 * itself when it already has the target element type (one typed-array copy otherwise).
 */
export function castArray(src: DbrNumericArray, n: number, base: number): DbrNumericArray {
  const ctor = arrayCtorOf(base);
  const part = n < src.length ? src.subarray(0, n) : src;
  if (part instanceof ctor) return part;
  const out = new ctor(part);
  if (base === DBR.FLOAT && part instanceof Float64Array) {
    saturateFloat32(part, out as Float32Array);
  }
  return out;
}

/** Replaces ±Infinity in `out` with ±FLT_MAX where the double source was finite. */
function saturateFloat32(src: Float64Array, out: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const y = out[i];
    if ((y === Infinity || y === -Infinity) && Number.isFinite(src[i])) {
      out[i] = y > 0 ? FLT_MAX : -FLT_MAX;
    }
  }
}

/** C cast of one number to value type `base` (same rules as {@link castArray}). */
export function castScalar(x: number, base: number): number {
  switch (base) {
    case DBR.SHORT:
      return (x << 16) >> 16;
    case DBR.ENUM:
      return (x | 0) & 0xffff;
    case DBR.CHAR:
      return (x | 0) & 0xff;
    case DBR.LONG:
      return x | 0;
    case DBR.FLOAT: {
      if (x > FLT_MAX && x !== Infinity) return FLT_MAX;
      if (x < -FLT_MAX && x !== -Infinity) return -FLT_MAX;
      return Math.fround(x);
    }
    default:
      return x;
  }
}

// ---------------------------------------------------------------------------------------------
// Write path: client value → native (strict: refuses what cannot be stored)

function putFail(message: string): never {
  throw new DbrError(ECA.PUTFAIL, message);
}

/** Range of valid enum indexes: labels given → [0, no_str), none → any u16. */
function enumLimit(enumLabels: readonly string[] | undefined): number {
  return enumLabels !== undefined && enumLabels.length > 0 ? enumLabels.length : 65536;
}

/**
 * Converts a written numeric array (value type `srcBase`) to the native value type `native`.
 * Integers narrow by C cast; floats into integer natives must be finite and in range; enum
 * indexes must be below the number of labels (when labels exist).
 */
export function convertWrittenNumbers(
  src: DbrNumericArray,
  srcBase: number,
  native: number,
  enumLabels?: readonly string[],
): NativeValue {
  if (native === DBR.STRING) {
    const out: string[] = new Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = formatElement(src[i], srcBase, 6, undefined);
    return out;
  }
  if (isFloatBase(srcBase) && !isFloatBase(native)) {
    const [lo, hi] = INT_RANGE[native];
    const top = native === DBR.ENUM ? enumLimit(enumLabels) - 1 : hi;
    for (let i = 0; i < src.length; i++) {
      const t = Math.trunc(src[i]);
      if (!(t >= lo && t <= top)) {
        putFail(`value ${src[i]} cannot be stored in a ${nativeName(native)} field`);
      }
    }
  }
  const out = castArray(src, src.length, native) as Exclude<NativeValue, string[]>;
  if (native === DBR.ENUM && !isFloatBase(srcBase)) {
    const limit = enumLimit(enumLabels);
    if (limit < 65536) {
      for (let i = 0; i < out.length; i++) {
        if (out[i] >= limit) putFail(`enum index ${out[i]} out of range (${limit} states)`);
      }
    }
  }
  return out;
}

function nativeName(code: number): string {
  return ["STRING", "SHORT", "FLOAT", "ENUM", "CHAR", "LONG", "DOUBLE"][code] ?? String(code);
}

/** Parses one written string for an integer native (SHORT/CHAR/LONG), range-checked. */
function parseWrittenInteger(text: string, native: number): number {
  const v = parseWholeInteger(text);
  if (v === undefined) putFail(`"${text}" is not an integer`);
  const [lo, hi] = INT_RANGE[native];
  if (v < lo || v > hi) putFail(`${v} is out of range for a ${nativeName(native)} field`);
  return v;
}

/**
 * Resolves a written string to an enum index: exact label match first, then a base-10 index below
 * the number of labels (any u16 when the PV has no labels).
 */
export function parseEnumString(text: string, enumLabels: readonly string[] | undefined): number {
  if (enumLabels !== undefined) {
    const i = enumLabels.indexOf(text);
    if (i >= 0) return i;
  }
  const v = parseWholeInteger(text);
  if (v === undefined) putFail(`"${text}" is not a state of this enum`);
  const limit = enumLimit(enumLabels);
  if (v < 0 || v >= limit) putFail(`enum index ${v} out of range (${limit} states)`);
  return v;
}

/** Converts written strings (DBR_STRING elements) to the native value type. */
export function convertWrittenStrings(
  texts: string[],
  native: number,
  enumLabels?: readonly string[],
): NativeValue {
  if (native === DBR.STRING) return texts;
  const out = new (arrayCtorOf(native))(texts.length);
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i];
    if (native === DBR.ENUM) {
      out[i] = parseEnumString(text, enumLabels);
    } else if (isFloatBase(native)) {
      const v = parseWholeFloat(text);
      if (v === undefined) putFail(`"${text}" is not a number`);
      out[i] = castScalar(v, native);
    } else {
      out[i] = parseWrittenInteger(text, native);
    }
  }
  return out as NativeValue;
}

// ---------------------------------------------------------------------------------------------
// Program side: posted value → native

function isTypedArray(value: unknown): value is DbrNumericArray | Int8Array | Uint32Array {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

/** Converts one posted element (number or string) to a number of value type `code`. */
function postedToNumber(
  x: number | string,
  code: number,
  enumLabels: readonly string[] | undefined,
): number {
  if (typeof x === "number") return x;
  if (code === DBR.ENUM) {
    const i = enumLabels?.indexOf(x) ?? -1;
    if (i >= 0) return i;
  }
  const v = parseFloatPrefix(x);
  if (v === undefined) throw new DbrError(ECA.PUTFAIL, `cannot convert "${x}" to a number`);
  return v;
}

/**
 * Normalises a posted value to the stored native form: a typed array of the native element type
 * is returned as is (no copy); other typed arrays are converted with one typed-array copy
 * (C-cast semantics, double → float saturating); numbers/strings/arrays become a new typed array
 * (or `string[]` for STRING). Strings for numeric natives are parsed (enum: label first).
 * Throws RangeError when the value has more than `maxCount` elements, DbrError(PUTFAIL) for a
 * string that is not a number.
 */
export function toNativeValue(
  value: PvValue,
  native: NativeType,
  maxCount: number,
  enumLabels?: readonly string[],
): NativeValue {
  const code = nativeCode(native);
  const length = typeof value === "number" || typeof value === "string" ? 1 : value.length;
  if (length > maxCount) {
    throw new RangeError(`value has ${length} elements, capacity is ${maxCount}`);
  }
  if (code === DBR.STRING) {
    if (typeof value === "string") return [value];
    if (typeof value === "number") return [String(value)];
    return Array.from(value as ArrayLike<number | string>, (x) => String(x));
  }
  const ctor = arrayCtorOf(code);
  if (isTypedArray(value)) {
    if (value instanceof ctor) return value as NativeValue;
    const out = new ctor(value);
    if (code === DBR.FLOAT && value instanceof Float64Array) {
      saturateFloat32(value, out as Float32Array);
    }
    return out as NativeValue;
  }
  if (typeof value === "number") return ctor.of(castScalar(value, code)) as NativeValue;
  if (typeof value === "string") {
    return ctor.of(castScalar(postedToNumber(value, code, enumLabels), code)) as NativeValue;
  }
  const items = value as readonly (number | string)[];
  const out = new ctor(items.length);
  for (let i = 0; i < items.length; i++) {
    out[i] = castScalar(postedToNumber(items[i], code, enumLabels), code);
  }
  return out as NativeValue;
}
