/**
 * Stream v2 decoding: the byte-level worked examples of the spec, round trips through our
 * encoder, and one test per malformed-input case (all must throw StreamError, none may allocate
 * from hostile sizes).
 */
import assert from "node:assert/strict";
import { CborError, CborTag, decodeCbor, decodeHalf, encodeCbor } from "../devices/eiger/cbor.ts";
import {
  decodeStreamMessage,
  encodeStreamMessage,
  type ImageMessage,
  type StartMessage,
  StreamError,
} from "../devices/eiger/stream2.ts";
import { compressBslz4 } from "../devices/eiger/bslz4.ts";

const hexdump = (s: string) =>
  new Uint8Array(
    s.trim().split("\n").flatMap((l) => l.replace(/^[0-9a-f]+:/, "").trim().split(/\s+/)).map((x) =>
      parseInt(x, 16)
    ),
  );

const SPEC_IMAGE = hexdump(`
0000: d9 d9 f7 a9 64 74 79 70 65 65 69 6d 61 67 65 69
0010: 73 65 72 69 65 73 5f 69 64 07 70 73 65 72 69 65
0020: 73 5f 75 6e 69 71 75 65 5f 69 64 78 1a 30 31 48
0030: 59 33 46 37 52 39 51 30 30 30 30 30 30 30 30 30
0040: 30 30 30 30 30 30 37 68 69 6d 61 67 65 5f 69 64
0050: 00 69 72 65 61 6c 5f 74 69 6d 65 82 19 c3 50 1a
0060: 02 fa f0 80 6b 73 65 72 69 65 73 5f 64 61 74 65
0070: c0 78 1d 32 30 32 34 2d 30 35 2d 30 31 54 31 32
0080: 3a 30 30 3a 30 30 2e 30 30 30 2b 30 30 3a 30 30
0090: 6a 73 74 61 72 74 5f 74 69 6d 65 82 00 1a 02 fa
00a0: f0 80 69 73 74 6f 70 5f 74 69 6d 65 82 19 c3 50
00b0: 1a 02 fa f0 80 64 64 61 74 61 a1 6b 74 68 72 65
00c0: 73 68 6f 6c 64 5f 31 d8 28 82 82 02 04 d8 45 d9
00d0: dc b4 83 65 62 73 6c 7a 34 02 58 22 00 00 00 00
00e0: 00 00 00 10 00 00 20 00 00 00 00 12 f0 01 55 66
00f0: 78 80 00 00 00 00 00 00 00 00 00 00 00 00`);

const SPEC_END = hexdump(`
0000: d9 d9 f7 a3 64 74 79 70 65 63 65 6e 64 69 73 65
0010: 72 69 65 73 5f 69 64 07 70 73 65 72 69 65 73 5f
0020: 75 6e 69 71 75 65 5f 69 64 78 1a 30 31 48 59 33
0030: 46 37 52 39 51 30 30 30 30 30 30 30 30 30 30 30
0040: 30 30 30 30 37`);

const UID = "01HY3F7R9Q0000000000000007";

Deno.test("stream: the spec's 254-byte image message decodes", () => {
  assert.equal(SPEC_IMAGE.length, 254);
  const msg = decodeStreamMessage(SPEC_IMAGE) as ImageMessage;
  assert.equal(msg.type, "image");
  assert.equal(msg.seriesId, 7);
  assert.equal(msg.seriesUniqueId, UID);
  assert.equal(msg.imageId, 0);
  assert.deepEqual(msg.realTime, [50000, 50000000]);
  assert.deepEqual(msg.startTime, [0, 50000000]);
  assert.deepEqual(msg.stopTime, [50000, 50000000]);
  assert.equal(msg.seriesDate, "2024-05-01T12:00:00.000+00:00");
  assert.equal(msg.userData, undefined);
  const img = msg.data.get("threshold_1")!;
  assert.deepEqual(img.dims, [2, 4]);
  assert.equal(img.dtype, "uint16");
  assert.equal(img.compression, "bslz4");
  assert.deepEqual(img.data, Uint16Array.of(1, 2, 3, 4, 5, 6, 7, 8));
  // the uncompressed variant of the same data item
  const plain = hexdump(
    "0: d8 28 82 82 02 04 d8 45 50 01 00 02 00 03 00 04 00 05 00 06 00 07 00 08 00",
  );
  const withPlain = encodeCbor(
    new Map<string, unknown>([
      ["type", "image"],
      ["series_id", 7],
      ["series_unique_id", UID],
      ["image_id", 0],
      ["data", new Map([["threshold_1", decodeCbor(plain)]])],
    ]) as Map<never, never>,
  );
  const m2 = decodeStreamMessage(withPlain) as ImageMessage;
  assert.equal(m2.data.get("threshold_1")!.compression, "none");
  assert.deepEqual(m2.data.get("threshold_1")!.data, Uint16Array.of(1, 2, 3, 4, 5, 6, 7, 8));
});

