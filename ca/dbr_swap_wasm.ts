/**
 * Optional WebAssembly SIMD byte swapper for large DBR arrays (used by `dbr_swap.ts`).
 *
 * A tiny module, assembled at load from the bytes below, owns one linear memory. The caller copies
 * the source bytes into that memory (`Uint8Array.set`, a memcpy), the module swaps them in place
 * 16 bytes at a time with `i8x16.swizzle`, and the caller copies the result out. Conversions to
 * double (int32 / uint32 / float32 → float64) widen two elements per step
 * (`v128.load64_zero` + `f64x2.convert_low_i32x4_s|u` / `f64x2.promote_low_f32x4`), swizzle, and
 * store into a second region. Regions are padded to 16 bytes, so the loops need no scalar tail.
 *
 * Module text (hand-assembled below by {@link moduleBytes}):
 * ```wat
 * (module
 *   (memory (export "memory") 1 4096)          ;; grows on demand, at most 256 MiB
 *   ;; swaps [ptr, end) in place with the 16-byte shuffle mask stored at `mask`
 *   (func (export "swap") (param $ptr i32) (param $end i32) (param $mask i32) (local $m v128)
 *     (local.set $m (v128.load (local.get $mask)))
 *     (loop $next
 *       (v128.store (local.get $ptr) (i8x16.swizzle (v128.load (local.get $ptr)) (local.get $m)))
 *       (br_if $next (i32.lt_u (local.tee $ptr (i32.add (local.get $ptr) (i32.const 16)))
 *                              (local.get $end)))))
 *   ;; two 32-bit elements at `src` → two big-endian doubles at `dst`, until `dst` reaches `end`
 *   (func (export "i32tof64") (param $src i32) (param $dst i32) (param $end i32) (param $mask i32)
 *     (local $m v128)
 *     (local.set $m (v128.load (local.get $mask)))
 *     (loop $next
 *       (v128.store (local.get $dst)
 *         (i8x16.swizzle (f64x2.convert_low_i32x4_s (v128.load64_zero (local.get $src)))
 *                        (local.get $m)))
 *       (local.set $src (i32.add (local.get $src) (i32.const 8)))
 *       (br_if $next (i32.lt_u (local.tee $dst (i32.add (local.get $dst) (i32.const 16)))
 *                              (local.get $end)))))
 *   ;; "u32tof64" and "f32tof64": the same with f64x2.convert_low_i32x4_u / f64x2.promote_low_f32x4
 * )
 * ```
 *
 * @module
 */

/** Byte offset where data regions start in module memory. */
const DATA_AT = 64;
/** Page size of WebAssembly memory. */
const PAGE = 65536;
/** Upper bound of module memory in pages (256 MiB); must match the module's declared maximum. */
const MAX_PAGES = 4096;

/** Unsigned LEB128 encoding of `n`. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** A section: id, byte length, contents. */
function section(id: number, body: number[]): number[] {
  return [id, ...leb(body.length), ...body];
}

/** A vector: element count followed by the concatenated elements. */
function vec(items: number[][]): number[] {
  return [...leb(items.length), ...items.flat()];
}

/** A UTF-8 (ASCII here) name. */
function name(s: string): number[] {
  return [...leb(s.length), ...[...s].map((c) => c.charCodeAt(0))];
}

const I32 = 0x7f;
const V128 = 0x7b;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_LT_U = 0x49;
const LOOP_VOID = [0x03, 0x40];
const BR_IF = 0x0d;
const END = 0x0b;
const SIMD = 0xfd;
const V128_STORE = [SIMD, 0x0b, 4, 0];
const V128_LOAD64_ZERO = [SIMD, 0x5d, 3, 0];
const F64X2_CONVERT_LOW_I32X4_S = [SIMD, ...leb(254)];
const F64X2_CONVERT_LOW_I32X4_U = [SIMD, ...leb(255)];
const F64X2_PROMOTE_LOW_F32X4 = [SIMD, ...leb(95)];

/** `i8x16.shuffle` of a vector with itself reversing each `size`-byte element. */
function shuffle(size: number): number[] {
  const lanes: number[] = [];
  for (let i = 0; i < 16; i++) lanes.push(i ^ (size - 1));
  return [SIMD, 0x0d, ...lanes];
}

