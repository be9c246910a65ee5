/**
 * Microbenchmark of the big-endian swaps in `ca/dbr_swap.ts`: the WebAssembly SIMD path against
 * the JS (DataView) fallback and a plain `Uint8Array.set` copy of the same byte count, all in the
 * same run. Encode cases write into a preallocated buffer at byte offset 40 (a DBR_TIME header);
 * decode cases return fresh typed arrays (the baseline copy allocates too).
 * GB/s come from the median call time after a warm-up (V8 needs ~150 calls to optimise the loops).
 *
 * Run: ./node_modules/.bin/deno run scripts/bench/dbr_swap.ts [--sizes 4096,65536,2097152,4194304]
 *      [--seconds 0.3] [--warmup 200]
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type DbrNumericArray,
  readBigEndian,
  useWasmSwap,
  writeBigEndian,
  writeConverted,
} from "../../ca/dbr_swap.ts";
import { medianSeconds } from "./median_time.ts";

const { values: flags } = parseArgs({
  options: {
    sizes: { type: "string", default: "1024,4096,65536,2097152,4194304" },
    seconds: { type: "string", default: "0.3" },
    warmup: { type: "string", default: "200" },
  },
});
const sizes = flags.sizes.split(",").map(Number);
const minSeconds = Number(flags.seconds);
const warmup = Number(flags.warmup);
const HEADER = 40;

/** GB/s of `fn` moving `bytes` per call, from the median call time after warm-up. */
function measure(bytes: number, fn: () => unknown): number {
  return bytes / medianSeconds(fn, { warmup, minSeconds, minSamples: 9 }) / 1e9;
}

/** Random bytes filling a typed array of `n` elements. */
function random(make: (n: number) => DbrNumericArray, n: number): DbrNumericArray {
  const out = make(n);
  const bytes = new Uint8Array(out.buffer);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (Math.random() * 256) | 0;
  if (out instanceof Float32Array || out instanceof Float64Array) {
    for (let i = 0; i < n; i++) out[i] = (Math.random() - 0.5) * 1e6;
  }
  return out;
}

interface Case {
  name: string;
  /** Output bytes per call. */
  bytes: number;
  run: () => unknown;
  copy: () => unknown;
}

function cases(size: number): Case[] {
  const out: Case[] = [];
  const dst = new Uint8Array(size + HEADER + 16);
  for (
    const [label, make] of [
      ["16", (n: number) => new Uint16Array(n)],
      ["32", (n: number) => new Int32Array(n)],
      ["64", (n: number) => new Float64Array(n)],
    ] as const
  ) {
    const src = random(make, size / Number(label) * 8);
    const srcBytes = new Uint8Array(src.buffer);
    const ctor = src.constructor as Uint16ArrayConstructor;
    out.push({
      name: `write${label}`,
      bytes: size,
      run: () => writeBigEndian(dst, HEADER, src, src.length),
      copy: () => dst.set(srcBytes, HEADER),
    });
    const wire = new Uint8Array(size + HEADER);
    wire.set(srcBytes, HEADER);
    out.push({
      name: `read${label}`,
      bytes: size,
      run: () => readBigEndian(ctor, wire, HEADER, src.length),
      copy: () => new Uint8Array(size).set(wire.subarray(HEADER, HEADER + size)),
    });
  }
  for (
    const [label, make] of [
      ["i32→f64", (n: number) => new Int32Array(n)],
      ["f32→f64", (n: number) => new Float32Array(n)],
    ] as const
  ) {
    const src = random(make, size / 8);
    const srcBytes = new Uint8Array(src.buffer);
    out.push({
      name: label,
      bytes: size,
      run: () => writeConverted(dst, HEADER, src, src.length, 6),
      copy: () => {
        dst.set(srcBytes, HEADER);
        dst.set(srcBytes, HEADER + srcBytes.length);
      },
    });
  }
  return out;
}

console.log(`# dbr_swap: GB/s (median), warm-up ${warmup} calls; output offset ${HEADER}`);
console.log(`# wasm available: ${useWasmSwap(true)}`);
console.log("case       bytes      js(DataView)  wasm    memcpy  wasm/js  wasm/memcpy");
for (const size of sizes) {
  for (const c of cases(size)) {
    useWasmSwap(false);
    const js = measure(c.bytes, c.run);
    useWasmSwap(true);
    const wasm = measure(c.bytes, c.run);
    const copy = measure(c.bytes, c.copy);
    console.log(
      `${c.name.padEnd(10)} ${String(c.bytes).padStart(8)}  ${js.toFixed(2).padStart(8)}  ${
        wasm.toFixed(2).padStart(8)
      }  ${copy.toFixed(2).padStart(6)}  ${(wasm / js).toFixed(2).padStart(6)}x  ${
        (wasm / copy).toFixed(2).padStart(6)
      }`,
    );
  }
}
