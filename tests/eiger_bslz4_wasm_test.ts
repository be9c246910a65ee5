/**
 * The WebAssembly decode engine (devices/eiger/bslz4_wasm.ts, assembled by core/wasm_text.ts):
 * it must decode exactly what the JavaScript engine decodes — pixels for valid payloads of every
 * element size, block size and odd length, and a CompressionError for every payload the JavaScript
 * engine rejects (seeded mutations). Also: the assembler's own errors, and no copy for aligned
 * uncompressed stream arrays.
 */

import assert from "node:assert/strict";
import {
  compressBslz4,
  CompressionError,
  compressLz4Hdf5,
  decompressBslz4,
  decompressLz4Hdf5,
  setDecodeEngine,
} from "../devices/eiger/bslz4.ts";
import { decodeStreamMessage, encodeStreamMessage } from "../devices/eiger/stream2.ts";
import type { ImageMessage } from "../devices/eiger/stream2.ts";
import { assembleWat, WatError } from "../core/wasm_text.ts";
import { detectorImage, prng } from "./support/eiger_image.ts";

type Outcome = { ok: Uint8Array } | { error: string };

function run(engine: "wasm" | "js", decode: () => Uint8Array): Outcome {
  assert.equal(setDecodeEngine(engine), engine, `engine ${engine} available`);
  try {
    return { ok: decode().slice() };
  } catch (e) {
    if (!(e instanceof CompressionError)) throw e;
    return { error: e.name };
  } finally {
    setDecodeEngine("wasm");
  }
}

function bothEngines(decode: () => Uint8Array, what: string): Outcome {
  const wasm = run("wasm", decode);
  const js = run("js", decode);
  assert.deepEqual(wasm, js, what);
  return wasm;
}

Deno.test("wasm engine: decodes like the JS engine for every element size, block size and odd length", () => {
  for (const ctor of [Uint8Array, Uint16Array, Uint32Array]) {
    for (const [rows, cols] of [[512, 1028], [67, 133], [1, 7]]) {
      const img = detectorImage(ctor as new (n: number) => Uint32Array, rows, cols, 3);
      const raw = new Uint8Array(img.buffer);
      const size = ctor.BYTES_PER_ELEMENT;
      for (const block of [8192, 4096, 1024 * size]) {
        const what = `${ctor.name} ${rows}x${cols} block ${block}`;
        const payload = compressBslz4(raw, size, block);
        const out = bothEngines(() => decompressBslz4(payload, size, img.length), what);
        assert.deepEqual(out, { ok: raw }, what);
      }
      const lz = compressLz4Hdf5(raw, 8192);
      assert.deepEqual(bothEngines(() => decompressLz4Hdf5(lz, raw.length), "lz4"), { ok: raw });
    }
  }
});

Deno.test("wasm engine: 16- and 32-bit blocks with counts below 256 (the low-byte path) next to larger ones", () => {
  // The kernel takes 128 elements at a time: all below 256 (upper planes zero: low bytes only,
  // widened), one count above, all zero, or full-range values; mixed within every block.
  const rand = prng(21);
  for (const ctor of [Uint16Array, Uint32Array]) {
    const size = ctor.BYTES_PER_ELEMENT;
    const big = size === 2 ? 65535 : 4294967295;
    const img = new ctor(128 * 64).map((_, i) => {
      const group = (i >> 7) % 5;
      if (group === 0) return Math.floor(rand() * 256);
      if (group === 1) return (i & 127) === 77 ? 256 : Math.floor(rand() * 4);
      if (group === 2) return 0;
      if (group === 3) return (i & 127) === 127 ? big : 255;
      return Math.floor(rand() * big);
    });
    const raw = new Uint8Array(img.buffer);
    for (const block of [8192, 128 * size * 3]) {
      const what = `${ctor.name} block ${block}`;
      const payload = compressBslz4(raw, size, block);
      assert.deepEqual(bothEngines(() => decompressBslz4(payload, size, img.length), what), {
        ok: raw,
      }, what);
    }
  }
});

