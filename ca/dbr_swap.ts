/**
 * Big-endian (network order) copies of typed arrays into and out of byte buffers: the hot path
 * of image-sized DBR payloads.
 *
 * Measured on V8 (Deno 2.9, see scripts/bench/dbr_encode.ts): DataView `setInt32`/`setFloat64`/
 * `getInt32`/`getFloat64` loops, each building its own DataView, compile to byte-swapping
 * loads/stores and beat swapping through Int32Array views with shifts once optimised (5.2 vs
 * 3.7 GB/s for 32-bit, 9.6 vs 3.3 GB/s for 64-bit); they also handle unaligned offsets at full
 * speed, so no aligned temporary is needed. 16-bit data is faster swapped two elements at a time
 * through an Int32Array view (5.3 vs 2.5 GB/s, when 4-byte aligned). 32-bit floats are moved as
 * their bit patterns.
 *
 * Large arrays (at least {@link WASM_MIN_BYTES}) go through a WebAssembly SIMD swapper instead
 * (`dbr_swap_wasm.ts`: per 128 KiB chunk, memcpy in, `i8x16.shuffle`, memcpy out), 1.3–3.4x
 * faster than the DataView loops on 2–4 MiB arrays (see scripts/bench/dbr_swap.ts). Without
 * WebAssembly SIMD, or for data beyond its bounded memory, the DataView loops remain the path.
 *
 * @module
 */

import { DBR } from "./dbr_types.ts";
import { createWasmSwapper, type WasmSwapper } from "./dbr_swap_wasm.ts";

/** Typed arrays holding DBR value elements (numeric base types). */
export type DbrNumericArray =
  | Int8Array
  | Int16Array
  | Uint16Array
  | Float32Array
  | Uint8Array
  | Int32Array
  | Uint32Array
  | Float64Array;

/** Whether this host stores numbers little-endian (then CA data must be byte-swapped). */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Byte count from which the WebAssembly swapper is used (below it, the JS loops win). */
export const WASM_MIN_BYTES = 4096;

const wasmSwapper: WasmSwapper | undefined = HOST_IS_LITTLE_ENDIAN
  ? createWasmSwapper()
  : undefined;
let wasm: WasmSwapper | undefined = wasmSwapper;

/**
 * Enables or disables the WebAssembly SIMD path (tests and benchmarks force the JS fallback with
 * `false`). Returns whether the WebAssembly path is now in use (false if it could not load).
 */
export function useWasmSwap(enabled: boolean): boolean {
  wasm = enabled ? wasmSwapper : undefined;
  return wasm !== undefined;
}

// Each loop builds its own DataView: V8 then optimises the view accesses much better than for a
// DataView passed in (measured ~1.5x for 32-bit stores).

function write32(buffer: ArrayBufferLike, at: number, src: Int32Array, n: number): void {
  const view = new DataView(buffer, at, 4 * n);
  for (let i = 0; i < n; i++) view.setInt32(4 * i, src[i]);
}

function write64(buffer: ArrayBufferLike, at: number, src: Float64Array, n: number): void {
  const view = new DataView(buffer, at, 8 * n);
  for (let i = 0; i < n; i++) view.setFloat64(8 * i, src[i]);
}

function write16(buffer: ArrayBufferLike, at: number, src: Uint16Array, n: number): void {
  const view = new DataView(buffer, at, 2 * n);
  for (let i = 0; i < n; i++) view.setUint16(2 * i, src[i]);
}

/** Swaps pairs of 16-bit elements in 32-bit words: `n` elements, `dst` 4-byte aligned. */
function write16Words(dst: Int32Array, src: Int32Array, words: number): void {
  for (let i = 0; i < words; i++) {
    const x = src[i];
    dst[i] = ((x & 0x00ff00ff) << 8) | ((x >>> 8) & 0x00ff00ff);
  }
}

/**
 * Writes the first `n` elements of `src` big-endian into `dst` starting at byte `pos`.
 * `n` must not exceed `src.length` and the bytes must fit in `dst`.
 */
export function writeBigEndian(
  dst: Uint8Array,
  pos: number,
  src: DbrNumericArray,
  n: number,
): void {
  if (n <= 0) return;
  const size = src.BYTES_PER_ELEMENT;
  if (size === 1 || !HOST_IS_LITTLE_ENDIAN) {
    dst.set(new Uint8Array(src.buffer, src.byteOffset, n * size), pos);
    return;
  }
  const bytes = n * size;
  if (wasm !== undefined && bytes >= WASM_MIN_BYTES) {
    const from = new Uint8Array(src.buffer, src.byteOffset, bytes);
    if (wasm.swapInto(from, size as 2 | 4 | 8, dst, pos)) return;
  }
  const at = dst.byteOffset + pos;
  if (size === 8) {
    write64(dst.buffer, at, src as Float64Array, n);
  } else if (size === 4) {
    write32(dst.buffer, at, new Int32Array(src.buffer, src.byteOffset, n), n);
  } else if (at % 4 === 0 && src.byteOffset % 4 === 0) {
    const words = n >> 1;
    write16Words(
      new Int32Array(dst.buffer, at, words),
      new Int32Array(src.buffer, src.byteOffset, words),
      words,
    );
    if (n & 1) {
      const last = src[n - 1] & 0xffff;
      dst[pos + 2 * n - 2] = last >>> 8;
      dst[pos + 2 * n - 1] = last & 0xff;
    }
  } else {
    write16(dst.buffer, at, new Uint16Array(src.buffer, src.byteOffset, n), n);
  }
}

const { SHORT, FLOAT, ENUM, CHAR, LONG, DOUBLE } = DBR;
const FLT_MAX = 3.4028234663852886e38;

