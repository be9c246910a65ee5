/**
 * The series assembler, without controller or device: every data-protocol violation, the one
 * image-order rule, and when pixels go back to the backend.
 */

import assert from "node:assert/strict";
import { type DataEvent, type DeviceConfig, imageOrderProblem } from "../devices/contract.ts";
import { SeriesAssembler, type SeriesInfo } from "../lib/series_assembler.ts";

const config = (numImages: number): DeviceConfig => ({
  channels: [{ name: "a", meta: {} }, { name: "b", meta: {} }],
  numImages,
  width: 2,
  height: 2,
  pixelType: "uint16",
});
const info = (): SeriesInfo => ({
  uuid: "u",
  ssqcnt: 0,
  duration: 1,
  seriesNumber: -1,
  startedAt: 0,
});
const start = (id = "s"): DataEvent => ({ type: "start-data", seriesId: id, seriesNumber: 7 });
const end = (id = "s"): DataEvent => ({ type: "end-data", seriesId: id });
const cancel = (id = "s"): DataEvent => ({ type: "cancel-data", seriesId: id });
function image(index: number, opts: { id?: string; release?: () => void } = {}): DataEvent {
  return {
    type: "image-data",
    seriesId: opts.id ?? "s",
    index,
    timestamp: 100 + index,
    exposure: 0.5,
    images: { a: new Uint16Array(4).fill(index), b: new Uint16Array(4).fill(10 + index) },
    release: opts.release,
  };
}

function run(numImages: number, events: DataEvent[]) {
  const asm = new SeriesAssembler();
  asm.open(info(), config(numImages));
  return { asm, outcomes: events.map((e) => asm.accept(e)) };
}

Deno.test("assembler: the one image-order rule", () => {
  assert.equal(imageOrderProblem(0, 0, 2), undefined);
  assert.equal(imageOrderProblem(1, 1, 2), undefined);
  assert.equal(imageOrderProblem(1, 0, 2), "Image index 1 out of order (expected 0)");
  assert.equal(imageOrderProblem(0, 1, 2), "Image index 0 out of order (expected 1)");
  assert.equal(imageOrderProblem(2, 2, 2), "Too many images: more than 2");
});

Deno.test("assembler: StartData, N images, EndData make a frame", () => {
  const { asm, outcomes } = run(2, [start(), image(0), image(1), end()]);
  assert.deepEqual(outcomes.map((o) => o.kind), ["series-start", "image", "image", "series-end"]);
  assert.equal(asm.series?.seriesId, "s");
  assert.equal(asm.series?.seriesNumber, 7);
  const f = asm.frame();
  assert.deepEqual([...f.images.a], [0, 0, 0, 0, 1, 1, 1, 1]);
  assert.deepEqual([...f.images.b], [10, 10, 10, 10, 11, 11, 11, 11]);
  assert.deepEqual([...f.timestamps], [100, 101]);
  assert.deepEqual([...f.exposures], [0.5, 0.5]);
  const cancelled = run(2, [start(), image(0), cancel()]);
  assert.deepEqual(cancelled.outcomes.at(-1), { kind: "series-cancel" });
  assert.throws(() => cancelled.asm.frame(), /no completed series/);
});

Deno.test("assembler: every violation of the data protocol is named", () => {
  const cases: [number, DataEvent[], RegExp][] = [
    [2, [image(0)], /ImageData before StartData \(series s\)/],
    [2, [start(), start("t")], /Second StartData \(series t\) in series s/],
    [2, [start(), image(0, { id: "t" })], /ImageData of wrong series t \(expected s\)/],
    [2, [start(), image(1)], /Image index 1 out of order \(expected 0\)/],
    [2, [start(), image(0), image(0)], /Image index 0 out of order \(expected 1\)/],
    [2, [start(), image(0), image(1), image(2)], /Too many images: more than 2 in series s/],
    [2, [start(), image(0), end()], /Series ended after 1 of 2 images/],
    [2, [start(), image(0), image(1), end(), image(0)], /ImageData after EndData of series s/],
    [2, [start(), cancel(), end()], /EndData after CancelData of series s/],
    [2, [start("x"), cancel("x"), start("y")], /StartData outside an acquisition|after/],
  ];
  for (const [n, events, message] of cases) {
    const { outcomes } = run(n, events);
    const last = outcomes.at(-1)!;
    assert.equal(last.kind, "data-violation", message.source);
    assert.match((last as { detail: string }).detail, message);
    assert.ok(outcomes.slice(0, -1).every((o) => o.kind !== "data-violation"), message.source);
  }
  const idle = new SeriesAssembler();
  assert.deepEqual(idle.accept(start()), {
    kind: "data-violation",
    detail: "StartData outside an acquisition (series s)",
  });
  const aborted = run(2, [start(), image(0)]);
  aborted.asm.abort();
  assert.deepEqual(aborted.asm.accept(image(1)), {
    kind: "data-violation",
    detail: "ImageData after abort of series s",
  });
});