/** One step of the swap loop: swaps the 16 bytes at `ptr + offset` in place. */
function swapStep(size: number, offset: number): number[] {
  const memarg = [4, ...leb(offset)];
  return [
    ...[LOCAL_GET, 0, LOCAL_GET, 0, SIMD, 0x00, ...memarg, LOCAL_TEE, 2, LOCAL_GET, 2],
    ...[...shuffle(size), SIMD, 0x0b, ...memarg],
  ];
}

/** Body of `swapN(ptr, end)`: 64 bytes per iteration (the caller pads regions to 64). */
function swapBody(size: number): number[] {
  return [
    ...[1, 1, V128], // $v = local 2
    ...LOOP_VOID,
    ...swapStep(size, 0),
    ...swapStep(size, 16),
    ...swapStep(size, 32),
    ...swapStep(size, 48),
    ...[LOCAL_GET, 0, I32_CONST, 0xc0, 0x00, I32_ADD, LOCAL_TEE, 0],
    ...[LOCAL_GET, 1, I32_LT_U, BR_IF, 0],
    END,
    END,
  ];
}

/** Body of a widening `(src, dst, end)` conversion using SIMD opcode `widen`. */
function widenBody(widen: number[]): number[] {
  return [
    ...[1, 1, V128], // $v = local 3
    ...LOOP_VOID,
    ...[LOCAL_GET, 1],
    ...[LOCAL_GET, 0, ...V128_LOAD64_ZERO, ...widen, LOCAL_TEE, 3, LOCAL_GET, 3, ...shuffle(8)],
    ...V128_STORE,
    ...[LOCAL_GET, 0, I32_CONST, 8, I32_ADD, LOCAL_SET, 0],
    ...[LOCAL_GET, 1, I32_CONST, 16, I32_ADD, LOCAL_TEE, 1],
    ...[LOCAL_GET, 2, I32_LT_U, BR_IF, 0],
    END,
    END,
  ];
}

/** The complete module binary (see the WAT in the module doc). */
export function moduleBytes(): Uint8Array {
  const types = vec([
    [0x60, ...vec([[I32], [I32]]), 0],
    [0x60, ...vec([[I32], [I32], [I32]]), 0],
  ]);
  const funcs = vec([[0], [0], [0], [1], [1], [1]]);
  const memory = vec([[0x01, ...leb(1), ...leb(MAX_PAGES)]]);
  const exports = vec([
    [...name("memory"), 0x02, 0],
    [...name("swap16"), 0x00, 0],
    [...name("swap32"), 0x00, 1],
    [...name("swap64"), 0x00, 2],
    [...name("i32tof64"), 0x00, 3],
    [...name("u32tof64"), 0x00, 4],
    [...name("f32tof64"), 0x00, 5],
  ]);
  const bodies = [
    swapBody(2),
    swapBody(4),
    swapBody(8),
    widenBody(F64X2_CONVERT_LOW_I32X4_S),
    widenBody(F64X2_CONVERT_LOW_I32X4_U),
    widenBody(F64X2_PROMOTE_LOW_F32X4),
  ];
  const code = vec(bodies.map((b) => [...leb(b.length), ...b]));
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    ...section(3, funcs),
    ...section(5, memory),
    ...section(7, exports),
    ...section(10, code),
  ]);
}

interface SwapExports {
  memory: WebAssembly.Memory;
  swap16(ptr: number, end: number): void;
  swap32(ptr: number, end: number): void;
  swap64(ptr: number, end: number): void;
  i32tof64(src: number, dst: number, end: number): void;
  u32tof64(src: number, dst: number, end: number): void;
  f32tof64(src: number, dst: number, end: number): void;
}

/** Kinds of widening conversion to big-endian doubles the module does. */
export type WidenKind = "i32" | "u32" | "f32";

/** A ready SIMD swapper bound to its own module memory. */
export interface WasmSwapper {
  /** Largest byte count of one call's data (source plus output regions) the memory may hold. */
  readonly maxBytes: number;
  /**
   * Copies `bytes` bytes from `src` into module memory, reverses the byte order of each
   * `size`-byte element (2, 4 or 8) and returns a view of the result (valid until the next call).
   * Returns undefined if the data does not fit the bounded memory.
   */
  swap(src: Uint8Array, size: 2 | 4 | 8): Uint8Array | undefined;
  /**
   * Converts `n` 32-bit elements (`src`, 4n bytes) to big-endian doubles and returns a view of the
   * 8n result bytes (valid until the next call), or undefined if they do not fit.
   */
  widen(src: Uint8Array, n: number, kind: WidenKind): Uint8Array | undefined;
  /**
   * Writes `src` with each `size`-byte element byte-reversed into `dst` at byte `pos`, in
   * cache-sized chunks (see {@link createWasmSwapper}). False (nothing written) if a chunk does
   * not fit the bounded memory.
   */
  swapInto(src: Uint8Array, size: 2 | 4 | 8, dst: Uint8Array, pos: number): boolean;
  /**
   * Writes `n` 32-bit elements of `src` as big-endian doubles into `dst` at byte `pos`, in
   * chunks. False (nothing written) if a chunk does not fit the bounded memory.
   */
  widenInto(src: Uint8Array, n: number, kind: WidenKind, dst: Uint8Array, pos: number): boolean;
}

