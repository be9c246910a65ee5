/**
 * A tiny DBR codec for circuit-level tests (plain and TIME families of LONG/DOUBLE/STRING only),
 * independent of `ca/dbr.ts`, so circuit tests check the server core and not the codec.
 *
 * @module
 */

import type { DbrCodec, DbrSnapshot } from "../../ca/codec.ts";
import type { NativeType, NativeValue, PvValue } from "../../ca/pv.ts";

const ELEMENT = [40, 2, 4, 2, 1, 4, 8];
const TIME_OFFSET = [12, 14, 12, 14, 15, 12, 16];

/** Error with an ECA code (as the real codec throws). */
export class StubEcaError extends Error {
  constructor(readonly eca: number, message: string) {
    super(message);
  }
}

function offsetOf(type: number): number {
  if (type <= 6) return 0;
  if (type >= 14 && type <= 20) return TIME_OFFSET[type - 14];
  throw new StubEcaError(114, `stub codec: type ${type}`);
}

/** `dbr_size_n` of the supported types. */
export function stubSizeN(type: number, count: number): number {
  const base = type % 7;
  return offsetOf(type) + ELEMENT[base] * count;
}

/** Number of encode calls (to check encode sharing). */
export const stubStats = { encodes: 0 };

/** The stub codec. */
export const stubCodec: DbrCodec = {
  isReadable: (type) => type >= 0 && type <= 20 && !(type >= 7 && type <= 13),
  isWritable: (type) => type >= 0 && type <= 6,
  sizeN: (type, count) => stubSizeN(type, count),
  encode(type: number, count: number, snap: DbrSnapshot): Uint8Array {
    stubStats.encodes++;
    const size = stubSizeN(type, count);
    const out = new Uint8Array(Math.ceil(size / 8) * 8);
    const view = new DataView(out.buffer);
    const offset = offsetOf(type);
    if (type >= 14) {
      view.setInt16(0, snap.status);
      view.setInt16(2, snap.severity);
      view.setUint32(4, Math.floor(snap.timestamp / 1000) - 631152000);
    }
    const base = type % 7;
    const n = Math.min(count, snap.value.length);
    for (let i = 0; i < n; i++) {
      const v = snap.value[i];
      const pos = offset + i * ELEMENT[base];
      if (base === 0) {
        const s = String(v);
        for (let k = 0; k < Math.min(s.length, 39); k++) out[pos + k] = s.charCodeAt(k);
      } else if (base === 5) view.setInt32(pos, Number(v));
      else if (base === 6) view.setFloat64(pos, Number(v));
      else if (base === 1) view.setInt16(pos, Number(v));
      else if (base === 3) view.setUint16(pos, Number(v));
      else if (base === 4) out[pos] = Number(v);
      else view.setFloat32(pos, Number(v));
    }
    return out;
  },
  decodeWrite(type, count, payload, native): NativeValue {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
    if (payload.length < stubSizeN(type, count) && !(type === 0 && payload.includes(0))) {
      throw new StubEcaError(160, "short payload");
    }
    const numbers: number[] = [];
    for (let i = 0; i < count; i++) {
      if (type === 0) {
        const slot = payload.subarray(i * 40, i * 40 + 40);
        const end = slot.indexOf(0);
        const text = String.fromCharCode(...slot.subarray(0, end < 0 ? slot.length : end));
        if (native === "string") return [text];
        const x = Number(text);
        if (Number.isNaN(x)) throw new StubEcaError(160, "not a number");
        numbers.push(x);
      } else if (type === 5) numbers.push(view.getInt32(i * 4));
      else if (type === 6) numbers.push(view.getFloat64(i * 8));
      else if (type === 1) numbers.push(view.getInt16(i * 2));
      else throw new StubEcaError(114, "stub codec write type");
    }
    return stubToNative(numbers, native, count);
  },
  toNative: (value, native, maxCount) => stubToNative(value, native, maxCount),
};

function stubToNative(value: PvValue, native: NativeType, maxCount: number): NativeValue {
  const list: (number | string)[] = typeof value === "number" || typeof value === "string"
    ? [value]
    : Array.from(value as ArrayLike<number | string>);
  if (list.length > maxCount) throw new RangeError("too many elements");
  switch (native) {
    case "string":
      return list.map(String);
    case "double":
      return Float64Array.from(list, Number);
    case "long":
      return Int32Array.from(list, Number);
    case "short":
      return Int16Array.from(list, Number);
    case "float":
      return Float32Array.from(list, Number);
    case "enum":
      return Uint16Array.from(list, Number);
    case "char":
      return Uint8Array.from(list, Number);
  }
}
