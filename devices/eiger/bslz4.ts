/**
 * The two compressed payloads of DECTRIS stream v2 (tag 56500), both with HDF5-filter framing:
 *
 * - `bslz4`: bitshuffle + LZ4 — `u64be total | u32be blockSize | {u32be csize, LZ4 block}* |
 *   leftover bytes raw`; each block is bit-shuffled before compression.
 * - `lz4`: plain LZ4 — `u64be total | u32be blockSize | {u32be csize, LZ4 block or stored}*`.
 *
 * Header sizes are validated against the expected size and the input length *before* the output
 * is allocated. Decoding is tuned for sparse detector images: blocks are LZ4-decoded into a
 * reusable scratch buffer, then bit-unshuffled with 8×8 bit transposes done on four plane bytes at
 * a time (32-bit words), skipping all-zero groups (the output starts zeroed). When the engine has
 * WebAssembly SIMD, the blocks are decoded by our module in `bslz4_wasm.ts` instead (about twice
 * as fast); {@link setDecodeEngine} picks one explicitly (benchmarks, tests).
 *
 * @module
 */

import { compressLz4BlockInto, decodeLz4BlockInto, lz4CompressBound, Lz4Error } from "./lz4.ts";
import { takeDecodeBuffer } from "./decode_buffers.ts";
import { createWasmCodec, FREE_AT, LZ4_ERRORS, SLACK, type WasmCodec } from "./bslz4_wasm.ts";

/** Thrown when a bslz4/lz4 container is malformed, corrupt or does not match its expected size. */
export class CompressionError extends Error {
  /** Creates an error with a message that says what is wrong with the payload. */
  constructor(message: string) {
    super(message);
    this.name = "CompressionError";
  }
}

/** Block size DECTRIS and the bitshuffle library use for bslz4 (bytes). */
export const BSLZ4_BLOCK_BYTES = 8192;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let scratch = new Uint8Array(BSLZ4_BLOCK_BYTES);
let scratch32 = new Int32Array(scratch.buffer);

function scratchOf(size: number): Uint8Array {
  if (scratch.length < size) {
    scratch = new Uint8Array((size + 3) & ~3);
    scratch32 = new Int32Array(scratch.buffer);
  }
  return scratch;
}

/** Which decoder runs: `wasm` (SIMD module, default where available) or `js`. */
export type DecodeEngine = "wasm" | "js";

let engine: DecodeEngine = "wasm";
let codec: WasmCodec | null | undefined;

/** Selects the decoder of this thread; returns the engine that will actually run. */
export function setDecodeEngine(wanted: DecodeEngine): DecodeEngine {
  engine = wanted;
  return activeCodec() === undefined ? "js" : "wasm";
}

function activeCodec(): WasmCodec | undefined {
  if (engine !== "wasm") return undefined;
  if (codec === undefined) codec = createWasmCodec() ?? null;
  return codec ?? undefined;
}

/** Module memory made ready by {@link prepareDecoder} (bytes from the start). */
let preparedBytes = 0;

/**
 * Prepares this thread's decoder ahead of the first image: compiles and instantiates the
 * WebAssembly module and writes (touches) the module memory that decoding an image of
 * `imageBytes` needs (scratch, image, a payload up to the image size), so the first images pay
 * neither the compile nor the first-touch page faults. Returns the bytes of module memory
 * prepared so far (0 for the JavaScript engine).
 */
export function prepareDecoder(imageBytes: number): number {
  const c = activeCodec();
  if (c === undefined) return 0;
  const need = Math.min(
    align16(align16(FREE_AT + BSLZ4_BLOCK_BYTES + SLACK) + imageBytes + SLACK) + imageBytes + 12 +
      SLACK,
    1 << 30,
  );
  if (need <= preparedBytes || !c.reserve(need)) return preparedBytes;
  c.bytes().fill(0, Math.max(preparedBytes, FREE_AT), need);
  preparedBytes = need;
  return preparedBytes;
}

