/**
 * Recycled decode buffers of the EIGER stream path: the pool itself, bslz4/lz4 decoding into a
 * dirty recycled buffer, and the series handing buffers back through `release`.
 */
import assert from "node:assert/strict";
import {
  keptDecodeBuffers,
  releaseDecodeBuffers,
  takeDecodeBuffer,
} from "../devices/eiger/decode_buffers.ts";
import {
  compressBslz4,
  compressLz4Hdf5,
  decompressBslz4,
  decompressLz4Hdf5,
} from "../devices/eiger/bslz4.ts";
import { SeriesCollector } from "../devices/eiger/series.ts";
import type { DataEvent } from "../devices/contract.ts";
import { createRandom } from "../core/random.ts";
import { assertSameBytes } from "./support/bytes.ts";

/** A sparse detector-like uint32 image (mostly small counts, some zeros). */
function image(n: number, seed: number): Uint32Array {
  const rnd = createRandom(seed);
  return Uint32Array.from({ length: n }, () => (rnd() < 0.3 ? 0 : Math.floor(rnd() * 20)));
}

const bytesOf = (a: Uint32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

Deno.test("decode buffers: only whole buffers made here come back, once, bounded", () => {
  const size = 256 * 1024;
  const a = takeDecodeBuffer(size);
  assert.equal(a.fresh, true);
  assert.equal(a.bytes.length, size);
  const before = keptDecodeBuffers();
  releaseDecodeBuffers([new Uint8Array(size)]); // not made here
  releaseDecodeBuffers([new Uint32Array(a.bytes.buffer, 4, 16)]); // a part of one
  assert.equal(keptDecodeBuffers(), before, "foreign and partial views are ignored");
  releaseDecodeBuffers([new Uint32Array(a.bytes.buffer)]);
  releaseDecodeBuffers([a.bytes]); // twice
  assert.equal(keptDecodeBuffers(), before + 1);
  const b = takeDecodeBuffer(size);
  assert.equal(b.bytes.buffer, a.bytes.buffer, "reused");
  assert.equal(b.fresh, false);
  const small = takeDecodeBuffer(100);
  releaseDecodeBuffers([small.bytes]);
  assert.equal(keptDecodeBuffers(), before, "small buffers are not kept");
  const many = Array.from({ length: 20 }, () => takeDecodeBuffer(size + 8).bytes);
  releaseDecodeBuffers(many);
  assert.ok(keptDecodeBuffers() <= 8, "the pool is bounded");
  // Leave the pool as found for other tests in this process.
  while (keptDecodeBuffers() > before) takeDecodeBuffer(size + 8);
});

Deno.test("bslz4 and lz4 decode into a dirty recycled buffer exactly as into a fresh one", () => {
  const n = 1028 * 64;
  for (
    const [name, compress, decompress] of [
      [
        "bslz4",
        (b: Uint8Array) => compressBslz4(b, 4),
        (p: Uint8Array) => decompressBslz4(p, 4, n),
      ],
      [
        "lz4",
        (b: Uint8Array) => compressLz4Hdf5(b, 8192),
        (p: Uint8Array) => decompressLz4Hdf5(p, 4 * n),
      ],
    ] as const
  ) {
    const first = image(n, 1);
    const second = image(n, 2);
    const out1 = decompress(compress(bytesOf(first)));
    assertSameBytes(out1, bytesOf(first), `${name}: first image`);
    out1.fill(0xff); // a consumer scribbled on it before giving it back
    releaseDecodeBuffers([out1]);
    const out2 = decompress(compress(bytesOf(second)));
    assert.equal(out2.buffer, out1.buffer, `${name}: the released buffer is reused`);
    assertSameBytes(out2, bytesOf(second), `${name}: every byte rewritten`);
  }
});

Deno.test("eiger series: image events give their decoded buffers back through release", () => {
  const out: DataEvent[] = [];
  const w = 256;
  const h = 256;
  const c = new SeriesCollector("local", {
    numImages: 1,
    channels: ["threshold_1"],
    width: w,
    height: h,
    pixelType: "uint32",
  }, (e) => out.push(e));
  const decoded = new Uint32Array(takeDecodeBuffer(4 * w * h).bytes.buffer);
  c.handle({
    kind: "message",
    message: {
      type: "start",
      seriesId: 1,
      uniqueId: "U",
      channels: ["threshold_1"],
      numberOfImages: 1,
      width: w,
      height: h,
    },
  });
  c.armed(1);
  c.handle({
    kind: "message",
    message: {
      type: "image",
      seriesId: 1,
      uniqueId: "U",
      imageId: 0,
      realTime: 0.1,
      timestamp: 1,
      data: { threshold_1: { dims: [h, w], dtype: "uint32", pixels: decoded } },
    },
  });
  const event = out.find((e) => e.type === "image-data") as Extract<
    DataEvent,
    { type: "image-data" }
  >;
  assert.equal(event.images.threshold_1, decoded);
  const before = keptDecodeBuffers();
  event.release?.();
  assert.equal(keptDecodeBuffers(), before + 1, "released into the pool");
  assert.equal(takeDecodeBuffer(4 * w * h).bytes.buffer, decoded.buffer, "and reused");
});
