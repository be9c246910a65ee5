/**
 * bslz4 / lz4 (HDF5 framing) and LZ4 block codecs: published test vectors, round trips against a
 * naive reference bit-shuffle, and every malformed-input case the decoders must reject.
 */
import assert from "node:assert/strict";
import {
  compressBslz4,
  CompressionError,
  compressLz4Hdf5,
  decompressBslz4,
  decompressLz4Hdf5,
  shuffleBlock,
  unshuffleBlock,
} from "../devices/eiger/bslz4.ts";
import {
  compressLz4Block,
  decodeLz4BlockInto,
  decompressLz4Block,
  Lz4Error,
} from "../devices/eiger/lz4.ts";
import { detectorImage, prng } from "./support/eiger_image.ts";

const hex = (s: string) => new Uint8Array(s.trim().split(/\s+/).map((x) => parseInt(x, 16)));
const zeros = (n: number) => Array(n).fill("00").join(" ");

/** Reference bit-shuffle straight from the spec's definition (slow, obviously correct). */
function naiveShuffle(data: Uint8Array, n: number, s: number): Uint8Array {
  const out = new Uint8Array(n * s);
  const nb = n / 8;
  for (let p = 0; p < 8 * s; p++) {
    const j = p >> 3;
    const k = p & 7;
    for (let b = 0; b < nb; b++) {
      let v = 0;
      for (let m = 0; m < 8; m++) v |= ((data[(8 * b + m) * s + j] >> k) & 1) << m;
      out[p * nb + b] = v;
    }
  }
  return out;
}

Deno.test("bslz4: spec test vectors decode", () => {
  assert.deepEqual(decompressBslz4(hex("00 00 00 00 00 00 00 01 00 00 20 00 89"), 1, 1), hex("89"));
  assert.deepEqual(
    decompressBslz4(hex("00 00 00 00 00 00 00 02 00 00 40 00 89 00"), 2, 1),
    hex("89 00"),
  );
  assert.deepEqual(decompressBslz4(hex(zeros(12)), 1, 0), new Uint8Array(0));
  const planes = "f0 01 55 66 78 80 " + zeros(12);
  assert.deepEqual(
    new Uint16Array(
      decompressBslz4(hex("00 00 00 00 00 00 00 10 00 00 20 00 00 00 00 12 " + planes), 2, 8)
        .buffer,
    ),
    Uint16Array.of(1, 2, 3, 4, 5, 6, 7, 8),
  );
  assert.deepEqual(
    new Uint16Array(
      decompressBslz4(
        hex("00 00 00 00 00 00 00 14 00 00 20 00 00 00 00 12 " + planes + " 09 00 0a 00"),
        2,
        10,
      ).buffer,
    ),
    Uint16Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
  );
});

Deno.test("lz4 (HDF5 framing): spec test vectors decode, including stored blocks", () => {
  assert.deepEqual(
    decompressLz4Hdf5(
      hex(
        "00 00 00 00 00 00 00 1d 00 00 00 10 00 00 00 0a 16 ff 01 00 50 ff ff ff ff ff " +
          "00 00 00 0a 13 ff 01 00 50 ff ff ff ff ff",
      ),
      29,
    ),
    new Uint8Array(29).fill(0xff),
  );
  assert.deepEqual(
    decompressLz4Hdf5(
      hex("00 00 00 00 00 00 00 03 00 00 00 02 00 00 00 02 ff ff 00 00 00 01 ff"),
      3,
    ),
    hex("ff ff ff"),
  );
  assert.deepEqual(
    decompressLz4Hdf5(hex("00 00 00 00 00 00 00 01 00 00 20 00 00 00 00 01 89"), 1),
    hex("89"),
  );
});

Deno.test("lz4 block: spec examples and round trips of many shapes", () => {
  assert.deepEqual(
    decompressLz4Block(hex("16 ff 01 00 50 ff ff ff ff ff"), 16),
    new Uint8Array(16).fill(0xff),
  );
  const lit = new Uint8Array(16).map((_, i) => i);
  assert.deepEqual(
    decompressLz4Block(hex("f0 01 " + Array.from(lit, (x) => x.toString(16)).join(" ")), 16),
    lit,
  );
  const rand = prng(3);
  for (const n of [0, 1, 5, 12, 13, 17, 100, 300, 5000, 70000, 200000]) {
    for (const kind of ["random", "runs", "text"]) {
      const d = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        d[i] = kind === "random"
          ? rand() * 256
          : kind === "runs"
          ? (Math.floor(i / 37) % 3) * 7
          : "the quick brown fox "[(i * 7) % 20].charCodeAt(0);
      }
      const c = compressLz4Block(d);
      assert.deepEqual(decompressLz4Block(c, n), d, `${kind} ${n}`);
      if (kind === "runs" && n > 1000) assert.ok(c.length < n / 10, "runs compress");
    }
  }
});

Deno.test("bitshuffle: fast unshuffle and shuffle match the reference definition", () => {
  const rand = prng(11);
  for (const s of [1, 2, 4, 8]) {
    for (const n of [8, 16, 32, 40, 256, 2048, 8192 / s]) {
      const data = new Uint8Array(n * s).map(() => (rand() < 0.3 ? rand() * 256 : 0));
      const ref = naiveShuffle(data, n, s);
      const shuffled = new Uint8Array(n * s);
      shuffleBlock(data, 0, shuffled, n, s);
      assert.deepEqual(shuffled, ref, `shuffle s=${s} n=${n}`);
      const back = new Uint8Array(n * s + 8);
      unshuffleBlock(ref, back, 8, n, s);
      assert.deepEqual(back.subarray(8), data, `unshuffle s=${s} n=${n}`);
    }
  }
  // spec worked example (uint32)
  const v = Uint32Array.of(0, 1, 2, 3, 0x100, 0x10000, 0x1000000, 0xffffffff);
  const out = new Uint8Array(32);
  shuffleBlock(new Uint8Array(v.buffer), 0, out, 8, 4);
  assert.deepEqual(
    out,
    hex(
      "8a 8c 80 80 80 80 80 80 90 80 80 80 80 80 80 80 a0 80 80 80 80 80 80 80 c0 80 80 80 80 80 80 80",
    ),
  );
});