Deno.test("stream: our end message is byte-identical to the spec's", () => {
  const ours = encodeStreamMessage({ type: "end", seriesId: 7, seriesUniqueId: UID });
  assert.deepEqual(ours, SPEC_END);
  const msg = decodeStreamMessage(SPEC_END);
  assert.equal(msg.type, "end");
  assert.equal(msg.seriesId, 7);
});

Deno.test("stream: encode → decode round trip of start and multi-channel image messages", () => {
  const start = encodeStreamMessage({
    type: "start",
    seriesId: 3,
    seriesUniqueId: UID,
    channels: ["threshold_1", "threshold_2"],
    countTime: 0.001,
    frameTime: 0.0011,
    numberOfImages: 5,
    imageSizeX: 4,
    imageSizeY: 2,
    imageDtype: "uint32",
    thresholdEnergy: { threshold_1: 4000, threshold_2: 8000.5 },
    armDate: "2024-05-01T12:00:00Z",
    detectorTranslation: [0, 0, 0.1],
    pixelMask: new Map([["threshold_1", { dims: [2, 4], data: new Uint32Array(8).fill(1) }]]),
    userData: { a: [1, "x"] },
    extra: { x_vendor: true },
  });
  const s = decodeStreamMessage(start) as StartMessage;
  assert.equal(s.type, "start");
  assert.deepEqual(s.channels, ["threshold_1", "threshold_2"]);
  assert.equal(s.countTime, 0.001);
  assert.equal(s.armDate, "2024-05-01T12:00:00Z");
  assert.deepEqual(s.thresholdEnergy, { threshold_1: 4000, threshold_2: 8000.5 });
  assert.deepEqual(s.pixelMask!.get("threshold_1")!.data, new Uint32Array(8).fill(1));
  assert.deepEqual(s.userData, new Map([["a", [1, "x"]]]));
  assert.equal(s.fields.get("x_vendor"), true);
  assert.equal(decodeStreamMessage(start, { skipStartArrays: true }).type, "start");

  const t1 = Uint32Array.of(0, 1, 2, 0xffffffff, 5, 6, 7, 8);
  const t2 = Float32Array.of(0.5, -1, 2, 3, 4, 5, 6, 7);
  const image = encodeStreamMessage({
    type: "image",
    seriesId: 3,
    seriesUniqueId: UID,
    imageId: 4,
    realTime: [1, 1000],
    seriesDate: "2024-05-01T12:00:00Z",
    startTime: [4, 1000],
    stopTime: [5, 1000],
    data: new Map([
      ["threshold_1", { dims: [2, 4], data: t1 }],
      ["difference", { dims: [2, 4], data: t2, compression: "lz4" as const }],
    ]),
    userData: "appendix",
  });
  const m = decodeStreamMessage(image) as ImageMessage;
  assert.deepEqual([...m.data.keys()], ["threshold_1", "difference"]);
  assert.deepEqual(m.data.get("threshold_1")!.data, t1);
  assert.deepEqual(m.data.get("difference")!.data, t2);
  assert.equal(m.data.get("difference")!.dtype, "float32");
  assert.equal(m.userData, "appendix");
});

Deno.test("stream: integral Float fields of start are encoded as CBOR floats", () => {
  const bytes = encodeStreamMessage({
    type: "start",
    seriesId: 1,
    seriesUniqueId: UID,
    incidentEnergy: 12000,
    detectorTranslation: [0, 1, 2],
    thresholdEnergy: { threshold_1: 6000 },
    imageSizeX: 4,
  });
  const asHex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  assert.ok(asHex.includes("fb40c7700000000000"), "12000 as float64");
  assert.ok(asHex.includes("83fb0000000000000000fb3ff0000000000000fb4000000000000000"));
  assert.ok(asHex.includes("fb40b7700000000000"), "threshold 6000 as float64");
  assert.ok(asHex.includes("6c696d6167655f73697a655f7804"), "image_size_x stays an integer");
  const s = decodeStreamMessage(bytes) as StartMessage;
  assert.equal(s.incidentEnergy, 12000);
  assert.deepEqual(s.detectorTranslation, [0, 1, 2]);
});

