/**
 * Decoding straight into lent series stacks (devices/eiger/image_target.ts, decode_pool.ts
 * setTarget, lib/series_assembler.ts lendable): pixel-exact in the workers for 8/16/32-bit
 * images from Python's bitshuffle/lz4 and uncompressed, delivered as views of the main thread's
 * own stack (so the assembler copies nothing), no output buffer made per image in steady state,
 * decoders prepared before the first frame, a new target only after the frames in flight, and
 * one claim per slot.
 *
 * Note: `deno test` type-checks each worker it starts (seconds on a loaded machine): few pools,
 * generous waits (failure detectors only).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { StreamDecoder } from "../devices/eiger/decode_pool.ts";
import { FrameBufferPool } from "../devices/eiger/frame_buffers.ts";
import {
  claimedSlots,
  claimSlot,
  imageTarget,
  TargetHolder,
} from "../devices/eiger/image_target.ts";
import { decodeBuffersMade } from "../devices/eiger/decode_buffers.ts";
import type { StreamEvent, StreamImage } from "../devices/eiger/series.ts";
import type { DeviceConfig, PixelArray, PixelType } from "../devices/contract.ts";
import { SeriesAssembler } from "../lib/series_assembler.ts";
import { runPyToDone } from "./support/py/peer.ts";
import { streamImageFrame } from "./support/eiger.ts";
import { acquire, startHarness } from "./support/controller_harness.ts";
import { fakeConfig } from "./support/fake_device.ts";
import type { LentSeriesStacks } from "../devices/contract.ts";

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function config(
  numImages: number,
  width: number,
  height: number,
  pixelType: PixelType,
): DeviceConfig {
  return { channels: [{ name: "threshold_1", meta: {} }], numImages, width, height, pixelType };
}

/** Shared stacks for `cfg`, as the assembler makes them (ready to lend). */
function sharedStacks(cfg: DeviceConfig): Record<string, PixelArray> {
  const assembler = new SeriesAssembler();
  while (assembler.warm(cfg, 1 << 30));
  assembler.open({ uuid: "u", ssqcnt: 0, duration: 1, seriesNumber: -1, startedAt: 0 }, cfg);
  const lent = assembler.lendable();
  assert.ok(lent !== undefined);
  return lent.images;
}

/** A decoder whose delivered events can be awaited by count. */
function recordingDecoder(options: ConstructorParameters<typeof StreamDecoder>[0]) {
  const events: StreamEvent[] = [];
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    w.forEach((f) => f());
  };
  const decoder = new StreamDecoder({
    ...options,
    onPrepared: (bytes) => {
      options.onPrepared?.(bytes);
      wake();
    },
  }, (event) => {
    events.push(event);
    wake();
  });
  const until = async (done: () => boolean, what: string, timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
      clearTimeout(timer);
    }
  };
  const count = (n: number) => until(() => events.length >= n, `${n} events`).then(() => events);
  return { decoder, events, until, wake, count };
}

function imageOf(event: StreamEvent | undefined): StreamImage {
  assert.ok(event?.kind === "message" && event.message.type === "image", JSON.stringify(event));
  return event.message;
}

/** Detector-like pixels of image `k` (mostly small counts, some zero runs). */
function pixelsOf(k: number, n: number): Uint32Array {
  return new Uint32Array(n).map((_, i) => ((i * 7 + k * 13) % 97 < 60 ? 0 : (i + k) % 4096));
}

