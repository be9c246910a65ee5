/**
 * NTNDArray source buffers: pixels of a record-owned array, or of a frame handed over with a
 * `retain`, are sent by reference (borrowed while a queued message holds them), other pixels
 * handed over by a poster are copied; in every case a held value keeps its bytes while later
 * images are posted.
 */
import assert from "node:assert/strict";
import { PvRecord } from "../ca/store.ts";
import { defaultCodec } from "../ca/codec_dbr.ts";
import { ndArraySource } from "../pva/source.ts";
import type { UnionValue } from "../pva/pvdata.ts";

const WIDTH = 64;
const HEIGHT = 32;
const COUNT = WIDTH * HEIGHT; // image-sized: stored as posted

function setup() {
  const record = new PvRecord({ name: "S:img", type: "double", maxCount: COUNT }, defaultCodec);
  const source = ndArraySource(record, { width: WIDTH, height: HEIGHT, images: 1, pixel: "uint" });
  const pixels = () => (source.value().value as UnionValue).value as Uint32Array;
  return { record, source, pixels };
}

Deno.test("pva source: copy-posted pixels go out by reference and stay intact while held", () => {
  const { record, source, pixels } = setup();
  const frame = Uint32Array.from({ length: COUNT }, (_, i) => i);
  record.post(frame, { copy: true });
  const first = pixels();
  assert.equal(
    first.buffer,
    (record.snapshot().value as Uint32Array).buffer,
    "no copy of the record's array",
  );
  const release = source.hold!();
  frame.fill(7);
  record.post(frame, { copy: true });
  const second = pixels();
  assert.notEqual(second.buffer, first.buffer);
  assert.deepEqual([...first], Array.from({ length: COUNT }, (_, i) => i), "held bytes intact");
  assert.equal(second[0], 7);
  release();
  // Superseded and released: the record fills that array again for a later image.
  const hold2 = source.hold!();
  frame.fill(9);
  record.post(frame, { copy: true });
  assert.equal(pixels().buffer, first.buffer, "the given-back array is reused");
  assert.equal(second[0], 7, "the held second image is intact");
  hold2();
});

Deno.test("pva source: pixels handed over by the poster are copied (the poster may reuse them)", () => {
  const { record, source, pixels } = setup();
  const frame = Uint32Array.from({ length: COUNT }, (_, i) => i + 1);
  record.post(frame, { keep: true });
  const sent = pixels();
  assert.notEqual(sent.buffer, frame.buffer, "a copy, not the poster's array");
  const release = source.hold!();
  record.post(Uint32Array.from(frame), { keep: true });
  frame.fill(0); // the poster reuses its first array once replaced
  assert.equal(sent[0], 1, "the queued copy keeps its bytes");
  release();
});

/** A frame with reference counting as `Frame.retain` (lib/series_assembler.ts). */
function countedFrame(fill: number) {
  const pixels = new Uint32Array(COUNT).fill(fill);
  const state = { refs: 0, taken: 0 };
  const retain = () => {
    state.refs++;
    state.taken++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      state.refs--;
    };
  };
  return { pixels, state, retain };
}

Deno.test("pva source: frames handed over with a retain are lent, not copied, and given back once superseded", () => {
  const { record, source, pixels } = setup();
  const a = countedFrame(1);
  record.post(a.pixels, { keep: true, retain: a.retain });
  assert.equal(a.state.taken, 0, "nothing borrowed before a client reads");
  assert.equal(pixels().buffer, a.pixels.buffer, "the frame itself, no copy");
  assert.equal(a.state.refs, 1, "one reference while it is the served value");
  const release = source.hold!(); // a queued message
  const b = countedFrame(2);
  record.post(b.pixels, { keep: true, retain: b.retain });
  assert.equal(a.state.refs, 1, "still referenced by the queued message");
  assert.equal(pixels().buffer, b.pixels.buffer);
  release(); // written
  assert.equal(a.state.refs, 0, "given back once written and superseded");
  // Superseded with nothing queued: given back at the post, before any client reads again.
  const c = countedFrame(3);
  record.post(c.pixels, { keep: true, retain: c.retain });
  assert.equal(b.state.refs, 0, "given back at the next post");
  assert.equal(c.state.taken, 0);
  // A copying post after a lent frame: the frame is given back, the record's own array lent.
  pixels();
  record.post(new Uint32Array(COUNT).fill(4), { copy: true });
  assert.equal(c.state.refs, 0);
  assert.equal(pixels()[0], 4);
  assert.equal(a.state.taken + b.state.taken + c.state.taken, 3, "one reference per served frame");
});