/** Reads the compressed size of block `i` at `pos`, checked against the payload. */
function blockLength(src: Uint8Array, pos: number, i: number, codec: string): number {
  if (src.length - pos < 4) throw new CompressionError(`${codec}: truncated at block ${i}`);
  const csize = readU32be(src, pos);
  if (csize > src.length - pos - 4) {
    throw new CompressionError(`${codec}: block ${i} size ${csize} exceeds the payload`);
  }
  return csize;
}

/** Checks the result `n` of the WebAssembly LZ4 kernel for block `i` of `size` bytes. */
function wasmBlock(n: number, size: number, i: number, codec: string): void {
  if (n < 0) throw new CompressionError(`${codec}: block ${i}: ${LZ4_ERRORS[n]}`);
  if (n !== size) {
    throw new CompressionError(`${codec}: block ${i} decoded to ${n} bytes, expected ${size}`);
  }
}

function align16(n: number): number {
  return (n + 15) & ~15;
}

function readU64be(src: Uint8Array, off: number): number {
  const hi = ((src[off] << 24) | (src[off + 1] << 16) | (src[off + 2] << 8) | src[off + 3]) >>> 0;
  const lo = ((src[off + 4] << 24) | (src[off + 5] << 16) | (src[off + 6] << 8) | src[off + 7]) >>>
    0;
  if (hi >= 0x200000) return Number.POSITIVE_INFINITY; // ≥ 2^53: never a valid size
  return hi * 0x100000000 + lo;
}

function readU32be(src: Uint8Array, off: number): number {
  return ((src[off] << 24) | (src[off + 1] << 16) | (src[off + 2] << 8) | src[off + 3]) >>> 0;
}

function writeHeader(dst: Uint8Array, total: number, blockSize: number): void {
  const view = new DataView(dst.buffer, dst.byteOffset, 12);
  view.setUint32(0, Math.floor(total / 0x100000000));
  view.setUint32(4, total >>> 0);
  view.setUint32(8, blockSize);
}

/**
 * Decompresses a bslz4 payload holding `elementCount` elements of `elementSize` bytes.
 *
 * The header's total size must equal `elementSize · elementCount`; block sizes, compressed sizes
 * and the payload length are checked before allocating. Returns `into` (exactly the decoded
 * size; its old bytes are overwritten) or else an 8-byte aligned buffer of its own (new or
 * recycled through `decode_buffers.ts`; view it with the matching typed array).
 * Throws {@link CompressionError}.
 */
