/**
 * Benchmark of the DBR codec hot path: encoding and decoding image-sized arrays.
 *
 * Two tables, each case next to a plain `Uint8Array.set` copy of the same byte count measured in
 * the same run:
 * 1. codec work only: big-endian write into a preallocated buffer (baseline: `set` into a
 *    preallocated buffer), plus the alternative swap (Int32Array views with shifts) the codec
 *    does not use;
 * 2. full `encodeDbr` / `decodeDbr`, which return fresh buffers by contract (baseline: allocate
 *    + `set`). Allocation and first-touch page faults count there, and on some machines (VMs,
 *    sandboxes) they dominate.
 * MB/s come from the median call time (robust against GC pauses and a loaded machine).
 *
 * Run: ./node_modules/.bin/deno run scripts/bench/dbr_encode.ts [--width 1028] [--height 512]
 *      [--seconds 0.3] [--warmup 150]   (V8 needs ~150 calls to fully optimise the DataView loops)
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  DBR,
  type DbrSource,
  decodeDbr,
  encodeDbr,
  writeBigEndian,
  writeConverted,
} from "../../ca/dbr.ts";
import type { NativeType, NativeValue } from "../../ca/pv.ts";
import { medianSeconds } from "./median_time.ts";

const { values: flags } = parseArgs({
  options: {
    width: { type: "string", default: "1028" },
    height: { type: "string", default: "512" },
    seconds: { type: "string", default: "0.3" },
    warmup: { type: "string", default: "150" },
  },
});
const n = Number(flags.width) * Number(flags.height);
const minSeconds = Number(flags.seconds);
const warmup = Number(flags.warmup);

/**
 * MB/s of `fn` for `bytes` per call, from the median call time after a warm-up long enough for
 * V8 to reach its optimising tier.
 */
function measure(bytes: number, fn: () => unknown): number {
  return bytes / medianSeconds(fn, { warmup, minSeconds, minSamples: 7 }) / 1e6;
}

function source(value: NativeValue, type: NativeType): DbrSource {
  return { value, type, timestamp: Date.now(), severity: 0, status: 0, metadata: {} };
}

/** Alternative swap (not used by the codec): Int32Array views and shifts. */
function shiftSwap(dst: Uint8Array, pos: number, values: Int32Array | Float64Array): void {
  const words = new Int32Array(values.buffer, values.byteOffset, values.byteLength / 4);
  const out = new Int32Array(dst.buffer, dst.byteOffset + pos, words.length);
  const step = values instanceof Float64Array ? 2 : 1;
  for (let i = 0; i < words.length; i += step) {
    const a = words[i];
    const sa = (a << 24) | ((a & 0xff00) << 8) | ((a >>> 8) & 0xff00) | (a >>> 24);
    if (step === 2) {
      const b = words[i + 1];
      out[i] = (b << 24) | ((b & 0xff00) << 8) | ((b >>> 8) & 0xff00) | (b >>> 24);
      out[i + 1] = sa;
    } else {
      out[i] = sa;
    }
  }
}

const longs = new Int32Array(n).map((_, i) => (i * 2654435761) | 0);
const doubles = Float64Array.from(longs, (x) => x / 3);
const chars = new Uint8Array(n).map((_, i) => i & 0xff);
const shorts = Int16Array.from(longs, (x) => x >> 16);
const target = new Uint8Array(24 + 8 * n + 16);

interface Case {
  name: string;
  bytes: number;
  run: () => unknown;
}

function report(title: string, cases: Case[], baseline: (bytes: number) => () => unknown): void {
  console.log(`\n${title}`);
  console.log(
    `${"case".padEnd(36)} ${"MB/s".padStart(8)} ${"memcpy MB/s".padStart(12)} ${
      "ratio".padStart(6)
    }`,
  );
  for (const c of cases) {
    const base = measure(c.bytes, baseline(c.bytes));
    const rate = measure(c.bytes, c.run);
    console.log(
      `${c.name.padEnd(36)} ${rate.toFixed(0).padStart(8)} ${base.toFixed(0).padStart(12)} ${
        (rate / base).toFixed(2).padStart(6)
      }`,
    );
  }
}

