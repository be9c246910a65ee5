/**
 * The simulator at detector speed: frames are rendered and compressed once per series (at arm)
 * and cycled through, and the rate a series was actually sent at is measured.
 */

import assert from "node:assert/strict";
import { decompressBslz4 } from "../devices/eiger/bslz4.ts";
import { FRAME_VARIANTS, type SimMessage } from "../devices/eiger_sim/detector.ts";
import { makePattern, renderImage } from "../devices/eiger_sim/images.ts";
import { SeriesRate, type SeriesRateReport } from "../devices/eiger_sim/stream.ts";
import { encodeSimMessage, encodeSimMessageParts } from "../devices/eiger_sim/encode.ts";
import { concatBytes } from "../core/bytes.ts";
import { recordSimSeries } from "./support/eiger.ts";

Deno.test("eiger sim: a series cycles through frames pre-compressed at arm", async () => {
  const { messages: sent, armedAt } = await recordSimSeries({
    width: 40,
    height: 24,
    bitDepth: 32,
    images: 20,
  });
  const images = sent.filter((m) => m.type === "image");
  assert.equal(armedAt, 1); // the start message; images only after the trigger
  assert.equal(images.length, 20);
  const pattern = makePattern(40, 24);
  for (const img of images) {
    if (img.type !== "image") continue;
    const variant = img.imageId % FRAME_VARIANTS;
    const want = renderImage(
      pattern,
      "uint32",
      1e-3, // the simulator renders at least 1 ms worth of counts
      100,
      7919 + variant * 31,
    );
    assert.deepEqual(img.data.threshold_1, want, `image ${img.imageId}`);
    const payload = img.payloads?.threshold_1;
    assert.ok(payload !== undefined, "pre-compressed payload");
    assert.deepEqual(
      new Uint32Array(decompressBslz4(payload, 4, want.length).buffer),
      want,
      `payload of image ${img.imageId}`,
    );
    if (img.imageId >= FRAME_VARIANTS) {
      const first = images[variant];
      assert.equal(first.type === "image" && first.payloads?.threshold_1, payload, "reused");
    }
  }
  assert.equal(sent.at(-1)?.type, "end");
});

Deno.test("eiger sim: the rate a series was sent at is reported at its end", () => {
  const reports: SeriesRateReport[] = [];
  const rate = new SeriesRate((r) => reports.push(r));
  const image = (imageId: number): SimMessage => ({
    type: "image",
    seriesId: 4,
    uniqueId: "U",
    imageId,
    seriesDate: new Date(0),
    realTime: [1, 1],
    startTime: [0, 1],
    stopTime: [1, 1],
    width: 1,
    height: 1,
    dtype: "uint16",
    data: {},
  });
  rate.sent(
    {
      type: "start",
      seriesId: 4,
      uniqueId: "U",
      armDate: new Date(0),
      channels: [],
      countTime: 0.001,
      frameTime: 0.001,
      width: 1,
      height: 1,
      dtype: "uint16",
      numberOfImages: 101,
      thresholdEnergy: {},
      incidentEnergy: 8000,
      saturationValue: 1,
    },
    0,
  );
  for (let i = 0; i < 101; i++) rate.sent(image(i), 1000 + i * 1.25); // 800 images/s
  rate.sent({ type: "end", seriesId: 4, uniqueId: "U" }, 2000);
  assert.deepEqual(reports, [{ series: 4, images: 101, seconds: 0.125, rate: 800 }]);
});

Deno.test("eiger sim: a frame goes out in pieces that reference the pre-compressed payload", async () => {
  const { messages: sent } = await recordSimSeries({
    width: 1028,
    height: 64,
    bitDepth: 32,
    images: 2,
  });
  const image = sent.find((m) => m.type === "image");
  assert.ok(image?.type === "image");
  const parts = encodeSimMessageParts(image);
  const payload = image.payloads!.threshold_1;
  assert.ok(parts.includes(payload), "the payload itself, not a copy");
  assert.deepEqual(concatBytes(parts), encodeSimMessage(image), "the same bytes as one frame");
  for (const m of sent) {
    assert.deepEqual(concatBytes(encodeSimMessageParts(m)), encodeSimMessage(m));
  }
  // A corrupted image is damaged in a copy: the shared payload stays intact.
  const before = payload.slice();
  const corrupt = encodeSimMessageParts({ ...image, corrupt: true });
  assert.equal(corrupt.length, 1);
  assert.deepEqual(payload, before);
  assert.notDeepEqual(corrupt[0], encodeSimMessage(image));
});