Deno.test("wasm engine: LZ4 matches of every short period and long runs", () => {
  const data = new Uint8Array(60_000);
  let at = 0;
  const rand = prng(5);
  for (let period = 1; period <= 40 && at < data.length; period++) {
    const pattern = Array.from({ length: period }, () => Math.floor(rand() * 256));
    const length = 100 + period * 37;
    for (let i = 0; i < length && at < data.length; i++) data[at++] = pattern[i % period];
    for (let i = 0; i < period % 7 && at < data.length; i++) data[at++] = Math.floor(rand() * 256);
  }
  const lz = compressLz4Hdf5(data);
  assert.deepEqual(bothEngines(() => decompressLz4Hdf5(lz, data.length), "periods"), { ok: data });
});

Deno.test("wasm engine: rejects exactly what the JS engine rejects (seeded mutations)", () => {
  const img = detectorImage(Uint16Array, 40, 300, 9);
  const raw = new Uint8Array(img.buffer);
  const bs = compressBslz4(raw, 2);
  const lz = compressLz4Hdf5(raw, 4096);
  const rand = prng(11);
  let errors = 0;
  for (let i = 0; i < 3000; i++) {
    const useBs = i % 2 === 0;
    const payload = (useBs ? bs : lz).slice();
    const flips = 1 + Math.floor(rand() * 4);
    for (let f = 0; f < flips; f++) {
      payload[12 + Math.floor(rand() * (payload.length - 12))] = Math.floor(rand() * 256);
    }
    const out = bothEngines(
      () =>
        useBs ? decompressBslz4(payload, 2, img.length) : decompressLz4Hdf5(payload, raw.length),
      `mutation ${i}`,
    );
    if ("error" in out) errors++;
  }
  assert.ok(errors > 100, `only ${errors} mutations were rejected`);
});

Deno.test("wat assembler: runs a small module; unknown names are errors naming them", () => {
  const bytes = assembleWat(`(module
    (func (export "mix") (param $a i32) (param $b i32) (result i32) (local $t i32)
      local.get $a local.get $b i32.mul local.set $t
      block $out
        local.get $t i32.const 100 i32.lt_u br_if $out
        i32.const -1 local.set $t
      end
      local.get $t))`);
  const mix = (new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>))
    .exports.mix) as (a: number, b: number) => number;
  assert.equal(mix(6, 7), 42);
  assert.equal(mix(60, 7), -1);
  const bad: [string, RegExp][] = [
    ["(module (func i32.frobnicate))", /unknown instruction i32\.frobnicate/],
    ["(module (func br $nowhere))", /unknown label \$nowhere/],
    ["(module (func local.get $x drop))", /unknown local \$x/],
    ["(module (func block))", /block without 'end'/],
    ["(module (func)", /unbalanced/],
  ];
  for (const [text] of bad) assert.throws(() => assembleWat(text), WatError, text);
  for (const [text, pattern] of bad) assert.throws(() => assembleWat(text), pattern, text);
});

Deno.test("stream: an aligned uncompressed array is a view into the frame, a misaligned one a copy", () => {
  const pixels = new Uint32Array(64 * 32).map((_, i) => i * 2654435761);
  const message = encodeStreamMessage({
    type: "image",
    seriesId: 1,
    seriesUniqueId: "U",
    imageId: 0,
    realTime: [1, 1],
    seriesDate: "2024-01-01T00:00:00Z",
    startTime: [0, 1],
    stopTime: [1, 1],
    data: new Map([["threshold_1", { dims: [32, 64], data: pixels, compression: "none" }]]),
  });
  const rawBytes = new Uint8Array(pixels.buffer);
  let payloadAt = -1;
  for (let i = 0; i + 8 <= message.length && payloadAt < 0; i++) {
    if (rawBytes.subarray(0, 8).every((b, k) => message[i + k] === b)) payloadAt = i;
  }
  assert.ok(payloadAt > 0);
  for (const shift of [0, 1, 2, 3]) {
    const buffer = new ArrayBuffer(message.length + 8);
    const frame = new Uint8Array(buffer, shift, message.length);
    frame.set(message);
    const decoded = decodeStreamMessage(frame) as ImageMessage;
    const data = decoded.data.get("threshold_1")!.data;
    assert.deepEqual(data, pixels);
    assert.equal(data.buffer === buffer, (shift + payloadAt) % 4 === 0, `shift ${shift}`);
  }
});
