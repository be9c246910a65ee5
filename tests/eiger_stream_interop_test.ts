/**
 * Stream v2 messages against an independent implementation: Python cbor2 + Debian bitshuffle +
 * python-lz4 produce messages we decode pixel-exactly, and decode what our encoder produces.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CborTag } from "../devices/eiger/cbor.ts";
import {
  type Compression,
  decodeStreamMessage,
  encodeStreamMessage,
  type ImageMessage,
  type StartMessage,
} from "../devices/eiger/stream2.ts";
import { detectorImage } from "./support/eiger_image.ts";
import { startPy } from "./support/py/peer.ts";

const DTYPES = [
  ["uint8", Uint8Array],
  ["uint16", Uint16Array],
  ["uint32", Uint32Array],
] as const;
const COMPRESSIONS: Compression[] = ["bslz4", "lz4", "none"];

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

Deno.test("stream: messages made by Python (cbor2, bitshuffle, lz4) decode pixel-exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eiger_stream_py_" });
  const py = startPy("stream_peer.py", ["make", dir]);
  try {
    assert.equal(await py.line(), "DONE");
    assert.equal(await py.wait(), 0);
    for (const [name, ctor] of DTYPES) {
      const raw = await Deno.readFile(join(dir, `py_${name}.raw`));
      for (const comp of COMPRESSIONS) {
        const msg = decodeStreamMessage(await Deno.readFile(join(dir, `py_${name}_${comp}.cbor`)));
        assert.equal(msg.type, "image");
        const img = msg as ImageMessage;
        assert.equal(img.seriesId, 7);
        assert.equal(img.seriesUniqueId, "01HY3F7R9Q0000000000000007");
        assert.equal(img.imageId, 3);
        assert.deepEqual(img.realTime, [50000, 50000000]);
        assert.deepEqual(img.startTime, [150000, 50000000]);
        assert.deepEqual(img.stopTime, [200000, 50000000]);
        assert.equal(img.seriesDate, "2024-05-01T12:00:00.000+00:00");
        assert.deepEqual(
          img.userData,
          new Map<unknown, unknown>([["note", "py"], ["n", [1, 2.5]]]),
        );
        const ch = img.data.get("threshold_1")!;
        assert.deepEqual(ch.dims, [67, 133]);
        assert.equal(ch.dtype, name);
        assert.equal(ch.compression, comp);
        assert.ok(ch.data instanceof ctor, `${name}/${comp} typed array`);
        assert.deepEqual(bytesOf(ch.data), raw, `${name}/${comp} pixels`);
      }
    }
    const start = decodeStreamMessage(await Deno.readFile(join(dir, "py_start.cbor")));
    assert.equal(start.type, "start");
    const s = start as StartMessage;
    assert.equal(s.seriesId, 7);
    assert.deepEqual(s.channels, ["threshold_1", "threshold_2"]);
    assert.equal(s.countTime, 0.5); // canonical CBOR: half-precision float
    assert.equal(s.frameTime, 0.25);
    assert.equal(s.imageSizeX, 133);
    assert.equal(s.imageSizeY, 67);
    assert.equal(s.numberOfImages, 10);
    assert.equal(s.imageDtype, "uint16");
    assert.equal(s.saturationValue, 21517);
    assert.equal(s.armDate, "2024-05-01T11:59:59.500+00:00");
    assert.deepEqual(s.thresholdEnergy, { threshold_1: 6750, threshold_2: 18900.42 });
    assert.deepEqual(s.detectorTranslation, [0, 0, 0.125]);
    const mask = s.pixelMask!.get("threshold_1")!;
    assert.deepEqual(mask.dims, [2, 3]);
    assert.deepEqual(Array.from(mask.data as Uint32Array), [0, 1, 0, 0, 4, 0]);
    assert.deepEqual(s.userData, new Map([["sample", "lysozyme"]]));
    assert.deepEqual(s.fields.get("unknown_key"), [1, 2, 3]);
    const end = decodeStreamMessage(await Deno.readFile(join(dir, "py_end.cbor")));
    assert.deepEqual(
      { ...end, fields: undefined },
      { type: "end", seriesId: 7, seriesUniqueId: "01HY3F7R9Q0000000000000007", fields: undefined },
    );
  } finally {
    await py.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stream: messages made by our encoder decode in Python (cbor2, bitshuffle, lz4)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eiger_stream_ts_" });
  try {
    for (const [i, [name, ctor]] of DTYPES.entries()) {
      const pixels = detectorImage(ctor as new (n: number) => Uint8Array, 67, 133, 10 + i);
      await Deno.writeFile(join(dir, `ts_${name}.raw`), bytesOf(pixels));
      for (const comp of COMPRESSIONS) {
        const bytes = encodeStreamMessage({
          type: "image",
          seriesId: 9,
          seriesUniqueId: "01HY3F7R9Q0000000000000009",
          imageId: 0,
          realTime: [50000, 50000000],
          seriesDate: "2024-05-01T12:00:00.000+00:00",
          startTime: [0, 50000000],
          stopTime: [50000, 50000000],
          data: new Map([["threshold_1", { dims: [67, 133], data: pixels, compression: comp }]]),
        });
        await Deno.writeFile(join(dir, `ts_${name}_${comp}.cbor`), bytes);
      }
    }
    await Deno.writeFile(
      join(dir, "ts_start.cbor"),
      encodeStreamMessage({
        type: "start",
        seriesId: 9,
        seriesUniqueId: "01HY3F7R9Q0000000000000009",
        armDate: "2024-05-01T11:59:59.500+00:00",
        channels: ["threshold_1"],
        thresholdEnergy: { threshold_1: 6500.5 },
        imageSizeX: 133,
        imageSizeY: 67,
        imageDtype: "uint16",
        numberOfImages: 1,
        extra: { x_custom: new CborTag(0, "2024-01-01T00:00:00Z") },
      }),
    );
    await Deno.writeFile(
      join(dir, "ts_end.cbor"),
      encodeStreamMessage({
        type: "end",
        seriesId: 9,
        seriesUniqueId: "01HY3F7R9Q0000000000000009",
      }),
    );
    const py = startPy("stream_peer.py", ["check", dir]);
    try {
      const results = JSON.parse(await py.line()) as Record<string, string>;
      assert.equal(Object.keys(results).length, 10);
      for (const [k, v] of Object.entries(results)) assert.equal(v, "ok", k);
      assert.equal(await py.wait(), 0);
    } finally {
      await py.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