Deno.test("in place: Python bitshuffle/lz4/raw images decode into their stack slot in the workers, pixel-exact, viewed in the main thread's stack", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eiger_in_place_py_" });
  await runPyToDone("stream_peer.py", ["make", dir, "512", "1028"]);
  const prepared: number[] = [];
  const { decoder, count } = recordingDecoder({
    workers: 2,
    backlog: 16,
    onPrepared: (bytes) => prepared.push(bytes),
  });
  try {
    const types = { uint8: "uint8", uint16: "uint16", uint32: "uint32" } as const;
    let n = 0;
    for (const dtype of Object.values(types)) {
      const raw = await Deno.readFile(join(dir, `py_${dtype}.raw`));
      for (const comp of ["bslz4", "lz4", "none"]) {
        // A new lending per image: also a new target while the last frame may be in flight.
        const stacks = sharedStacks(config(4, 1028, 512, dtype));
        const target = imageTarget({ config: config(4, 1028, 512, dtype), images: stacks });
        assert.ok(target !== undefined);
        decoder.setTarget(target);
        decoder.push(await Deno.readFile(join(dir, `py_${dtype}_${comp}.cbor`)));
        const events = await count(++n);
        const what = `${dtype}/${comp}`;
        const pixels = imageOf(events[n - 1]).data.threshold_1.pixels;
        const stack = stacks.threshold_1;
        assert.equal(pixels.buffer, stack.buffer, `${what}: a view of this thread's stack`);
        const slot = 3 * 1028 * 512 * stack.BYTES_PER_ELEMENT; // image_id 3
        assert.equal(pixels.byteOffset, slot, what);
        assert.deepEqual(bytesOf(pixels), raw, `${what} pixels`);
        assert.deepEqual(bytesOf(stack.subarray(3 * 1028 * 512)), raw, `${what} in the stack`);
        assert.equal(claimedSlots(target), 1, what);
      }
    }
    assert.equal(decoder.workerBuffersMade, 0, "no output buffer made in the workers");
    assert.ok(prepared.some((bytes) => bytes >= 1028 * 512 * 4), `prepared ${prepared}`);
  } finally {
    decoder.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in place: workers prepared before the first frame; series after series, no output buffer per image", async () => {
  const rows = 128, cols = 256, images = 24;
  const cfg = config(images, cols, rows, "uint32");
  const prepared: number[] = [];
  const receive = new FrameBufferPool();
  const { decoder, events, count, until } = recordingDecoder({
    workers: 2,
    backlog: 64,
    frames: receive,
    onPrepared: (bytes) => prepared.push(bytes),
  });
  try {
    const frames = Array.from(
      { length: images },
      (_, k) => streamImageFrame(k, pixelsOf(k, rows * cols), rows, cols),
    );
    // Prepared once the image size is known (the backend does it after initialization): the
    // workers write their module memory for it, and make and write the first receive buffers (a
    // quarter of an image each, here the smallest pooled size) off the event loop.
    decoder.prepare(rows * cols * 4);
    await until(() => prepared.length >= 4, "both workers prepared, receive buffers written");
    assert.ok(prepared.every((bytes) => bytes >= rows * cols * 4), `prepared ${prepared}`);
    assert.equal(receive.kept, 64, "receive buffers prepared up to the pool's bound");
    // Buffers of its own: the counter sees them (the baseline of this test).
    for (const frame of frames.slice(0, 8)) decoder.push(frame.slice());
    await count(8);
    const madeWithoutTarget = decoder.workerBuffersMade;
    assert.ok(madeWithoutTarget > 0, "decoding without a target makes output buffers");

    let seen = 8;
    for (let series = 0; series < 3; series++) {
      const stacks = sharedStacks(cfg);
      const target = imageTarget({ config: cfg, images: stacks })!;
      prepared.length = 0;
      decoder.setTarget(target);
      if (series === 0) {
        // A lent target's image size is prepared for too, before any frame of the series.
        await until(() => prepared.length >= 2, "both workers prepared for the target");
        assert.ok(prepared.every((bytes) => bytes >= rows * cols * 4), `prepared ${prepared}`);
      }
      for (const frame of frames) decoder.push(frame.slice());
      await count(seen + images);
      for (let k = 0; k < images; k++) {
        const pixels = imageOf(events[seen + k]).data.threshold_1.pixels;
        assert.equal(pixels.buffer, stacks.threshold_1.buffer, `series ${series} image ${k}`);
        assert.deepEqual(pixels, pixelsOf(k, rows * cols), `series ${series} image ${k}`);
      }
      assert.equal(claimedSlots(target), images);
      seen += images;
      decoder.setTarget(undefined);
    }
    assert.equal(
      decoder.workerBuffersMade,
      madeWithoutTarget,
      "no new output buffer in 3 series decoded in place",
    );
  } finally {
    decoder.close();
  }
});