Deno.test("bslz4 / lz4: round trips of detector images with partial blocks and leftovers", () => {
  for (const [ctor, s] of [[Uint8Array, 1], [Uint16Array, 2], [Uint32Array, 4]] as const) {
    for (const [rows, cols] of [[1, 1], [1, 7], [3, 5], [67, 133], [256, 300]]) {
      const img = detectorImage(ctor as new (n: number) => Uint8Array, rows, cols, rows + cols);
      const raw = new Uint8Array(img.buffer);
      const c = compressBslz4(raw, s);
      assert.deepEqual(decompressBslz4(c, s, img.length), raw, `bslz4 s=${s} ${rows}x${cols}`);
      const l = compressLz4Hdf5(raw, 4096);
      assert.deepEqual(decompressLz4Hdf5(l, raw.length), raw, `lz4 s=${s} ${rows}x${cols}`);
    }
  }
});

function bslz4Sample(): Uint8Array {
  return compressBslz4(new Uint8Array(new Uint16Array(5000).map((_, i) => i % 97).buffer), 2);
}

Deno.test("bslz4: malformed payloads are rejected with CompressionError", () => {
  const good = bslz4Sample();
  assert.equal(decompressBslz4(good, 2, 5000).length, 10000);
  const bad = (b: Uint8Array, n = 5000, s = 2) =>
    assert.throws(() => decompressBslz4(b, s, n), CompressionError);
  bad(good.subarray(0, 11)); // shorter than the header
  bad(good, 4999); // header total ≠ expected size
  bad(good, 5000, 3); // element size mismatch
  bad(good.subarray(0, good.length - 1)); // truncated
  bad(Uint8Array.of(...good, 0)); // trailing byte
  const withBlock = (bs: number) => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(8, bs);
    return b;
  };
  bad(withBlock(0));
  bad(withBlock(8190)); // not a multiple of 8·elementSize
  bad(withBlock(4096)); // valid shape, wrong block boundaries → LZ4 sizes mismatch
  const hugeCsize = good.slice();
  new DataView(hugeCsize.buffer).setUint32(12, 0xfffffff0);
  bad(hugeCsize);
  const corrupt = good.slice();
  corrupt[16] = 0x0f; // first token: a match before any output exists
  assert.throws(() => decompressBslz4(corrupt, 2, 5000), CompressionError);
  // hostile total sizes: rejected before allocating
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 62n);
  assert.throws(() => decompressBslz4(huge, 2, 2 ** 61), /cannot hold|header says/);
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n);
  assert.throws(() => decompressBslz4(huge, 2, 2 ** 39), /cannot hold/);
  assert.throws(() => decompressBslz4(good, 0, 5000), CompressionError);
});

Deno.test("lz4 (HDF5 framing): malformed payloads are rejected with CompressionError", () => {
  const raw = new Uint8Array(10000).map((_, i) => i % 13);
  const good = compressLz4Hdf5(raw, 4096);
  assert.deepEqual(decompressLz4Hdf5(good, 10000), raw);
  const bad = (b: Uint8Array, n = 10000) =>
    assert.throws(() => decompressLz4Hdf5(b, n), CompressionError);
  bad(good.subarray(0, 8));
  bad(good, 9999);
  bad(good.subarray(0, good.length - 2));
  bad(Uint8Array.of(...good, 1, 2, 3));
  const zeroBlock = good.slice();
  new DataView(zeroBlock.buffer).setUint32(8, 0);
  bad(zeroBlock);
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 50n);
  bad(huge, 2 ** 50);
});

Deno.test("lz4 block: corrupt blocks throw Lz4Error and never write out of range", () => {
  const dst = new Uint8Array(64);
  const bad = (b: Uint8Array, size = 16) =>
    assert.throws(() => decodeLz4BlockInto(b, 0, b.length, dst, 8, 8 + size), Lz4Error);
  bad(new Uint8Array(0)); // no token
  bad(hex("16 ff 00 00")); // offset 0
  bad(hex("16 ff 05 00 50 ff ff ff ff ff")); // offset beyond produced output
  bad(hex("50 ff ff")); // literals past the input end
  bad(hex("f0")); // literal length extension missing
  bad(hex("1f ff 01 00")); // match length extension missing
  bad(hex("16 ff 01")); // truncated offset
  bad(hex("f0 ff ff ff")); // literal run larger than the output
  bad(hex("1f ff 01 00 ff ff 10")); // match larger than the output
  assert.deepEqual(dst.subarray(0, 8), new Uint8Array(8), "nothing written before dstStart");
  assert.deepEqual(dst.subarray(24), new Uint8Array(40), "nothing written past dstEnd");
  assert.throws(() => decompressLz4Block(hex("16 ff 01 00 50 ff ff ff ff ff"), 15), Lz4Error);
  assert.throws(() => decompressLz4Block(hex("16 ff 01 00 50 ff ff ff ff ff"), 17), Lz4Error);
  assert.throws(() => decompressLz4Block(hex("00"), 2 ** 40), /impossible/);
});