export function decompressBslz4(
  src: Uint8Array,
  elementSize: number,
  elementCount: number,
  into?: Uint8Array,
): Uint8Array {
  if (!(elementSize >= 1 && elementSize <= 8 && Number.isInteger(elementSize))) {
    throw new CompressionError(`bslz4: unsupported element size ${elementSize}`);
  }
  if (src.length < 12) throw new CompressionError(`bslz4: payload too short (${src.length} B)`);
  const total = readU64be(src, 0);
  const blockSize = readU32be(src, 8);
  const expected = elementSize * elementCount;
  if (total !== expected) {
    throw new CompressionError(`bslz4: header says ${total} bytes, expected ${expected}`);
  }
  if (into !== undefined && into.length !== total) {
    throw new CompressionError(`bslz4: output of ${into.length} B for ${total} B`);
  }
  if (total === 0) {
    if (src.length !== 12) throw new CompressionError("bslz4: trailing bytes after empty payload");
    return into ?? new Uint8Array(0);
  }
  const group = 8 * elementSize;
  if (blockSize === 0 || blockSize % group !== 0) {
    throw new CompressionError(
      `bslz4: invalid block size ${blockSize} for element size ${elementSize}`,
    );
  }
  const leftover = total % group;
  const nfull = Math.floor(total / blockSize);
  const last = (total % blockSize) - leftover;
  const nblocks = nfull + (last > 0 ? 1 : 0);
  // Every block needs a 4-byte size and at least one token byte; LZ4 expands at most ~255:1.
  if (12 + nblocks * 5 + leftover > src.length || total > src.length * 256) {
    throw new CompressionError(`bslz4: payload of ${src.length} B cannot hold ${total} B`);
  }
  const wasm = activeCodec();
  if (wasm !== undefined) {
    const out = bslz4Wasm(
      wasm,
      src,
      elementSize,
      total,
      blockSize,
      nblocks,
      nfull,
      last,
      leftover,
      into,
    );
    if (out !== undefined) return out;
  }
  // Bit-unshuffling ORs into its output: a recycled buffer is zeroed block by block.
  const { bytes: out, fresh } = into === undefined
    ? takeDecodeBuffer(total)
    : { bytes: into, fresh: false };
  const tmp = scratchOf(Math.min(blockSize, total));
  let pos = 12;
  let outPos = 0;
  for (let i = 0; i < nblocks; i++) {
    const size = i < nfull ? blockSize : last;
    const csize = blockLength(src, pos, i, "bslz4");
    pos += 4;
    let n: number;
    try {
      n = decodeLz4BlockInto(src, pos, pos + csize, tmp, 0, size);
    } catch (e) {
      if (e instanceof Lz4Error) throw new CompressionError(`bslz4: block ${i}: ${e.message}`);
      throw e;
    }
    if (n !== size) {
      throw new CompressionError(`bslz4: block ${i} decoded to ${n} bytes, expected ${size}`);
    }
    if (!fresh) out.fill(0, outPos, outPos + size);
    unshuffleBlock(tmp, out, outPos, (size / elementSize) | 0, elementSize);
    pos += csize;
    outPos += size;
  }
  if (src.length - pos !== leftover) {
    throw new CompressionError(
      `bslz4: ${src.length - pos} bytes after the blocks, expected ${leftover} leftover bytes`,
    );
  }
  out.set(src.subarray(pos), outPos);
  return out;
}

/** The WebAssembly path of {@link decompressBslz4}; undefined when memory cannot hold the image. */
function bslz4Wasm(
  c: WasmCodec,
  src: Uint8Array,
  elementSize: number,
  total: number,
  blockSize: number,
  nblocks: number,
  nfull: number,
  last: number,
  leftover: number,
  into: Uint8Array | undefined,
): Uint8Array | undefined {
  // Module memory: scratch block | output image | payload, each followed by SLACK bytes.
  const scratchAt = FREE_AT;
  const outAt = align16(scratchAt + Math.min(blockSize, total) + SLACK);
  const srcAt = align16(outAt + total + SLACK);
  if (!c.reserve(srcAt + src.length + SLACK)) return undefined;
  const mem = c.bytes();
  mem.set(src, srcAt);
  const kernel = elementSize === 1 || elementSize === 2 || elementSize === 4
    ? elementSize
    : undefined;
  let pos = 12;
  let outPos = 0;
  for (let i = 0; i < nblocks; i++) {
    const size = i < nfull ? blockSize : last;
    const csize = blockLength(src, pos, i, "bslz4");
    pos += 4;
    wasmBlock(
      c.lz4(srcAt + pos, srcAt + pos + csize, scratchAt, scratchAt, scratchAt + size),
      size,
      i,
      "bslz4",
    );
    const nb = size / (8 * elementSize);
    if (kernel !== undefined && nb % 16 === 0) c.unshuffle(kernel, scratchAt, outAt + outPos, nb);
    else {
      mem.fill(0, outAt + outPos, outAt + outPos + size);
      unshuffleBlock(
        mem.subarray(scratchAt, scratchAt + size),
        mem,
        outAt + outPos,
        8 * nb,
        elementSize,
      );
    }
    pos += csize;
    outPos += size;
  }
  if (src.length - pos !== leftover) {
    throw new CompressionError(
      `bslz4: ${src.length - pos} bytes after the blocks, expected ${leftover} leftover bytes`,
    );
  }
  // The one copy of the decoded image out of module memory: into its destination when given.
  const out = into ?? takeDecodeBuffer(total).bytes;
  out.set(mem.subarray(outAt, outAt + outPos));
  out.set(src.subarray(pos), outPos);
  return out;
}

