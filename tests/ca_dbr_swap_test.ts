import assert from "node:assert/strict";
import {
  type DbrNumericArray,
  readBigEndian,
  useWasmSwap,
  WASM_MIN_BYTES,
  writeBigEndian,
  writeConverted,
} from "../ca/dbr_swap.ts";
import { createWasmSwapper, moduleBytes } from "../ca/dbr_swap_wasm.ts";

type Ctor =
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor;

const CTORS: Ctor[] = [Uint8Array, Int16Array, Uint16Array, Int32Array, Float32Array, Float64Array];
/** Element counts: tiny, odd, around the WebAssembly threshold, several memory pages. */
const LENGTHS = [1, 3, 7, 1023, 2049, 4097, 70001];
/** Byte offsets into the destination / wire buffer (odd ones included). */
const OFFSETS = [0, 1, 3, 8, 13];

/** Deterministic pseudo-random generator (xorshift32). */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/**
 * `n` random elements inside a larger buffer (element offset 1, so byteOffset ≠ 0); floats are
 * finite plus a few special values (±0, ±Infinity), integers cover their whole range.
 */
function randomArray(ctor: Ctor, n: number, seed: number): DbrNumericArray {
  const next = rng(seed);
  const whole = new ctor(n + 3);
  const out = whole.subarray(1, 1 + n + 1) as DbrNumericArray;
  const isFloat = ctor === Float32Array || ctor === Float64Array;
  for (let i = 0; i < out.length; i++) {
    out[i] = isFloat ? (next() - 0.5) * 1e9 : Math.floor(next() * 2 ** 32) - 2 ** 31;
  }
  if (isFloat && n >= 4) [out[0], out[1], out[2], out[3]] = [-0, Infinity, -Infinity, 1e-40];
  return out;
}

/** Straightforward reference: element-by-element DataView store of the source's own type. */
function referenceBytes(src: DbrNumericArray, n: number): Uint8Array {
  const size = src.BYTES_PER_ELEMENT;
  const out = new Uint8Array(n * size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    if (src instanceof Uint8Array) view.setUint8(i, src[i]);
    else if (src instanceof Int16Array) view.setInt16(2 * i, src[i]);
    else if (src instanceof Uint16Array) view.setUint16(2 * i, src[i]);
    else if (src instanceof Int32Array) view.setInt32(4 * i, src[i]);
    else if (src instanceof Float32Array) view.setFloat32(4 * i, src[i]);
    else view.setFloat64(8 * i, src[i]);
  }
  return out;
}

/** Runs `body` once with the WebAssembly path and once with the JS fallback forced. */
function bothPaths(body: (path: string) => void): void {
  try {
    for (const wasm of [true, false]) {
      assert.equal(useWasmSwap(wasm), wasm, "WebAssembly SIMD must load in Deno");
      body(wasm ? "wasm" : "js");
    }
  } finally {
    useWasmSwap(true);
  }
}

Deno.test("dbr_swap: the hand-assembled SIMD module validates and loads", () => {
  assert.ok(WebAssembly.validate(moduleBytes() as Uint8Array<ArrayBuffer>));
  assert.ok(createWasmSwapper() !== undefined);
  assert.ok(WASM_MIN_BYTES > 0);
});

Deno.test("dbr_swap: writeBigEndian matches the reference (types, odd lengths, offsets)", () => {
  bothPaths((path) => {
    let seed = 1;
    for (const ctor of CTORS) {
      for (const n of LENGTHS) {
        const src = randomArray(ctor, n, seed++);
        const expected = referenceBytes(src, n);
        for (const pos of OFFSETS) {
          // The destination itself is a view at an odd byte offset of its buffer.
          const dst = new Uint8Array(new ArrayBuffer(pos + expected.length + 10), 3);
          dst.fill(0xa5);
          writeBigEndian(dst, pos, src, n);
          const label = `${path} ${ctor.name} n=${n} pos=${pos}`;
          assert.deepEqual(dst.subarray(pos, pos + expected.length), expected, label);
          assert.ok(dst.subarray(0, pos).every((b) => b === 0xa5), `${label}: bytes before`);
          assert.ok(
            dst.subarray(pos + expected.length).every((b) => b === 0xa5),
            `${label}: bytes after`,
          );
        }
      }
    }
  });
});

Deno.test("dbr_swap: writeBigEndian writes only n elements when the source is longer", () => {
  bothPaths((path) => {
    const src = randomArray(Int32Array, 5000, 99);
    const dst = new Uint8Array(4 * 5000).fill(7);
    writeBigEndian(dst, 0, src, 4001);
    assert.deepEqual(dst.subarray(0, 4 * 4001), referenceBytes(src, 4001), path);
    assert.ok(dst.subarray(4 * 4001).every((b) => b === 7), path);
  });
});

Deno.test("dbr_swap: readBigEndian matches the reference (types, odd lengths, offsets)", () => {
  bothPaths((path) => {
    let seed = 1000;
    for (const ctor of CTORS) {
      for (const n of LENGTHS) {
        const src = randomArray(ctor, n, seed++);
        const wire = referenceBytes(src, n);
        for (const pos of OFFSETS) {
          const payload = new Uint8Array(new ArrayBuffer(pos + wire.length + 5), 1);
          payload.set(wire, pos);
          const out = readBigEndian(ctor, payload, pos, n);
          const label = `${path} ${ctor.name} n=${n} pos=${pos}`;
          assert.ok(out instanceof ctor, label);
          assert.equal(out.length, n, label);
          assert.equal(out.byteOffset, 0, label);
          assert.deepEqual(out, src.subarray(0, n), label);
        }
      }
    }
  });
});

