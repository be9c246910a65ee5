/**
 * Our LZ4 and bslz4 encoders against the C libraries the DCU uses (Debian's liblz4 through
 * `LZ4_compress_default`, and bitshuffle): for inputs below 64 KiB + 11 bytes the blocks must be
 * byte for byte the same, so that the simulator streams the frames a detector would send (the
 * LZ4 parse decides how fast a stream decodes: the greedy parse we had before decoded 40 %
 * slower than liblz4's on the simulator's images). Larger blocks only have to round-trip.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { compressBslz4, decompressBslz4 } from "../devices/eiger/bslz4.ts";
import { compressLz4Block, decompressLz4Block } from "../devices/eiger/lz4.ts";
import { makePattern, renderImage } from "../devices/eiger_sim/images.ts";
import { detectorImage, photonImage, prng } from "./support/eiger_image.ts";
import { runPyToDone } from "./support/py/peer.ts";

/** Inputs of many shapes: runs, repeats at every distance, noise, and the size limits. */
function lz4Inputs(): Record<string, Uint8Array> {
  const rand = prng(11);
  const inputs: Record<string, Uint8Array> = {};
  for (const n of [0, 1, 12, 13, 14, 20, 100, 1000, 8192, 30000, 65546]) {
    const a = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      a[i] = rand() < 0.25 ? Math.floor(rand() * 8) : i % 37 < 10 ? 0 : a[Math.max(0, i - 11)];
    }
    inputs[`mixed_${n}`] = a;
  }
  inputs.zeros = new Uint8Array(8192);
  inputs.noise = Uint8Array.from({ length: 8192 }, () => Math.floor(rand() * 256));
  inputs.periods = Uint8Array.from({ length: 8192 }, (_, i) => (i * 7) % (1 + (i >> 9)));
  return inputs;
}

Deno.test("lz4 encoder: blocks below 64 KiB are byte for byte liblz4's LZ4_compress_default", async () => {
  const inputs = lz4Inputs();
  const dir = await Deno.makeTempDir({ prefix: "lz4_encoder_" });
  try {
    for (const [name, data] of Object.entries(inputs)) {
      await Deno.writeFile(join(dir, `${name}.raw`), data);
    }
    await runPyToDone("lz4_peer.py", ["run", dir]);
    for (const [name, data] of Object.entries(inputs)) {
      const ours = compressLz4Block(data);
      const c = await Deno.readFile(join(dir, `${name}.default`));
      assert.deepEqual(ours, c, `${name}: ${ours.length} B, liblz4 ${c.length} B`);
      assert.deepEqual(decompressLz4Block(ours, data.length), data, name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lz4 encoder: larger blocks round-trip (liblz4 hashes differently there)", () => {
  const rand = prng(12);
  for (const n of [65547, 70000, 300000]) {
    const a = Uint8Array.from(
      { length: n },
      (_, i) => (rand() < 0.1 ? i & 0xff : i % 300 < 50 ? 0 : 9),
    );
    assert.deepEqual(decompressLz4Block(compressLz4Block(a), n), a, `n=${n}`);
  }
});

Deno.test("bslz4 encoder: payloads are byte for byte bitshuffle's, for 1-, 2-, 4- and 8-byte pixels", async () => {
  const images: Record<string, { bytes: Uint8Array; size: number }> = {};
  const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  images.u8 = { bytes: bytesOf(detectorImage(Uint8Array, 67, 133, 3)), size: 1 };
  images.u16 = { bytes: bytesOf(detectorImage(Uint16Array, 67, 133, 4)), size: 2 };
  images.u32 = { bytes: bytesOf(detectorImage(Uint32Array, 131, 257, 5)), size: 4 };
  images.photons = { bytes: bytesOf(photonImage(64, 100, 3, 6)), size: 4 };
  images.u64 = { bytes: bytesOf(new BigUint64Array(1000).map((_, i) => BigInt(i % 17))), size: 8 };
  // The simulator's own image (what `diss-ioc eiger-sim` streams), 1028×512 uint32.
  const sim = renderImage(makePattern(1028, 512), "uint32", 0.001, 100, 7950);
  images.sim = { bytes: bytesOf(sim), size: 4 };
  const dir = await Deno.makeTempDir({ prefix: "bslz4_encoder_" });
  try {
    for (const [name, { bytes, size }] of Object.entries(images)) {
      await Deno.writeFile(join(dir, `${name}.bs${size}`), bytes);
    }
    await runPyToDone("lz4_peer.py", ["run", dir]);
    for (const [name, { bytes, size }] of Object.entries(images)) {
      const ours = compressBslz4(bytes, size);
      const c = await Deno.readFile(join(dir, `${name}.bslz4`));
      assert.equal(ours.length, c.length, `${name}: length`);
      assert.ok(ours.every((b, i) => b === c[i]), `${name}: same bytes as bitshuffle`);
      assert.deepEqual(decompressBslz4(ours, size, bytes.length / size), bytes, name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