Deno.test("cbor: half, single and double floats; big integers; indefinite lengths", () => {
  assert.equal(decodeCbor(Uint8Array.of(0xf9, 0x3c, 0x00)), 1);
  assert.equal(decodeCbor(Uint8Array.of(0xf9, 0x7b, 0xff)), 65504);
  assert.equal(decodeHalf(0x0001), 2 ** -24);
  assert.ok(Number.isNaN(decodeHalf(0x7e00)));
  assert.equal(decodeCbor(Uint8Array.of(0xfa, 0x3f, 0xc0, 0, 0)), 1.5);
  assert.equal(
    decodeCbor(Uint8Array.of(0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)),
    2n ** 64n - 1n,
  );
  assert.equal(decodeCbor(Uint8Array.of(0x3b, 0, 0x20, 0, 0, 0, 0, 0, 0)), -1n - 2n ** 53n);
  assert.deepEqual(decodeCbor(Uint8Array.of(0x9f, 1, 2, 0xff)), [1, 2]);
  assert.deepEqual(
    decodeCbor(Uint8Array.of(0x5f, 0x41, 1, 0x42, 2, 3, 0xff)),
    Uint8Array.of(1, 2, 3),
  );
  assert.deepEqual(decodeCbor(Uint8Array.of(0xbf, 0x61, 0x61, 1, 0xff)), new Map([["a", 1]]));
  const t = decodeCbor(Uint8Array.of(0xc1, 0x1a, 0, 0, 0, 1));
  assert.ok(t instanceof CborTag && t.tag === 1 && t.value === 1);
});

/** Builds an image message with `data` replaced/edited for malformed-input cases. */
function imageWith(fields: Record<string, unknown>): Uint8Array {
  const m = new Map<string, unknown>([
    ["type", "image"],
    ["series_id", 1],
    ["series_unique_id", UID],
    ["image_id", 0],
  ]);
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) m.delete(k);
    else m.set(k, v);
  }
  return encodeCbor(new CborTag(55799, m as Map<never, never>));
}

const pixelsTag = (dims: unknown[], typed: number, content: unknown) =>
  new CborTag(40, [dims, new CborTag(typed, content as Uint8Array)] as never);
const channel = (v: unknown) => new Map([["threshold_1", v]]);