Deno.test("assembler: images of the wrong channel, size or type are refused", () => {
  const bad = (change: (images: Record<string, Uint16Array | Float32Array>) => void) => {
    const ev = image(0) as Extract<DataEvent, { type: "image-data" }>;
    change(ev.images as Record<string, Uint16Array>);
    const { outcomes } = run(1, [start(), ev]);
    return (outcomes[1] as { detail?: string }).detail;
  };
  assert.match(bad((i) => delete i.b)!, /Image 0 lacks channel b/);
  assert.match(bad((i) => (i.zz = new Uint16Array(4)))!, /unknown channel zz/);
  assert.match(bad((i) => (i.a = new Uint16Array(3)))!, /has 3 pixels, expected 4/);
  assert.match(bad((i) => (i.a = new Float32Array(4)))!, /Float32Array, expected Uint16Array/);
});

Deno.test("assembler: pixels go back to the backend only when the last reader gave them back", () => {
  const released: string[] = [];
  const single = run(1, [start(), image(0, { release: () => released.push("s") }), end()]);
  const frame = single.asm.frame();
  assert.equal(frame.images.a.length, 4, "a single image is handed on as is");
  const hooks = frame.retain();
  const pv = frame.retain();
  hooks();
  hooks(); // giving back twice counts once
  assert.deepEqual(released, [], "still read by the PV");
  pv();
  assert.deepEqual(released, ["s"], "released once the last reader gave it back");

  const multi = new SeriesAssembler();
  multi.open(info(), config(2));
  const order: number[] = [];
  for (const ev of [start(), image(0, { release: () => order.push(0) }), image(1)]) {
    multi.accept(ev);
  }
  assert.deepEqual(order, [0], "a copied image is released at once");
  multi.accept(end());
  const first = multi.frame();
  const keep = first.retain();
  multi.close();
  multi.open({ ...info(), uuid: "v" }, config(2));
  for (const ev of [start("t"), image(0, { id: "t" }), image(1, { id: "t" }), end("t")]) {
    multi.accept(ev);
  }
  const second = multi.frame();
  assert.notEqual(second.images.a, first.images.a, "a stack still read is not reused");
  assert.deepEqual([...first.images.a], [0, 0, 0, 0, 1, 1, 1, 1], "and stays intact");
  keep();
  second.retain()();
  multi.close();
  multi.open({ ...info(), uuid: "w" }, config(2));
  for (const ev of [start("r"), image(0, { id: "r" }), image(1, { id: "r" }), end("r")]) {
    multi.accept(ev);
  }
  assert.equal(multi.frame().images.a, second.images.a, "a given-back stack is reused");
});