Deno.test("dbr_swap: readBigEndian of zero elements is an empty array", () => {
  bothPaths((path) => {
    assert.equal(readBigEndian(Float64Array, new Uint8Array(0), 0, 0).length, 0, path);
  });
});

Deno.test("dbr_swap: writeConverted to DOUBLE matches element-wise conversion", () => {
  bothPaths((path) => {
    let seed = 5000;
    for (const ctor of [Int32Array, Float32Array, Int16Array, Uint16Array, Uint8Array]) {
      for (const n of LENGTHS) {
        const src = randomArray(ctor, n, seed++);
        if (ctor === Int32Array && n >= 2) [src[0], src[1]] = [-(2 ** 31), 2 ** 31 - 1];
        for (const pos of [0, 5, 8]) {
          const dst = new Uint8Array(pos + 8 * n + 8).fill(0x5a);
          writeConverted(dst, pos, src, n, 6);
          const view = new DataView(dst.buffer, pos);
          const label = `${path} ${ctor.name} n=${n} pos=${pos}`;
          for (let i = 0; i < n; i++) {
            const got = view.getFloat64(8 * i);
            if (!Object.is(got, src[i])) assert.fail(`${label} [${i}]: ${got} !== ${src[i]}`);
          }
          assert.ok(dst.subarray(0, pos).every((b) => b === 0x5a), `${label}: bytes before`);
          assert.ok(dst.subarray(pos + 8 * n).every((b) => b === 0x5a), `${label}: bytes after`);
        }
      }
    }
  });
});

Deno.test("dbr_swap: float32 → double keeps NaN as NaN", () => {
  bothPaths((path) => {
    const src = new Float32Array(1000).fill(NaN);
    const dst = new Uint8Array(8000);
    writeConverted(dst, 0, src, 1000, 6);
    assert.ok(Number.isNaN(new DataView(dst.buffer).getFloat64(8 * 999)), path);
  });
});

Deno.test("dbr_swap: the swapper handles every element size and conversion directly", () => {
  const swapper = createWasmSwapper();
  assert.ok(swapper);
  const bytes = new Uint8Array(35).map((_, i) => i);
  for (const size of [2, 4, 8] as const) {
    const out = swapper.swap(bytes.subarray(0, 32), size);
    assert.ok(out);
    assert.deepEqual([...out], [...bytes.subarray(0, 32)].map((_, i) => i ^ (size - 1)));
  }
  const u32 = new Uint32Array([0, 1, 2 ** 32 - 1]);
  const wide = swapper.widen(new Uint8Array(u32.buffer), 3, "u32");
  assert.ok(wide);
  const view = new DataView(wide.buffer, wide.byteOffset, wide.length);
  assert.deepEqual([0, 1, 2].map((i) => view.getFloat64(8 * i)), [0, 1, 2 ** 32 - 1]);
  assert.equal(swapper.swap(new Uint8Array(0), 4), undefined);
  assert.equal(swapper.widen(new Uint8Array(0), 0, "i32"), undefined);
});

Deno.test("dbr_swap: the swapper grows its memory and refuses data beyond its bound", () => {
  const swapper = createWasmSwapper(2);
  assert.ok(swapper);
  assert.ok(swapper.maxBytes < 2 * 65536);
  const fits = new Uint8Array(100_000).fill(1);
  assert.ok(swapper.swap(fits, 4), "grows from 1 to 2 pages");
  assert.equal(swapper.swap(new Uint8Array(200_000), 4), undefined);
  assert.equal(swapper.widen(new Uint8Array(4 * 20_000), 20_000, "f32"), undefined);
});

Deno.test("dbr_swap: chunked swapInto / widenInto cover odd tails across many chunks", () => {
  const swapper = createWasmSwapper(4096, 64);
  assert.ok(swapper);
  for (const size of [2, 4, 8] as const) {
    const src = new Uint8Array(size * 1001).map((_, i) => (i * 7) & 0xff);
    const dst = new Uint8Array(src.length + 9).fill(0xee);
    assert.ok(swapper.swapInto(src, size, dst, 5));
    const expected = src.map((_, i) => src[i ^ (size - 1)]);
    assert.deepEqual(dst.subarray(5, 5 + src.length), expected, `size ${size}`);
    assert.ok(dst.subarray(5 + src.length).every((b) => b === 0xee));
  }
  const i32 = new Int32Array(1001).map((_, i) => i * 3 - 1500);
  const out = new Uint8Array(8 * 1001 + 3);
  assert.ok(swapper.widenInto(new Uint8Array(i32.buffer), 1001, "i32", out, 3));
  const view = new DataView(out.buffer, 3);
  for (let i = 0; i < 1001; i++) assert.equal(view.getFloat64(8 * i), i32[i]);
});

Deno.test("dbr_swap: a chunk that does not fit fails and writes nothing", () => {
  const swapper = createWasmSwapper(1, 131072);
  assert.ok(swapper);
  const dst = new Uint8Array(300_000).fill(1);
  assert.equal(swapper.swapInto(new Uint8Array(300_000), 4, dst, 0), false);
  assert.equal(swapper.widenInto(new Uint8Array(4 * 30_000), 30_000, "f32", dst, 0), false);
  assert.ok(dst.every((b) => b === 1));
  assert.equal(swapper.swapInto(new Uint8Array(0), 4, dst, 0), false);
});
