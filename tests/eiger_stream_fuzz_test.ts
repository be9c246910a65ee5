/**
 * Randomized robustness: 60 000 mutated inputs (bit flips, overwritten length bytes, truncation,
 * inserted bytes) into the stream v2, bslz4, lz4 and ZMTP decoders. Each input must either decode
 * or throw the decoder's own error class — never a RangeError/TypeError, a hang or a huge
 * allocation. Seeded, so failures reproduce.
 */
import assert from "node:assert/strict";
import {
  compressBslz4,
  CompressionError,
  compressLz4Hdf5,
  decompressBslz4,
  decompressLz4Hdf5,
} from "../devices/eiger/bslz4.ts";
import { decodeStreamMessage, encodeStreamMessage, StreamError } from "../devices/eiger/stream2.ts";
import {
  encodeGreeting,
  encodeMessage,
  encodeReady,
  ZmtpDecoder,
  ZmtpError,
  ZmtpSession,
} from "../devices/eiger/zmtp.ts";
import { detectorImage, prng } from "./support/eiger_image.ts";

const rand = prng(20261123);
const int = (n: number) => Math.floor(rand() * n);

/** One random mutation of `src` (a fresh copy). */
function mutate(src: Uint8Array): Uint8Array {
  const b = src.slice();
  switch (int(5)) {
    case 0: { // flip 1–4 random bits
      const n = 1 + int(4);
      for (let i = 0; i < n; i++) b[int(b.length)] ^= 1 << int(8);
      return b;
    }
    case 1: { // overwrite 1–8 bytes with extreme values (hits length fields)
      const at = int(b.length);
      const v = [0x00, 0xff, 0x7f, 0x80, 0x1b, 0x5b, 0x9b][int(7)];
      for (let i = 0; i < 1 + int(8) && at + i < b.length; i++) b[at + i] = v;
      return b;
    }
    case 2: // truncate
      return b.subarray(0, int(b.length));
    case 3: { // insert random bytes
      const at = int(b.length);
      const ins = new Uint8Array(1 + int(8)).map(() => int(256));
      return Uint8Array.of(...b.subarray(0, at), ...ins, ...b.subarray(at));
    }
    default: { // random byte
      b[int(b.length)] = int(256);
      return b;
    }
  }
}

function fuzz(
  seeds: Uint8Array[],
  runs: number,
  target: (b: Uint8Array) => unknown,
  ok: (e: unknown) => boolean,
) {
  let decoded = 0;
  for (let i = 0; i < runs; i++) {
    const input = mutate(seeds[i % seeds.length]);
    try {
      target(input);
      decoded++;
    } catch (e) {
      if (!ok(e)) {
        const hex = Array.from(input, (x) => x.toString(16).padStart(2, "0")).join("");
        assert.fail(`unexpected ${e} for input ${hex}`);
      }
    }
  }
  return decoded;
}

const UID = "01HY3F7R9Q0000000000000007";
const small = detectorImage(Uint16Array, 9, 11, 5);
const smallU32 = detectorImage(Uint32Array, 8, 40, 6);

Deno.test("fuzz: 20 000 mutated stream v2 messages → decoded or StreamError", () => {
  const seeds = [
    encodeStreamMessage({
      type: "image",
      seriesId: 1,
      seriesUniqueId: UID,
      imageId: 2,
      realTime: [1, 2],
      seriesDate: "2024-01-01T00:00:00Z",
      startTime: [0, 1],
      stopTime: [1, 1],
      data: new Map([
        ["threshold_1", { dims: [9, 11], data: small }],
        ["threshold_2", { dims: [8, 40], data: smallU32, compression: "lz4" as const }],
      ]),
      userData: { x: [1, 2.5, null, true] },
    }),
    encodeStreamMessage({
      type: "start",
      seriesId: 1,
      seriesUniqueId: UID,
      channels: ["threshold_1"],
      thresholdEnergy: { threshold_1: 1.5 },
      pixelMask: new Map([["threshold_1", {
        dims: [9, 11],
        data: small,
        compression: "none" as const,
      }]]),
      numberOfImages: 3,
    }),
    encodeStreamMessage({ type: "end", seriesId: 1, seriesUniqueId: UID }),
  ];
  const decoded = fuzz(
    seeds,
    20000,
    (b) => decodeStreamMessage(b),
    (e) => e instanceof StreamError,
  );
  assert.ok(decoded > 0 && decoded < 20000, `some inputs decode, most do not (${decoded})`);
});

Deno.test("fuzz: 15 000 mutated bslz4 and 10 000 lz4 payloads → decoded or CompressionError", () => {
  const raw16 = new Uint8Array(detectorImage(Uint16Array, 33, 70, 8).buffer);
  const raw32 = new Uint8Array(detectorImage(Uint32Array, 16, 37, 9).buffer);
  const b16 = compressBslz4(raw16, 2);
  const b32 = compressBslz4(raw32, 4);
  let i = 0;
  fuzz([b16, b32], 15000, (b) => {
    const which = i++ % 2;
    return which === 0
      ? decompressBslz4(b, 2, raw16.length / 2)
      : decompressBslz4(b, 4, raw32.length / 4);
  }, (e) => e instanceof CompressionError);
  const l = compressLz4Hdf5(raw16, 1024);
  fuzz([l], 10000, (b) => decompressLz4Hdf5(b, raw16.length), (e) => e instanceof CompressionError);
});

Deno.test("fuzz: 15 000 mutated ZMTP byte streams → events or ZmtpError", () => {
  const greeting = encodeGreeting(1);
  const ready = encodeReady({ "Socket-Type": "PUSH" });
  const msgs = encodeMessage([new Uint8Array(300).fill(7), new TextEncoder().encode("ab")]);
  const seed = Uint8Array.of(
    ...greeting,
    ...ready,
    ...msgs.flatMap((m) => [...m]),
    0x04,
    0x07,
    0x04,
    0x50,
    0x49,
    0x4e,
    0x47,
    0x00,
    0x10,
  );
  let events = 0;
  fuzz([seed], 15000, (b) => {
    const s = new ZmtpSession({ socketType: "PULL", maxMessageBytes: 4096 });
    // feed in two pieces to exercise incremental parsing
    const cut = int(b.length + 1);
    const o1 = s.receive(b.subarray(0, cut));
    const o2 = s.receive(b.subarray(cut));
    events += o1.messages.length + o2.messages.length;
    // raw decoder too
    new ZmtpDecoder({ maxMessageBytes: 4096 }).push(b);
  }, (e) => e instanceof ZmtpError);
  assert.ok(events > 0);
});