/**
 * Bit-unshuffles one block: `src` holds `8·size` bit planes of `n/8` bytes (n a multiple of 8);
 * writes `n` elements of `size` bytes to `out` at `outPos`. `out` must be zero there.
 */
export function unshuffleBlock(
  src: Uint8Array,
  out: Uint8Array,
  outPos: number,
  n: number,
  size: number,
): void {
  const nb = n >>> 3; // bytes per plane
  if (LITTLE_ENDIAN_HOST && (nb & 3) === 0 && (src.byteOffset & 3) === 0) {
    const src32 = src === scratch
      ? scratch32
      : new Int32Array(src.buffer, src.byteOffset, (n * size) >>> 2);
    unshuffleWords(src32, out, outPos, nb >>> 2, size);
  } else {
    unshuffleBytes(src, out, outPos, nb, size);
  }
}

/** Fast path: planes are word aligned; one 32-bit word holds 4 consecutive plane bytes (lanes). */
function unshuffleWords(
  in32: Int32Array,
  out: Uint8Array,
  outPos: number,
  nbw: number,
  size: number,
): void {
  const s8 = size * 8; // output bytes per lane (8 elements)
  const s2 = size * 2;
  const s3 = size * 3;
  const s4 = size * 4;
  const s5 = size * 5;
  const s6 = size * 6;
  const s7 = size * 7;
  const p2 = 2 * nbw;
  const p3 = 3 * nbw;
  const p4 = 4 * nbw;
  const p5 = 5 * nbw;
  const p6 = 6 * nbw;
  const p7 = 7 * nbw;
  for (let j = 0; j < size; j++) {
    const plane0 = 8 * j * nbw;
    for (let bw = 0; bw < nbw; bw++) {
      const base = plane0 + bw;
      let r0 = in32[base];
      let r1 = in32[base + nbw];
      let r2 = in32[base + p2];
      let r3 = in32[base + p3];
      let r4 = in32[base + p4];
      let r5 = in32[base + p5];
      let r6 = in32[base + p6];
      let r7 = in32[base + p7];
      if ((r0 | r1 | r2 | r3 | r4 | r5 | r6 | r7) === 0) continue;
      // 8×8 bit transpose in each byte lane: rows = planes k, columns = element m.
      let t = ((r0 >> 1) ^ r1) & 0x55555555;
      r1 ^= t;
      r0 ^= t << 1;
      t = ((r2 >> 1) ^ r3) & 0x55555555;
      r3 ^= t;
      r2 ^= t << 1;
      t = ((r4 >> 1) ^ r5) & 0x55555555;
      r5 ^= t;
      r4 ^= t << 1;
      t = ((r6 >> 1) ^ r7) & 0x55555555;
      r7 ^= t;
      r6 ^= t << 1;
      t = ((r0 >> 2) ^ r2) & 0x33333333;
      r2 ^= t;
      r0 ^= t << 2;
      t = ((r1 >> 2) ^ r3) & 0x33333333;
      r3 ^= t;
      r1 ^= t << 2;
      t = ((r4 >> 2) ^ r6) & 0x33333333;
      r6 ^= t;
      r4 ^= t << 2;
      t = ((r5 >> 2) ^ r7) & 0x33333333;
      r7 ^= t;
      r5 ^= t << 2;
      t = ((r0 >> 4) ^ r4) & 0x0f0f0f0f;
      r4 ^= t;
      r0 ^= t << 4;
      t = ((r1 >> 4) ^ r5) & 0x0f0f0f0f;
      r5 ^= t;
      r1 ^= t << 4;
      t = ((r2 >> 4) ^ r6) & 0x0f0f0f0f;
      r6 ^= t;
      r2 ^= t << 4;
      t = ((r3 >> 4) ^ r7) & 0x0f0f0f0f;
      r7 ^= t;
      r3 ^= t << 4;
      // Row m, lane l = byte j of element 32·bw + 8·l + m.
      // (unrolled over the 4 lanes: constant shifts, no loop overhead)
      const o0 = outPos + bw * 4 * s8 + j;
      const o1 = o0 + s8;
      const o2 = o1 + s8;
      const o3 = o2 + s8;
      out[o0] = r0;
      out[o0 + size] = r1;
      out[o0 + s2] = r2;
      out[o0 + s3] = r3;
      out[o0 + s4] = r4;
      out[o0 + s5] = r5;
      out[o0 + s6] = r6;
      out[o0 + s7] = r7;
      out[o1] = r0 >> 8;
      out[o1 + size] = r1 >> 8;
      out[o1 + s2] = r2 >> 8;
      out[o1 + s3] = r3 >> 8;
      out[o1 + s4] = r4 >> 8;
      out[o1 + s5] = r5 >> 8;
      out[o1 + s6] = r6 >> 8;
      out[o1 + s7] = r7 >> 8;
      out[o2] = r0 >> 16;
      out[o2 + size] = r1 >> 16;
      out[o2 + s2] = r2 >> 16;
      out[o2 + s3] = r3 >> 16;
      out[o2 + s4] = r4 >> 16;
      out[o2 + s5] = r5 >> 16;
      out[o2 + s6] = r6 >> 16;
      out[o2 + s7] = r7 >> 16;
      out[o3] = r0 >> 24;
      out[o3 + size] = r1 >> 24;
      out[o3 + s2] = r2 >> 24;
      out[o3 + s3] = r3 >> 24;
      out[o3 + s4] = r4 >> 24;
      out[o3 + s5] = r5 >> 24;
      out[o3 + s6] = r6 >> 24;
      out[o3 + s7] = r7 >> 24;
    }
  }
}