function rejects(bytes: Uint8Array, pattern: RegExp) {
  assert.throws(() => decodeStreamMessage(bytes), (e: unknown) => {
    assert.ok(e instanceof StreamError, `StreamError expected, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("stream: malformed CBOR is a StreamError", () => {
  rejects(SPEC_IMAGE.subarray(0, 200), /bad CBOR: truncated/);
  rejects(Uint8Array.of(...SPEC_END, 0), /trailing/);
  rejects(Uint8Array.of(0x1c), /reserved additional info/);
  rejects(Uint8Array.of(0xa1, 0x62, 0xff, 0xfe, 1), /UTF-8/);
  rejects(Uint8Array.of(0xff), /break/);
  rejects(new Uint8Array(0), /truncated/);
  // a byte string claiming 2^63 bytes, an array claiming 2^32 items: no allocation, clean error
  rejects(Uint8Array.of(0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), /length too large/);
  rejects(Uint8Array.of(0x9a, 0xff, 0xff, 0xff, 0xff, 0x00), /truncated/);
  rejects(Uint8Array.of(0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0), /truncated/);
  // nesting bomb
  rejects(new Uint8Array(100000).fill(0x81), /nesting too deep/);
  assert.throws(() => decodeCbor(Uint8Array.of(0xf8, 0x10)), CborError);
});

Deno.test("stream: wrong message structure is a StreamError naming the problem", () => {
  rejects(encodeCbor([1, 2]), /not a CBOR map/);
  rejects(encodeCbor(new Map([[1, 2]])), /non-text key/);
  rejects(encodeCbor({ series_id: 1 }), /missing message type/);
  rejects(encodeCbor({ type: "status" }), /unknown message type "status"/);
  rejects(encodeCbor({ type: "end", series_unique_id: UID }), /missing field series_id/);
  rejects(
    encodeCbor({ type: "end", series_id: "7", series_unique_id: UID }),
    /series_id is not an integer/,
  );
  rejects(
    encodeCbor({ type: "end", series_id: 7, series_unique_id: 5 }),
    /series_unique_id is not a text/,
  );
  rejects(imageWith({ data: undefined }), /data is missing/);
  rejects(imageWith({ image_id: 1.5, data: new Map() }), /image_id is not an integer/);
  rejects(imageWith({ real_time: [1], data: new Map() }), /real_time is not a rational/);
  rejects(imageWith({ series_date: 5, data: new Map() }), /series_date is not a date/);
  rejects(
    encodeCbor({ type: "start", series_id: 1, series_unique_id: UID, channels: [1] }),
    /channels/,
  );
  rejects(
    encodeCbor({
      type: "start",
      series_id: 1,
      series_unique_id: UID,
      threshold_energy: { a: "x" },
    }),
    /threshold_energy/,
  );
  rejects(
    encodeCbor({ type: "start", series_id: 1, series_unique_id: UID, count_time: "1" }),
    /count_time/,
  );
});

Deno.test("stream: bad image arrays are StreamErrors (sizes, tags, compression)", () => {
  const px = new Uint8Array(16);
  rejects(imageWith({ data: channel(5) }), /tag-40/);
  rejects(imageWith({ data: channel(new CborTag(40, [[2, 4]])) }), /\[dims, array\]/);
  rejects(imageWith({ data: channel(pixelsTag([2, -1], 69, px)) }), /invalid dimension/);
  rejects(imageWith({ data: channel(pixelsTag([], 69, px)) }), /no dimensions/);
  rejects(imageWith({ data: channel(pixelsTag([2, 3], 69, px)) }), /16 bytes, expected 12/);
  rejects(imageWith({ data: channel(pixelsTag([3, 5], 69, new Uint8Array(15))) }), /expected 30/);
  rejects(
    imageWith({ data: channel(pixelsTag([2, 4], 76, px)) }),
    /unsupported typed-array tag 76/,
  );
  rejects(imageWith({ data: channel(pixelsTag([2, 4], 69, "text")) }), /bytes or tag 56500/);
  rejects(
    imageWith({ data: channel(pixelsTag([2, 4], 69, new CborTag(56500, ["bslz4", 2]))) }),
    /\[algorithm/,
  );
  rejects(
    imageWith({ data: channel(pixelsTag([2, 4], 69, new CborTag(56500, ["zstd", 0, px]))) }),
    /unknown compression "zstd"/,
  );
  const good = compressBslz4(new Uint8Array(16).fill(3), 2);
  rejects(
    imageWith({ data: channel(pixelsTag([2, 4], 69, new CborTag(56500, ["bslz4", 3, good]))) }),
    /element size 3 invalid/,
  );
  rejects(
    imageWith({ data: channel(pixelsTag([4, 4], 69, new CborTag(56500, ["bslz4", 2, good]))) }),
    /header says 16 bytes, expected 32/,
  );
  const corrupt = good.slice();
  corrupt[16] = 0x0f;
  rejects(
    imageWith({ data: channel(pixelsTag([2, 4], 69, new CborTag(56500, ["bslz4", 2, corrupt]))) }),
    /data.threshold_1: bslz4: block 0/,
  );
  rejects(
    imageWith({
      data: channel(pixelsTag([2, 4], 69, new CborTag(56500, ["lz4", 0, good.subarray(0, 12)]))),
    }),
    /lz4/,
  );
  // hostile dims: 2^24 × 2^24 elements claimed by a 30-byte message → rejected before allocating
  rejects(
    imageWith({
      data: channel(pixelsTag([2 ** 24, 2 ** 24], 70, new CborTag(56500, ["bslz4", 4, good]))),
    }),
    /exceed the size limit/,
  );
  rejects(
    imageWith({
      data: channel(pixelsTag([1 << 20, 64], 70, new CborTag(56500, ["bslz4", 4, good]))),
    }),
    /header says|cannot hold/,
  );
  assert.throws(
    () =>
      decodeStreamMessage(
        imageWith({ data: channel(pixelsTag([2, 4], 69, new CborTag(56500, ["bslz4", 2, good]))) }),
        { maxArrayBytes: 8 },
      ),
    /exceed the size limit/,
  );
});
