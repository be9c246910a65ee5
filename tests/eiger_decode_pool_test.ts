/**
 * The stream decode pool (devices/eiger/decode_pool.ts) with real workers: pixel-exact decoding of
 * messages made independently by Python (cbor2, bitshuffle, python-lz4) for 8/16/32-bit pixels,
 * delivery in push order when workers finish out of order, and the backlog bound.
 *
 * Note: `deno test` type-checks each worker it starts (seconds on a loaded machine), so the pools
 * here are few and the waits generous (failure detectors only, never synchronisation).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { StreamDecoder } from "../devices/eiger/decode_pool.ts";
import { releaseDecodeBuffers } from "../devices/eiger/decode_buffers.ts";
import { FRAME_POOL_MIN_BYTES, FrameBufferPool } from "../devices/eiger/frame_buffers.ts";
import { SeriesCollector, type StreamEvent, type StreamImage } from "../devices/eiger/series.ts";
import type { DataEvent } from "../devices/contract.ts";
import { runPyToDone } from "./support/py/peer.ts";
import { streamImageFrame } from "./support/eiger.ts";

const DTYPES = ["uint8", "uint16", "uint32"] as const;
const COMPRESSIONS = ["bslz4", "lz4", "none"] as const;

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function pythonMessages(rows: number, cols: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "eiger_pool_py_" });
  await runPyToDone("stream_peer.py", ["make", dir, String(rows), String(cols)]);
  return dir;
}

/** A decoder whose delivered events can be awaited by count. */
function recordingDecoder(options: ConstructorParameters<typeof StreamDecoder>[0]) {
  const events: StreamEvent[] = [];
  let waiters: (() => void)[] = [];
  const decoder = new StreamDecoder(options, (event) => {
    events.push(event);
    const w = waiters;
    waiters = [];
    w.forEach((f) => f());
  });
  const count = async (n: number, timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs;
    while (events.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${events.length} of ${n} events`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
      clearTimeout(timer);
    }
    return events;
  };
  return { decoder, events, count };
}

function imageFrame(imageId: number, pixels: Uint16Array): Uint8Array {
  return streamImageFrame(imageId, pixels, 16, 32);
}

function imageIds(events: StreamEvent[]): (number | string)[] {
  return events.map((e) =>
    e.kind === "message" && e.message.type === "image" ? e.message.imageId : e.kind
  );
}

Deno.test("decode pool: Python bitshuffle/lz4 messages decode pixel-exactly in the workers, in order", async () => {
  const small = await pythonMessages(67, 133);
  const full = await pythonMessages(512, 1028);
  // Frames arrive in recycled receive buffers, as from the ZeroMQ reader.
  const frames = new FrameBufferPool(64);
  const { decoder, count } = recordingDecoder({ workers: 2, backlog: 64, frames });
  try {
    const expected: { raw: Uint8Array; what: string; dtype: string }[] = [];
    let pooled = 0;
    for (const dir of [small, full]) {
      for (const dtype of DTYPES) {
        const raw = await Deno.readFile(join(dir, `py_${dtype}.raw`));
        for (const comp of COMPRESSIONS) {
          const bytes = await Deno.readFile(join(dir, `py_${dtype}_${comp}.cbor`));
          const frame = frames.take(bytes.length);
          frame.set(bytes);
          if (bytes.length >= FRAME_POOL_MIN_BYTES && comp !== "none") pooled++;
          decoder.push(frame);
          expected.push({
            raw,
            what: `${dir === small ? "67x133" : "512x1028"} ${dtype}/${comp}`,
            dtype,
          });
        }
      }
    }
    const events = await count(expected.length);
    assert.equal(events.length, expected.length);
    events.forEach((event, i) => {
      const want = expected[i];
      assert.equal(event.kind, "message", want.what);
      const msg = (event as { message: StreamImage }).message;
      const ch = msg.data.threshold_1;
      assert.equal(ch.dtype, want.dtype, want.what);
      assert.deepEqual(bytesOf(ch.pixels), want.raw, `${want.what} pixels`);
    });
    assert.equal(decoder.backlog, 0);
    // Compressed frames' buffers came back for reuse; an uncompressed image viewed in its frame
    // keeps that buffer (it was handed on as the pixels).
    assert.ok(pooled > 0);
    assert.ok(frames.kept >= pooled, `${frames.kept} buffers back, ${pooled} compressed`);
  } finally {
    decoder.close();
    await Deno.remove(small, { recursive: true });
    await Deno.remove(full, { recursive: true });
  }
});

Deno.test("decode pool: frames come out in push order although a worker finishes them out of order", async () => {
  const completed: number[] = [];
  let secondDone: (() => void) | undefined;
  const second = new Promise<void>((resolve) => secondDone = resolve);
  const { decoder, count } = recordingDecoder({
    workers: 1,
    backlog: 16,
    hold: (seq) => seq === 1, // the first frame (seq 0 is the connected event)
    onResult: (seq) => {
      completed.push(seq);
      if (seq === 2) secondDone!();
    },
  });
  try {
    const pixels = (k: number) => new Uint16Array(512).map((_, i) => (i * k) & 0xfff);
    decoder.pushEvent({ kind: "connected" });
    decoder.push(imageFrame(0, pixels(1)));
    decoder.push(imageFrame(1, pixels(2)));
    decoder.pushEvent({ kind: "disconnected", reason: "test" });
    decoder.push(imageFrame(2, pixels(3)));
    await second; // frame 1 is done while frame 0 is still held in the worker
    assert.deepEqual(imageIds(await count(1)), ["connected"]);
    decoder.releaseHeld(1);
    const events = await count(5);
    assert.deepEqual(imageIds(events), ["connected", 0, 1, "disconnected", 2]);
    assert.equal(completed.indexOf(2) < completed.indexOf(1), true, `completion ${completed}`);
    const img = (events[2] as { message: StreamImage }).message;
    assert.deepEqual(img.data.threshold_1.pixels, pixels(2));
  } finally {
    decoder.close();
  }
});

Deno.test("decode pool: more frames than the backlog bound is an overflow event, never silent growth", async () => {
  const { decoder, count } = recordingDecoder({ workers: 1, backlog: 3, hold: (seq) => seq === 0 });
  try {
    const pixels = new Uint16Array(512).fill(7);
    for (let i = 0; i < 6; i++) decoder.push(imageFrame(i, pixels));
    assert.equal(decoder.backlog, 3);
    assert.equal(decoder.discarded, 3); // frames 3..5: the overflow event took frame 3's place
    decoder.releaseHeld(0);
    const events = await count(4);
    assert.deepEqual(imageIds(events).slice(0, 3), [0, 1, 2]);
    // Each frame says how many were waiting when it arrived (itself included).
    assert.deepEqual(events.slice(0, 3).map((e) => e.kind === "message" && e.backlog), [1, 2, 3]);
    const overflow = events[3];
    assert.equal(overflow.kind, "overflow");
    assert.match(
      (overflow as { message: string }).message,
      /decode backlog overflow: more than 3 frames .*EIGER_DECODE_BACKLOG=3/,
    );
    await decoder.idle();
    // Drained: the next frame is decoded again.
    decoder.push(imageFrame(9, pixels));
    assert.equal(decoder.discarded, 0);
    const drained = await count(5);
    assert.deepEqual(imageIds(drained).slice(4), [9]);
    assert.equal(drained[4].kind === "message" && drained[4].backlog, 1);

    // The series collector turns the overflow into the acquisition's error, naming it.
    const emitted: DataEvent[] = [];
    const collector = new SeriesCollector("local", {
      numImages: 4,
      channels: ["threshold_1"],
      width: 32,
      height: 16,
      pixelType: "uint16",
    }, (e) => emitted.push(e));
    collector.armed(3);
    collector.handle({
      kind: "message",
      message: {
        type: "start",
        seriesId: 3,
        uniqueId: "U3",
        channels: ["threshold_1"],
        numberOfImages: 4,
        width: 32,
        height: 16,
      },
    });
    for (const event of events.slice(0, 4)) collector.handle(event);
    assert.match(collector.error ?? "", /^series 3: decode backlog overflow: more than 3 frames/);
    assert.equal(collector.maxBacklog, 3);
    assert.deepEqual(emitted.map((e) => e.type), [
      "start-data",
      "image-data",
      "image-data",
      "image-data",
    ]);
  } finally {
    decoder.close();
  }
});

Deno.test("decode pool: without workers frames decode on the calling thread, same events", () => {
  const events: StreamEvent[] = [];
  const decoder = new StreamDecoder({ workers: 0, backlog: 2 }, (e) => events.push(e));
  const pixels = new Uint16Array(512).map((_, i) => i);
  decoder.push(imageFrame(0, pixels));
  decoder.push(new Uint8Array([0xff, 0x00]));
  decoder.close();
  assert.deepEqual(imageIds(events), [0, "error"]);
  assert.deepEqual((events[0] as { message: StreamImage }).message.data.threshold_1.pixels, pixels);
});

Deno.test("decode pool: released image buffers circulate (none new after the first series), and a late worker cannot make the other run ahead into new buffers", async () => {
  const rows = 128, cols = 256, images = 24; // 128 KiB images: recycled
  const completed: number[] = [];
  let delivered = 0;
  let wake: (() => void) | undefined;
  const until = async (done: () => boolean, what: string) => {
    const deadline = Date.now() + 120_000;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
      clearTimeout(timer);
    }
  };
  const decoder = new StreamDecoder({
    workers: 2,
    backlog: 64,
    hold: (seq) => seq === 0,
    onResult: (seq) => {
      completed.push(seq);
      wake?.();
    },
  }, (event) => {
    // Released at once, as the series assembler does after copying into the stack.
    if (event.kind === "message" && event.message.type === "image") {
      releaseDecodeBuffers(Object.values(event.message.data).map((c) => c.pixels));
    }
    delivered++;
    wake?.();
  });
  try {
    const frames = Array.from(
      { length: images },
      (_, k) => streamImageFrame(k, new Uint32Array(rows * cols).fill(k), rows, cols),
    );
    for (const frame of frames) decoder.push(frame.slice());
    // Frame 0 is held in one worker: frames up to the window (4 per worker) beyond it are
    // decoded, the rest wait undispatched instead of filling new buffers.
    await until(() => completed.length >= 7, "the frames within the window");
    assert.equal(decoder.queued, images - 8, `completed ${completed}`);
    assert.ok(decoder.workerBuffersMade <= 8, `${decoder.workerBuffersMade} buffers made`);
    decoder.releaseHeld(0);
    await until(() => delivered >= images, "the first series");
    const afterFirst = decoder.workerBuffersMade;
    for (let series = 2; series <= 3; series++) {
      for (const frame of frames) decoder.push(frame.slice());
      await until(() => delivered >= series * images, `series ${series}`);
    }
    assert.equal(decoder.workerBuffersMade, afterFirst, "no new output buffer in series 2 and 3");
  } finally {
    decoder.close();
  }
});