/** Generic path: any plane length, bit by bit (used for odd-sized last blocks only). */
function unshuffleBytes(
  src: Uint8Array,
  out: Uint8Array,
  outPos: number,
  nb: number,
  size: number,
): void {
  for (let j = 0; j < size; j++) {
    const plane0 = 8 * j * nb;
    for (let b = 0; b < nb; b++) {
      const base = plane0 + b;
      for (let k = 0; k < 8; k++) {
        const x = src[base + k * nb];
        if (x === 0) continue;
        for (let m = 0; m < 8; m++) {
          if ((x >>> m) & 1) out[outPos + (8 * b + m) * size + j] |= 1 << k;
        }
      }
    }
  }
}

/**
 * Bit-shuffles `n` elements of `size` bytes from `src[srcPos…]` into `dst` (planes layout, n a
 * multiple of 8). Inverse of {@link unshuffleBlock}; `dst` must be zero-filled for `n·size` bytes.
 */
export function shuffleBlock(
  src: Uint8Array,
  srcPos: number,
  dst: Uint8Array,
  n: number,
  size: number,
): void {
  const nb = n >>> 3;
  for (let j = 0; j < size; j++) {
    for (let b = 0; b < nb; b++) {
      // rows m = element 8b+m byte j; transpose to rows k = plane bytes.
      const e = srcPos + 8 * b * size + j;
      let r0 = src[e];
      let r1 = src[e + size];
      let r2 = src[e + 2 * size];
      let r3 = src[e + 3 * size];
      let r4 = src[e + 4 * size];
      let r5 = src[e + 5 * size];
      let r6 = src[e + 6 * size];
      let r7 = src[e + 7 * size];
      if ((r0 | r1 | r2 | r3 | r4 | r5 | r6 | r7) === 0) continue;
      let t = ((r0 >>> 1) ^ r1) & 0x55;
      r1 ^= t;
      r0 ^= t << 1;
      t = ((r2 >>> 1) ^ r3) & 0x55;
      r3 ^= t;
      r2 ^= t << 1;
      t = ((r4 >>> 1) ^ r5) & 0x55;
      r5 ^= t;
      r4 ^= t << 1;
      t = ((r6 >>> 1) ^ r7) & 0x55;
      r7 ^= t;
      r6 ^= t << 1;
      t = ((r0 >>> 2) ^ r2) & 0x33;
      r2 ^= t;
      r0 ^= t << 2;
      t = ((r1 >>> 2) ^ r3) & 0x33;
      r3 ^= t;
      r1 ^= t << 2;
      t = ((r4 >>> 2) ^ r6) & 0x33;
      r6 ^= t;
      r4 ^= t << 2;
      t = ((r5 >>> 2) ^ r7) & 0x33;
      r7 ^= t;
      r5 ^= t << 2;
      t = ((r0 >>> 4) ^ r4) & 0x0f;
      r4 ^= t;
      r0 ^= t << 4;
      t = ((r1 >>> 4) ^ r5) & 0x0f;
      r5 ^= t;
      r1 ^= t << 4;
      t = ((r2 >>> 4) ^ r6) & 0x0f;
      r6 ^= t;
      r2 ^= t << 4;
      t = ((r3 >>> 4) ^ r7) & 0x0f;
      r7 ^= t;
      r3 ^= t << 4;
      const p = 8 * j * nb + b;
      dst[p] = r0;
      dst[p + nb] = r1;
      dst[p + 2 * nb] = r2;
      dst[p + 3 * nb] = r3;
      dst[p + 4 * nb] = r4;
      dst[p + 5 * nb] = r5;
      dst[p + 6 * nb] = r6;
      dst[p + 7 * nb] = r7;
    }
  }
}

