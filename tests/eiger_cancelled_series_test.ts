/**
 * The book of series the EIGER backend abandoned (devices/eiger/cancelled_series.ts): which late
 * messages it claims, the one report per series, and how series numbers that restart are handled.
 */

import assert from "node:assert/strict";
import { CancelledSeries, type DroppedReport } from "../devices/eiger/cancelled_series.ts";
import type { StreamMessage } from "../devices/eiger/series.ts";

function book(limit?: number): { b: CancelledSeries; reports: DroppedReport[] } {
  const reports: DroppedReport[] = [];
  return { b: new CancelledSeries((r) => reports.push(r), limit), reports };
}

const start = (seriesId: number, uniqueId = "U"): StreamMessage => ({
  type: "start",
  seriesId,
  uniqueId,
  channels: ["threshold_1"],
  numberOfImages: 4,
  width: 2,
  height: 2,
});
const image = (seriesId: number, imageId: number, uniqueId = "U"): StreamMessage => ({
  type: "image",
  seriesId,
  uniqueId,
  imageId,
  realTime: 1,
  timestamp: 0,
  data: {},
});
const end = (seriesId: number, uniqueId = "U"): StreamMessage => ({
  type: "end",
  seriesId,
  uniqueId,
});

Deno.test("cancelled series: late messages are claimed; the end reports them once", () => {
  const { b, reports } = book();
  b.add(7, "U");
  assert.equal(b.claim(image(7, 3)), true);
  assert.equal(b.claim(image(7, 1)), true);
  assert.equal(b.claim(image(7, 2)), true);
  assert.equal(b.claim(image(7, 5)), true);
  assert.deepEqual(reports, []);
  assert.equal(b.claim(end(7)), true);
  assert.deepEqual(reports, [{
    seriesId: 7,
    uniqueId: "U",
    dropped: "images 1-3, 5 (4), end",
    unexpected: true,
    why: "cancelled",
  }]);
  assert.equal(b.claim(image(7, 6)), true, "still claimed after the report");
  b.flush();
  assert.equal(reports.length, 1, "one report per series");
});

Deno.test("cancelled series: only the end dropped is expected, not unexpected", () => {
  const { b, reports } = book();
  b.add(3, "U");
  b.claim(end(3));
  assert.deepEqual(reports, [{
    seriesId: 3,
    uniqueId: "U",
    dropped: "end",
    unexpected: false,
    why: "cancelled",
  }]);
});

Deno.test("cancelled series: other series and other unique ids are not claimed", () => {
  const { b } = book();
  b.add(7, "U");
  assert.equal(b.claim(image(8, 0)), false);
  assert.equal(b.claim(image(7, 0, "OTHER")), false, "same number after a restart");
  assert.equal(b.has(7, "U"), true);
  assert.equal(b.has(7, "OTHER"), false);
});

Deno.test("cancelled series: a series known by number learns its unique id", () => {
  const { b, reports } = book();
  b.add(4); // from an abort reply: number only
  assert.equal(b.claim(start(4, "A")), true);
  assert.equal(b.claim(image(4, 0, "B")), false, "a different series now");
  b.claim(end(4, "A"));
  assert.equal(reports[0].uniqueId, "A");
  assert.equal(reports[0].dropped, "start, end");
});

Deno.test("cancelled series: a number handed out again is forgotten unless its id is known", () => {
  const { b } = book();
  b.add(2);
  b.add(5, "X");
  b.armed(2);
  assert.equal(b.claim(start(2, "NEW")), false, "the new series 2 is not a leftover");
  b.add(6);
  b.numbersRestart();
  assert.equal(b.claim(start(6)), false);
  assert.equal(b.claim(image(5, 0, "X")), true, "known by unique id: kept");
});

Deno.test("cancelled series: flush reports a series whose end never came; the book is bounded", () => {
  const { b, reports } = book(2);
  b.add(1, "A");
  b.claim(image(1, 0, "A"));
  b.add(2, "B");
  b.add(3, "C"); // pushes series 1 out, which reports what it dropped
  assert.equal(b.size, 2);
  assert.deepEqual(reports.map((r) => [r.seriesId, r.dropped]), [[1, "image 0 (1)"]]);
  b.claim(start(2, "B"));
  b.flush();
  assert.deepEqual(reports.map((r) => [r.seriesId, r.dropped]), [[1, "image 0 (1)"], [
    2,
    "start",
  ]]);
  b.flush();
  assert.equal(reports.length, 2);
});