/** Rounds `n` up to a multiple of 64. */
function pad64(n: number): number {
  return (n + 63) & ~63;
}

/** Rounds `n` up to a multiple of 16. */
function pad16(n: number): number {
  return (n + 15) & ~15;
}

/** Default chunk of the `…Into` methods: output bytes per copy-in / swap / copy-out round. */
export const DEFAULT_CHUNK_BYTES = 131072;

/**
 * Instantiates the SIMD module synchronously. Returns undefined when the engine lacks
 * WebAssembly or SIMD (validation fails), so callers fall back to plain JS. `maxPages` bounds
 * the memory (64 KiB pages, at most the module's own 4096); calls needing more return undefined.
 * `chunkBytes` (a multiple of 64) is the output size of one round of the `…Into` methods: small
 * enough that module memory stays in cache, so large arrays cost about one read of the source and
 * one write of the destination.
 */
export function createWasmSwapper(
  maxPages: number = MAX_PAGES,
  chunkBytes: number = DEFAULT_CHUNK_BYTES,
): WasmSwapper | undefined {
  const chunk = Math.max(64, chunkBytes & ~63);
  const limit = Math.min(maxPages, MAX_PAGES) * PAGE;
  let exports: SwapExports;
  try {
    const module = new WebAssembly.Module(moduleBytes() as Uint8Array<ArrayBuffer>);
    exports = new WebAssembly.Instance(module).exports as unknown as SwapExports;
  } catch {
    return undefined;
  }
  const memory = exports.memory;
  let bytes = new Uint8Array(memory.buffer);
  const maxBytes = limit - DATA_AT - 128;

  /** Makes sure memory holds `needed` bytes; false if that exceeds the bound. */
  const reserve = (needed: number): boolean => {
    if (needed > limit) return false;
    if (needed > memory.buffer.byteLength) {
      const pages = Math.ceil((needed - memory.buffer.byteLength) / PAGE);
      try {
        memory.grow(pages);
      } catch {
        return false;
      }
    }
    if (bytes.buffer !== memory.buffer) bytes = new Uint8Array(memory.buffer);
    return true;
  };

  const swapOf = { 2: exports.swap16, 4: exports.swap32, 8: exports.swap64 } as const;

  return {
    maxBytes,
    swap(src, size) {
      const length = src.length;
      const end = DATA_AT + pad64(length);
      if (length === 0 || !reserve(end)) return undefined;
      bytes.set(src, DATA_AT);
      swapOf[size](DATA_AT, end);
      return bytes.subarray(DATA_AT, DATA_AT + length);
    },
    widen(src, n, kind) {
      if (n <= 0) return undefined;
      const dst = DATA_AT + pad16(4 * n) + 16;
      const end = dst + pad16(8 * n);
      if (!reserve(end)) return undefined;
      bytes.set(src.subarray(0, 4 * n), DATA_AT);
      const convert = kind === "i32"
        ? exports.i32tof64
        : kind === "u32"
        ? exports.u32tof64
        : exports.f32tof64;
      convert(DATA_AT, dst, end);
      return bytes.subarray(dst, dst + 8 * n);
    },
    swapInto(src, size, dst, pos) {
      const total = src.length;
      for (let at = 0; at < total; at += chunk) {
        const swapped = this.swap(src.subarray(at, Math.min(at + chunk, total)), size);
        if (swapped === undefined) return false;
        dst.set(swapped, pos + at);
      }
      return total > 0;
    },
    widenInto(src, n, kind, dst, pos) {
      const step = chunk >> 3;
      for (let i = 0; i < n; i += step) {
        const count = Math.min(step, n - i);
        const widened = this.widen(src.subarray(4 * i, 4 * (i + count)), count, kind);
        if (widened === undefined) return false;
        dst.set(widened, pos + 8 * i);
      }
      return n > 0;
    },
  };
}