/**
 * Compresses `data` (elements of `elementSize` bytes, little-endian as stored) into a bslz4
 * payload with 8192-byte blocks, byte-compatible in layout with the bitshuffle library.
 */
export function compressBslz4(
  data: Uint8Array,
  elementSize: number,
  blockSize = BSLZ4_BLOCK_BYTES,
): Uint8Array {
  const group = 8 * elementSize;
  if (blockSize <= 0 || blockSize % group !== 0) {
    throw new CompressionError(`bslz4: block size ${blockSize} not a multiple of ${group}`);
  }
  const total = data.length;
  const leftover = total % group;
  const nfull = Math.floor(total / blockSize);
  const last = (total % blockSize) - leftover;
  const nblocks = nfull + (last > 0 ? 1 : 0);
  const out = new Uint8Array(12 + nblocks * (4 + lz4CompressBound(blockSize)) + leftover);
  writeHeader(out, total, blockSize);
  const tmp = new Uint8Array(blockSize);
  let pos = 12;
  let inPos = 0;
  for (let i = 0; i < nblocks; i++) {
    const size = i < nfull ? blockSize : last;
    tmp.fill(0, 0, size);
    shuffleBlock(data, inPos, tmp, size / elementSize, elementSize);
    const c = compressLz4BlockInto(tmp, 0, size, out, pos + 4);
    new DataView(out.buffer, out.byteOffset + pos, 4).setUint32(0, c);
    pos += 4 + c;
    inPos += size;
  }
  out.set(data.subarray(inPos), pos);
  pos += leftover;
  return out.slice(0, pos);
}

/**
 * Decompresses an `lz4` payload (HDF5 LZ4 framing) that must expand to exactly `expectedSize`
 * bytes. A block whose compressed size equals its plain size is stored raw. Writes into `into`
 * (exactly `expectedSize` bytes) when given, else into a buffer of its own. Throws
 * {@link CompressionError}.
 */
