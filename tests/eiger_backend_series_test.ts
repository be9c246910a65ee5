/**
 * The sans-I/O series collector: ordering, validation of every message, error texts.
 */

import assert from "node:assert/strict";
import { SeriesCollector, type StreamEvent, type StreamMessage } from "../devices/eiger/series.ts";
import type { DataEvent } from "../devices/contract.ts";

const W = 4;
const H = 2;

function collector(numImages = 2): { c: SeriesCollector; out: DataEvent[] } {
  const out: DataEvent[] = [];
  const c = new SeriesCollector("local", {
    numImages,
    channels: ["threshold_1"],
    width: W,
    height: H,
    pixelType: "uint16",
  }, (e) => out.push(e));
  return { c, out };
}

function msg(m: StreamMessage): StreamEvent {
  return { kind: "message", message: m };
}

const start = (id = 5, n = 2): StreamEvent =>
  msg({
    type: "start",
    seriesId: id,
    uniqueId: "U",
    channels: ["threshold_1"],
    numberOfImages: n,
    width: W,
    height: H,
  });
const image = (imageId: number, opts: { id?: number; pixels?: Uint16Array } = {}): StreamEvent =>
  msg({
    type: "image",
    seriesId: opts.id ?? 5,
    uniqueId: "U",
    imageId,
    realTime: 0.5,
    timestamp: 1000 + imageId,
    data: {
      threshold_1: { dims: [H, W], dtype: "uint16", pixels: opts.pixels ?? new Uint16Array(W * H) },
    },
  });
const end = (id = 5): StreamEvent => msg({ type: "end", seriesId: id, uniqueId: "U" });

Deno.test("eiger series: messages before the arm reply are replayed in order", () => {
  const { c, out } = collector();
  c.handle(start());
  c.handle(image(0));
  assert.equal(out.length, 0);
  c.armed(5);
  c.handle(image(1));
  c.handle(end());
  assert.deepEqual(out.map((e) => e.type), ["start-data", "image-data", "image-data", "end-data"]);
  assert.deepEqual(out[0], { type: "start-data", seriesId: "local", seriesNumber: 5 });
  const img = out[1] as Extract<DataEvent, { type: "image-data" }>;
  assert.equal(img.timestamp, 1000);
  assert.equal(img.exposure, 0.5);
  assert.equal(c.ended, true);
  assert.equal(c.error, undefined);
});

Deno.test("eiger series: a message of another series before the start is an error", () => {
  // Leftovers of series the backend abandoned are dropped before they reach the collector
  // (tests/eiger_cancelled_series_test.ts); what still arrives here belongs to nobody.
  const { c, out } = collector(1);
  c.armed(5);
  c.handle(image(0, { id: 4 }));
  assert.match(
    c.error ?? "",
    /stream image of unknown series 4 \(U\) before the start of series 5/,
  );
  assert.deepEqual(out, []);
});

Deno.test("eiger series: each bad message is an error naming the series", () => {
  const cases: [StreamEvent[], RegExp][] = [
    [[start(6)], /stream series id 6 does not match armed series 5/],
    [[image(0)], /series 5: stream image message before its start/],
    [[start(5, 3)], /announces 3 images, expected 2/],
    [[start(), image(2)], /image id 2 out of range 0\.\.1/],
    [[start(), image(0), image(0)], /image id 0 received twice/],
    [[start(), image(0, { pixels: new Uint16Array(3) })], /uint16\[3\] instead of uint16\[8\]/],
    [[start(), image(0, { id: 9 })], /stream image of series 9 .* during series 5/],
    [[start(), image(0), end()], /series 5 ended after 1 of 2 images \(missing image id 1\)/],
    [[start(), { kind: "disconnected", reason: "reset" }], /connection lost during series 5/],
    [[start(), { kind: "error", message: "bad CBOR" }], /series 5: bad stream message: bad CBOR/],
  ];
  for (const [events, pattern] of cases) {
    const { c } = collector();
    c.armed(5);
    for (const e of events) c.handle(e);
    assert.match(c.error ?? "", pattern);
  }
});

Deno.test("eiger series: nothing is emitted after close or an error", () => {
  const { c, out } = collector();
  c.armed(5);
  c.handle(start());
  c.handle(image(0));
  c.close();
  c.handle(image(1));
  c.handle(end());
  assert.deepEqual(out.map((e) => e.type), ["start-data", "image-data"]);
  assert.equal(c.error, undefined, "a closed collector records no further errors");
});