Deno.test("assembler: warm prepares a spare stack while idle, used by the next series", () => {
  const asm = new SeriesAssembler();
  const cfg = config(3); // 2 channels × 3 images × 4 pixels × 2 bytes = 24 bytes per channel
  assert.equal(asm.warm(config(1), 1024), false, "single images need no stack");
  // Two sets of stacks for the next two series: 2 × 48 bytes.
  let steps = 1;
  while (asm.warm(cfg, 16)) steps++;
  assert.equal(steps, 6, "written 16 bytes at a time");
  assert.equal(asm.warm(cfg, 16), false, "nothing left");
  asm.open(info(), cfg);
  for (const ev of [start(), image(0), image(1), image(2), end()]) asm.accept(ev);
  const frame = frameStacks(asm);
  assert.equal(asm.warm(cfg, 1024), false, "PROCESS: the frame's stacks are not touched");
  assert.deepEqual([...frame.a], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  const hold = asm.frame().retain();
  asm.close();
  // Idle with the frame held: the second prepared set is ready for the next series.
  assert.equal(asm.warm(cfg, 16), false);
  asm.open({ ...info(), uuid: "v" }, cfg);
  assert.equal(asm.warm(cfg, 8), false, "the open series got the prepared stacks");
  asm.accept(start("t"));
  for (const i of [0, 1, 2]) asm.accept(image(i, { id: "t" }));
  asm.accept(end("t"));
  const second = frameStacks(asm);
  assert.notEqual(second.a, frame.a, "the held stack is not reused");
  assert.deepEqual([...frame.a], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], "and stays intact");
  assert.deepEqual([...second.a], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  hold();
});

Deno.test("assembler: while a frame is held, one more set of stacks is prepared", () => {
  const asm = new SeriesAssembler();
  const cfg = config(2);
  asm.open(info(), cfg); // nothing prepared: new stacks
  for (const ev of [start(), image(0), image(1), end()]) asm.accept(ev);
  const held = asm.frame().retain();
  const first = frameStacks(asm).a;
  asm.close();
  let steps = 1;
  while (asm.warm(cfg, 16)) steps++;
  assert.equal(steps, 2, "one set of 2 × 16 bytes");
  held(); // given back: two sets now, nothing more to prepare
  assert.equal(asm.warm(cfg, 16), false);
  asm.open({ ...info(), uuid: "v" }, cfg);
  for (const ev of [start("t"), image(0, { id: "t" }), image(1, { id: "t" }), end("t")]) {
    asm.accept(ev);
  }
  assert.equal(frameStacks(asm).a, first, "the stack given back last is used first");
});

Deno.test("assembler: warm writes only ahead of the open series' images", () => {
  const asm = new SeriesAssembler();
  const cfg = config(3);
  asm.open(info(), cfg); // no spare: new stacks
  asm.accept(start());
  asm.accept(image(0));
  assert.equal(asm.warm(cfg, 8), true, "image 1 of channel a warmed");
  asm.accept(image(1));
  while (asm.warm(cfg, 8));
  asm.accept(image(2));
  asm.accept(end());
  assert.deepEqual([...frameStacks(asm).a], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  assert.deepEqual([...frameStacks(asm).b], [10, 10, 10, 10, 11, 11, 11, 11, 12, 12, 12, 12]);
});

Deno.test("assembler: the stacks of an aborted series are reused by the next one", () => {
  const asm = new SeriesAssembler();
  const cfg = config(2);
  const series = (uuid: string, id: string) => {
    asm.open({ ...info(), uuid }, cfg);
    for (const ev of [start(id), image(0, { id }), image(1, { id }), end(id)]) asm.accept(ev);
    const images = frameStacks(asm);
    asm.frame().retain()();
    asm.close();
    return images;
  };
  const first = series("u", "s");
  asm.open({ ...info(), uuid: "v" }, cfg); // takes the given-back stacks
  asm.accept(start("t"));
  asm.accept(image(0, { id: "t" }));
  asm.abort();
  const third = series("w", "r");
  assert.equal(third.a, first.a, "the aborted series' stacks came back");
  assert.deepEqual([...third.a], [0, 0, 0, 0, 1, 1, 1, 1]);
});

function frameStacks(asm: SeriesAssembler) {
  return asm.frame().images;
}

Deno.test("assembler: refresh reads the prepared spare stacks in steps, a pass at a time, never while a series is open", () => {
  const asm = new SeriesAssembler();
  const cfg = config(3); // 24 bytes per channel stack
  const pass = () => {
    let steps = 1;
    while (asm.refresh(cfg, 16)) steps++;
    return steps;
  };
  assert.equal(asm.refresh(cfg, 16), false, "nothing prepared yet: nothing to read");
  while (asm.warm(cfg, 1024));
  assert.equal(pass(), 6, "two sets of two 24-byte stacks, 16 bytes a step");
  assert.equal(pass(), 6, "the next pass starts over");
  assert.equal(asm.refresh(cfg, 16), true, "a pass begun…");
  asm.open(info(), cfg);
  assert.equal(asm.refresh(cfg, 16), false, "…ends when a series opens");
  for (const ev of [start(), image(0), image(1), image(2), end()]) asm.accept(ev);
  const hold = asm.frame().retain();
  asm.close();
  while (asm.warm(cfg, 1024));
  assert.equal(pass(), 3, "the stacks of the held frame are not spares");
  assert.equal(asm.refresh(config(1), 16), false, "single images have no stacks");
  hold();
});