Deno.test("in place: a new target waits until the frames in flight under the last one came back", async () => {
  const rows = 16, cols = 32;
  const cfg = config(4, cols, rows, "uint32");
  const completed: number[] = [];
  const { decoder, count } = recordingDecoder({
    workers: 2,
    backlog: 16,
    hold: (seq) => seq === 0,
    onResult: (seq) => completed.push(seq),
  });
  try {
    const a = sharedStacks(cfg);
    const b = sharedStacks(cfg);
    decoder.setTarget(imageTarget({ config: cfg, images: a }));
    decoder.push(streamImageFrame(1, pixelsOf(1, rows * cols), rows, cols)); // held in a worker
    decoder.setTarget(imageTarget({ config: cfg, images: b }));
    decoder.push(streamImageFrame(1, pixelsOf(2, rows * cols), rows, cols));
    // The second frame may not go to the idle worker while the first still writes into `a`.
    assert.equal(decoder.queued, 1, "the frame of the new target waits");
    decoder.releaseHeld(0);
    const events = await count(2);
    assert.deepEqual(completed, [0, 1]);
    const first = imageOf(events[0]).data.threshold_1.pixels;
    const second = imageOf(events[1]).data.threshold_1.pixels;
    assert.equal(first.buffer, a.threshold_1.buffer);
    assert.equal(second.buffer, b.threshold_1.buffer);
    assert.deepEqual(first, pixelsOf(1, rows * cols));
    assert.deepEqual(second, pixelsOf(2, rows * cols));
  } finally {
    decoder.close();
  }
});

Deno.test("in place: each slot is claimed once; a duplicate or foreign image gets a buffer of its own", () => {
  const rows = 16, cols = 32;
  const cfg = config(4, cols, rows, "uint32");
  const stacks = sharedStacks(cfg);
  const target = imageTarget({ config: cfg, images: stacks })!;
  const { decoder, events } = recordingDecoder({ workers: 0, backlog: 16 });
  try {
    decoder.setTarget(target);
    decoder.push(streamImageFrame(2, pixelsOf(1, rows * cols), rows, cols));
    decoder.push(streamImageFrame(2, pixelsOf(2, rows * cols), rows, cols)); // the same image id again
    decoder.push(streamImageFrame(7, pixelsOf(3, rows * cols), rows, cols)); // out of range
    const [first, twice, outside] = events.map((e) => imageOf(e).data.threshold_1.pixels);
    assert.equal(first.buffer, stacks.threshold_1.buffer);
    assert.deepEqual(first, pixelsOf(1, rows * cols), "the first image's slot is not overwritten");
    assert.ok(!(twice.buffer instanceof SharedArrayBuffer));
    assert.deepEqual(twice, pixelsOf(2, rows * cols));
    assert.ok(!(outside.buffer instanceof SharedArrayBuffer));
    assert.equal(claimedSlots(target), 1);
  } finally {
    decoder.close();
  }
  // Wrong type or shape, or not shared memory: no slot.
  const request = { imageId: 0, channel: "threshold_1", dims: [rows, cols], byteLength: 2048 };
  assert.equal(claimSlot(target, { ...request, dtype: "uint16", byteLength: 1024 }), undefined);
  assert.equal(claimSlot(target, { ...request, dtype: "uint32", dims: [cols, rows] }), undefined);
  assert.equal(claimSlot(target, { ...request, dtype: "uint32", channel: "other" }), undefined);
  assert.ok(claimSlot(target, { ...request, dtype: "uint32" }) !== undefined);
  const plain = { threshold_1: new Uint32Array(4 * rows * cols) };
  assert.equal(imageTarget({ config: cfg, images: plain }), undefined);
});

Deno.test("in place: the assembler lends only prepared shared stacks, and copies only images not in their slot", () => {
  const rows = 16, cols = 32, size = rows * cols;
  const cfg = config(3, cols, rows, "uint32");
  const assembler = new SeriesAssembler();
  const info = { uuid: "u", ssqcnt: 0, duration: 1, seriesNumber: -1, startedAt: 0 };
  assembler.open(info, cfg);
  assert.equal(assembler.lendable(), undefined, "a stack warming may still write: not lent");
  while (assembler.warm(cfg, 1 << 20));
  const lent = assembler.lendable();
  assert.ok(lent !== undefined);
  const stack = lent.images.threshold_1 as Uint32Array;
  assert.ok(stack.buffer instanceof SharedArrayBuffer);
  const single = new SeriesAssembler();
  single.open(info, config(1, cols, rows, "uint32"));
  assert.equal(single.lendable(), undefined, "a single image is handed on as it is: no stack");

  assert.equal(
    assembler.accept({ type: "start-data", seriesId: "s", seriesNumber: 1 }).kind,
    "series-start",
  );
  // Image 0 in its slot (as a decode worker writes it), image 1 in a buffer of its own, image 2
  // in the wrong slot (slot 0's memory viewed as image 2 must be copied, not trusted).
  stack.set(pixelsOf(0, size), 0);
  const images = [
    stack.subarray(0, size),
    pixelsOf(1, size),
    new Uint32Array(stack.buffer, 0, size),
  ];
  images.forEach((image, index) => {
    const outcome = assembler.accept({
      type: "image-data",
      seriesId: "s",
      index,
      timestamp: 1,
      exposure: 1,
      images: { threshold_1: image },
    });
    assert.equal(outcome.kind, "image");
  });
  assert.equal(assembler.lendable(), undefined, "lent before the first image or not at all");
  assert.deepEqual(stack.subarray(0, size), pixelsOf(0, size));
  assert.deepEqual(stack.subarray(size, 2 * size), pixelsOf(1, size));
  assert.deepEqual(stack.subarray(2 * size), pixelsOf(0, size), "image 2 copied into its slot");
  assert.equal(assembler.accept({ type: "end-data", seriesId: "s" }).kind, "series-end");
  assert.equal(assembler.frame().images.threshold_1, stack);
});