const copyInto = (bytes: number) => {
  const src = new Uint8Array(bytes).fill(7);
  return () => target.set(src, 24);
};
const allocAndCopy = (bytes: number) => {
  const src = new Uint8Array(bytes).fill(7);
  return () => {
    const out = new Uint8Array(bytes + 24);
    out.set(src, 24);
    return out;
  };
};

console.log(`DBR codec benchmark: ${flags.width}x${flags.height} = ${n} elements`);
report("1. codec work into a preallocated buffer (payload at offset 24+12)", [
  { name: "LONG big-endian write", bytes: 4 * n, run: () => writeBigEndian(target, 36, longs, n) },
  { name: "LONG shift swap (alt)", bytes: 4 * n, run: () => shiftSwap(target, 36, longs) },
  {
    name: "DOUBLE big-endian write",
    bytes: 8 * n,
    run: () => writeBigEndian(target, 40, doubles, n),
  },
  { name: "DOUBLE shift swap (alt)", bytes: 8 * n, run: () => shiftSwap(target, 40, doubles) },
  {
    name: "LONG -> DOUBLE converting write",
    bytes: 8 * n,
    run: () => writeConverted(target, 40, longs, n, DBR.DOUBLE),
  },
  {
    name: "SHORT big-endian write",
    bytes: 2 * n,
    run: () => writeBigEndian(target, 40, shorts, n),
  },
  { name: "CHAR write", bytes: n, run: () => writeBigEndian(target, 39, chars, n) },
], copyInto);

const timeLong = encodeDbr(DBR.TIME_LONG, n, source(longs, "long"));
const timeDouble = encodeDbr(DBR.TIME_DOUBLE, n, source(doubles, "double"));
report("2. full encodeDbr/decodeDbr, fresh buffer per call (baseline: allocate + set)", [
  {
    name: "LONG -> DBR_LONG",
    bytes: 4 * n,
    run: () => encodeDbr(DBR.LONG, n, source(longs, "long"), 24),
  },
  {
    name: "LONG -> DBR_TIME_LONG",
    bytes: 4 * n,
    run: () => encodeDbr(DBR.TIME_LONG, n, source(longs, "long"), 24),
  },
  {
    name: "DOUBLE -> DBR_DOUBLE",
    bytes: 8 * n,
    run: () => encodeDbr(DBR.DOUBLE, n, source(doubles, "double"), 24),
  },
  {
    name: "DOUBLE -> DBR_TIME_DOUBLE",
    bytes: 8 * n,
    run: () => encodeDbr(DBR.TIME_DOUBLE, n, source(doubles, "double"), 24),
  },
  {
    name: "LONG -> DBR_TIME_DOUBLE (convert)",
    bytes: 8 * n,
    run: () => encodeDbr(DBR.TIME_DOUBLE, n, source(longs, "long"), 24),
  },
  {
    name: "SHORT -> DBR_TIME_SHORT",
    bytes: 2 * n,
    run: () => encodeDbr(DBR.TIME_SHORT, n, source(shorts, "short"), 24),
  },
  {
    name: "CHAR -> DBR_CHAR",
    bytes: n,
    run: () => encodeDbr(DBR.CHAR, n, source(chars, "char"), 24),
  },
  { name: "decode DBR_TIME_LONG", bytes: 4 * n, run: () => decodeDbr(DBR.TIME_LONG, n, timeLong) },
  {
    name: "decode DBR_TIME_DOUBLE",
    bytes: 8 * n,
    run: () => decodeDbr(DBR.TIME_DOUBLE, n, timeDouble),
  },
], allocAndCopy);