export function decompressLz4Hdf5(
  src: Uint8Array,
  expectedSize: number,
  into?: Uint8Array,
): Uint8Array {
  if (src.length < 12) throw new CompressionError(`lz4: payload too short (${src.length} B)`);
  const total = readU64be(src, 0);
  const blockSize = readU32be(src, 8);
  if (total !== expectedSize) {
    throw new CompressionError(`lz4: header says ${total} bytes, expected ${expectedSize}`);
  }
  if (into !== undefined && into.length !== total) {
    throw new CompressionError(`lz4: output of ${into.length} B for ${total} B`);
  }
  if (total === 0) {
    if (src.length !== 12) throw new CompressionError("lz4: trailing bytes after empty payload");
    return into ?? new Uint8Array(0);
  }
  if (blockSize === 0) throw new CompressionError("lz4: block size 0");
  const nblocks = Math.ceil(total / blockSize);
  if (12 + nblocks * 5 > src.length || total > src.length * 256) {
    throw new CompressionError(`lz4: payload of ${src.length} B cannot hold ${total} B`);
  }
  const wasm = activeCodec();
  if (wasm !== undefined) {
    const out = lz4Wasm(wasm, src, total, blockSize, nblocks, into);
    if (out !== undefined) return out;
  }
  // Every byte is written (stored blocks copied, LZ4 blocks must decode to their full size).
  const out = into ?? takeDecodeBuffer(total).bytes;
  let pos = 12;
  let outPos = 0;
  for (let i = 0; i < nblocks; i++) {
    const size = Math.min(blockSize, total - outPos);
    const csize = blockLength(src, pos, i, "lz4");
    pos += 4;
    if (csize === size) {
      out.set(src.subarray(pos, pos + csize), outPos);
    } else {
      let n: number;
      try {
        n = decodeLz4BlockInto(src, pos, pos + csize, out, outPos, outPos + size);
      } catch (e) {
        if (e instanceof Lz4Error) throw new CompressionError(`lz4: block ${i}: ${e.message}`);
        throw e;
      }
      if (n !== size) {
        throw new CompressionError(`lz4: block ${i} decoded to ${n} bytes, expected ${size}`);
      }
    }
    pos += csize;
    outPos += size;
  }
  if (pos !== src.length) {
    throw new CompressionError(`lz4: ${src.length - pos} trailing bytes after the last block`);
  }
  return out;
}

/** The WebAssembly path of {@link decompressLz4Hdf5}; undefined when memory cannot hold it. */
function lz4Wasm(
  c: WasmCodec,
  src: Uint8Array,
  total: number,
  blockSize: number,
  nblocks: number,
  into: Uint8Array | undefined,
): Uint8Array | undefined {
  const outAt = FREE_AT;
  const srcAt = align16(outAt + total + SLACK);
  if (!c.reserve(srcAt + src.length + SLACK)) return undefined;
  const mem = c.bytes();
  mem.set(src, srcAt);
  let pos = 12;
  let outPos = 0;
  for (let i = 0; i < nblocks; i++) {
    const size = Math.min(blockSize, total - outPos);
    const csize = blockLength(src, pos, i, "lz4");
    pos += 4;
    const at = outAt + outPos;
    if (csize === size) mem.copyWithin(at, srcAt + pos, srcAt + pos + csize);
    else {
      wasmBlock(c.lz4(srcAt + pos, srcAt + pos + csize, at, at, at + size), size, i, "lz4");
    }
    pos += csize;
    outPos += size;
  }
  if (pos !== src.length) {
    throw new CompressionError(`lz4: ${src.length - pos} trailing bytes after the last block`);
  }
  const out = into ?? takeDecodeBuffer(total).bytes;
  out.set(mem.subarray(outAt, outAt + total));
  return out;
}

/** Compresses `data` into an `lz4` payload (HDF5 LZ4 framing, one block unless `blockSize`). */
export function compressLz4Hdf5(data: Uint8Array, blockSize = 1 << 30): Uint8Array {
  const total = data.length;
  const bs = Math.max(1, Math.min(blockSize, total));
  const nblocks = total === 0 ? 0 : Math.ceil(total / bs);
  const out = new Uint8Array(12 + nblocks * 4 + lz4CompressBound(total) + nblocks * 16);
  writeHeader(out, total, total === 0 ? blockSize : bs);
  let pos = 12;
  for (let inPos = 0; inPos < total; inPos += bs) {
    const size = Math.min(bs, total - inPos);
    let c = compressLz4BlockInto(data, inPos, inPos + size, out, pos + 4);
    if (c >= size) {
      out.set(data.subarray(inPos, inPos + size), pos + 4); // stored block
      c = size;
    }
    new DataView(out.buffer, out.byteOffset + pos, 4).setUint32(0, c);
    pos += 4 + c;
  }
  return out.slice(0, pos);
}
