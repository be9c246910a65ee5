/**
 * Per-image facts of a backend (`ImageDataEvent.meta`, e.g. a camera's own timestamp): kept per
 * image by the series assembler and turned into NTNDArray attributes.
 */
import assert from "node:assert/strict";
import { SeriesAssembler } from "../lib/series_assembler.ts";
import { imageMetaAttributes } from "../lib/ioc_pvs.ts";
import type { DataEvent } from "../devices/contract.ts";

Deno.test("image meta: kept per image in the series frame", () => {
  const asm = new SeriesAssembler();
  asm.open({ uuid: "u", ssqcnt: 1, duration: 1, seriesNumber: -1, startedAt: 0 }, {
    channels: [{ name: "a", meta: {} }],
    numImages: 2,
    width: 1,
    height: 1,
    pixelType: "uint8",
  });
  const events: DataEvent[] = [
    { type: "start-data", seriesId: "s", seriesNumber: 1 },
    {
      type: "image-data",
      seriesId: "s",
      index: 0,
      timestamp: 1,
      exposure: 1,
      images: { a: new Uint8Array([1]) },
      meta: { block_id: 7, device_time: 12.5 },
    },
    {
      type: "image-data",
      seriesId: "s",
      index: 1,
      timestamp: 2,
      exposure: 1,
      images: { a: new Uint8Array([2]) },
    },
    { type: "end-data", seriesId: "s" },
  ];
  for (const e of events) assert.notEqual(asm.accept(e).kind, "data-violation");
  assert.deepEqual(asm.frame().imageMeta, [{ block_id: 7, device_time: 12.5 }, undefined]);
});

Deno.test("image meta: one NTNDArray attribute per key, numbers as doubles over the images", () => {
  const attrs = imageMetaAttributes([
    { block_id: 7, device_time: 12.5, tag: "x" },
    { block_id: 8, tag: 3 },
  ]);
  assert.deepEqual(attrs.map((a) => a.name), ["block_id", "device_time", "tag"]);
  assert.deepEqual(attrs.map((a) => a.descriptor), [
    "Image block_id",
    "Image device_time",
    "Image tag",
  ]);
  assert.deepEqual(attrs[0].value, {
    type: { kind: "scalarArray", type: "double" },
    value: Float64Array.from([7, 8]),
  });
  assert.deepEqual(attrs[1].value.value, Float64Array.from([12.5, NaN]), "NaN where missing");
  assert.deepEqual(attrs[2].value, { type: { kind: "scalar", type: "string" }, value: "x,3" });
  assert.deepEqual(imageMetaAttributes([undefined, undefined]), []);
});