function convertToDouble(
  buffer: ArrayBufferLike,
  at: number,
  src: DbrNumericArray,
  n: number,
): void {
  const view = new DataView(buffer, at, 8 * n);
  // One loop per common source type: each loop's element loads stay monomorphic (a single shared
  // loop over all source types ran at ~1 GB/s, these at ~9 GB/s).
  if (src instanceof Int32Array) {
    for (let i = 0; i < n; i++) view.setFloat64(8 * i, src[i]);
  } else if (src instanceof Uint32Array) {
    for (let i = 0; i < n; i++) view.setFloat64(8 * i, src[i]);
  } else if (src instanceof Float32Array) {
    for (let i = 0; i < n; i++) view.setFloat64(8 * i, src[i]);
  } else {
    for (let i = 0; i < n; i++) view.setFloat64(8 * i, src[i]);
  }
}

function convertToFloat(
  buffer: ArrayBufferLike,
  at: number,
  src: DbrNumericArray,
  n: number,
): void {
  const view = new DataView(buffer, at, 4 * n);
  if (src instanceof Float64Array) {
    for (let i = 0; i < n; i++) {
      const x = src[i];
      const saturated = x > FLT_MAX && x !== Infinity
        ? FLT_MAX
        : x < -FLT_MAX && x !== -Infinity
        ? -FLT_MAX
        : x;
      view.setFloat32(4 * i, saturated);
    }
  } else {
    for (let i = 0; i < n; i++) view.setFloat32(4 * i, src[i]);
  }
}

function convertToLong(buffer: ArrayBufferLike, at: number, src: DbrNumericArray, n: number): void {
  const view = new DataView(buffer, at, 4 * n);
  for (let i = 0; i < n; i++) view.setInt32(4 * i, src[i]);
}

function convertToShort(
  buffer: ArrayBufferLike,
  at: number,
  src: DbrNumericArray,
  n: number,
): void {
  const view = new DataView(buffer, at, 2 * n);
  for (let i = 0; i < n; i++) view.setInt16(2 * i, src[i]);
}

function convertToEnum(buffer: ArrayBufferLike, at: number, src: DbrNumericArray, n: number): void {
  const view = new DataView(buffer, at, 2 * n);
  for (let i = 0; i < n; i++) view.setUint16(2 * i, src[i]);
}

/**
 * Writes the first `n` elements of `src` big-endian as value type `base` (DBR 1..6) at byte
 * `pos` of `dst`, converting in the same pass with C-cast semantics (float → int truncates toward
 * zero, integers keep the low bits, double → float saturates at ±FLT_MAX): no temporary array.
 */
export function writeConverted(
  dst: Uint8Array,
  pos: number,
  src: DbrNumericArray,
  n: number,
  base: number,
): void {
  if (n <= 0) return;
  if (base === CHAR) {
    dst.subarray(pos, pos + n).set(src.length === n ? src : src.subarray(0, n));
    return;
  }
  if (base === DOUBLE && wasm !== undefined && 8 * n >= WASM_MIN_BYTES) {
    const kind = src instanceof Int32Array
      ? "i32"
      : src instanceof Uint32Array
      ? "u32"
      : src instanceof Float32Array
      ? "f32"
      : undefined;
    if (kind !== undefined) {
      const from = new Uint8Array(src.buffer, src.byteOffset, 4 * n);
      if (wasm.widenInto(from, n, kind, dst, pos)) return;
    }
  }
  const at = dst.byteOffset + pos;
  if (base === SHORT) convertToShort(dst.buffer, at, src, n);
  else if (base === FLOAT) convertToFloat(dst.buffer, at, src, n);
  else if (base === ENUM) convertToEnum(dst.buffer, at, src, n);
  else if (base === LONG) convertToLong(dst.buffer, at, src, n);
  else convertToDouble(dst.buffer, at, src, n);
}

function read16(buffer: ArrayBufferLike, at: number, out: Uint16Array, n: number): void {
  const view = new DataView(buffer, at, 2 * n);
  for (let i = 0; i < n; i++) out[i] = view.getUint16(2 * i);
}

function read32(buffer: ArrayBufferLike, at: number, out: Int32Array, n: number): void {
  const view = new DataView(buffer, at, 4 * n);
  for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i);
}

function read64(buffer: ArrayBufferLike, at: number, out: Float64Array, n: number): void {
  const view = new DataView(buffer, at, 8 * n);
  for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i);
}

type NumericCtor =
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Float32ArrayConstructor
  | Uint8ArrayConstructor
  | Int32ArrayConstructor
  | Float64ArrayConstructor;

/**
 * Reads `n` big-endian elements starting at byte `pos` of `src` into a fresh native-endian typed
 * array made by `ctor`. The caller checks that the bytes exist.
 */
export function readBigEndian<C extends NumericCtor>(
  ctor: C,
  src: Uint8Array,
  pos: number,
  n: number,
): InstanceType<C> {
  const size = ctor.BYTES_PER_ELEMENT;
  const out = new ctor(n) as InstanceType<C>;
  if (n <= 0) return out;
  if (size === 1 || !HOST_IS_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer, 0, n * size).set(src.subarray(pos, pos + n * size));
    return out;
  }
  const bytes = n * size;
  if (wasm !== undefined && bytes >= WASM_MIN_BYTES) {
    const from = src.subarray(pos, pos + bytes);
    if (wasm.swapInto(from, size as 2 | 4 | 8, new Uint8Array(out.buffer, 0, bytes), 0)) return out;
  }
  const at = src.byteOffset + pos;
  if (size === 8) read64(src.buffer, at, out as Float64Array, n);
  else if (size === 4) read32(src.buffer, at, new Int32Array(out.buffer), n);
  else read16(src.buffer, at, new Uint16Array(out.buffer), n);
  return out;
}