Deno.test("in place: decodeBuffersMade counts new output buffers of this thread", () => {
  const rows = 128, cols = 256; // 128 KiB: a buffer worth keeping
  const { decoder } = recordingDecoder({ workers: 0, backlog: 4 });
  try {
    const before = decodeBuffersMade();
    decoder.push(streamImageFrame(0, pixelsOf(0, rows * cols), rows, cols));
    assert.equal(decodeBuffersMade(), before + 1);
  } finally {
    decoder.close();
  }
});

Deno.test("in place: the controller lends the open series' prepared stacks before acquire and takes them back after", async () => {
  const cfg = fakeConfig({ numImages: 3 });
  const lendings: (LentSeriesStacks | undefined)[] = [];
  const turns: (() => void)[] = [];
  const h = await startHarness({
    config: cfg,
    lendSeriesStacks: (_dev, stacks) => lendings.push(stacks),
    acquire: (dev) => {
      // Writes each image into its slot of the lent stacks, as the EIGER decoders do.
      const lent = lendings.at(-1);
      assert.ok(lent !== undefined, "stacks lent before acquire");
      const size = cfg.width * cfg.height;
      dev.ctx.emit({ type: "start-data", seriesId: "s", seriesNumber: 1 });
      for (let i = 0; i < cfg.numImages; i++) {
        const images: Record<string, PixelArray> = {};
        for (const [name, stack] of Object.entries(lent.images)) {
          images[name] = stack.subarray(i * size, (i + 1) * size).fill(100 + i);
        }
        dev.ctx.emit({
          type: "image-data",
          seriesId: "s",
          index: i,
          timestamp: i,
          exposure: 1,
          images,
        });
      }
      dev.ctx.emit({ type: "end-data", seriesId: "s" });
      return Promise.resolve();
    },
  }, {
    idleTurn: (callback) => {
      turns.push(callback);
      return () => {};
    },
  });
  try {
    await h.advance(0);
    // Stacks are prepared on idle turns; run them all.
    while (turns.length > 0) turns.shift()!();
    await h.controller.request(acquire(0));
    await h.advance(0);
    assert.equal(h.controller.state, "READY", `errors: ${h.controller.errors}`);
    assert.equal(h.frames.length, 1);
    assert.equal(lendings.length, 2, "lent once, taken back once");
    const lent = lendings[0]!;
    assert.equal(lendings[1], undefined);
    for (const ch of cfg.channels) {
      assert.ok(lent.images[ch.name].buffer instanceof SharedArrayBuffer);
      assert.equal(h.frames[0].images[ch.name], lent.images[ch.name], "the frame is the stack");
      assert.deepEqual([...new Set(h.frames[0].images[ch.name])], [100, 101, 102]);
    }
  } finally {
    await h.close();
  }
});

Deno.test("in place: a target holder tells a watcher the image size and the target, also when it starts watching late", () => {
  const holder = new TargetHolder();
  const seen: string[] = [];
  const watcher = {
    target: (t: unknown) => seen.push(t === undefined ? "no target" : "target"),
    prepare: (bytes: number) => seen.push(`prepare ${bytes}`),
  };
  holder.prepare(2048); // after initialization, before the stream opened
  const unwatch = holder.watch(watcher);
  assert.deepEqual(seen, ["prepare 2048", "no target"]);
  const cfg = config(2, 16, 8, "uint32");
  holder.set(imageTarget({ config: cfg, images: sharedStacks(cfg) }));
  holder.set(undefined);
  unwatch();
  holder.prepare(4096);
  assert.deepEqual(seen, ["prepare 2048", "no target", "target", "no target"]);
});
