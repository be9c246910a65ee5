import assert from "node:assert/strict";
import { join } from "node:path";
import type { Device, DeviceConfig, DeviceContext } from "../devices/contract.ts";
import { writeSeries } from "../examples/series_to_file.ts";

/** A backend whose pixels are known: series*100 + image*10 + channel. */
class CountingDevice implements Device {
  #series = 0;
  readonly config: DeviceConfig = {
    channels: [{ name: "a", meta: {} }, { name: "b", meta: {} }],
    numImages: 2,
    width: 3,
    height: 2,
    pixelType: "uint16",
  };
  constructor(private ctx: DeviceContext, private failAt = -1) {}
  isInitialized() {
    return true;
  }
  getConfig() {
    return this.config;
  }
  initialize() {
    return Promise.resolve();
  }
  acquire(duration: number): Promise<void> {
    const n = this.#series++;
    if (n === this.failAt) return Promise.reject(new Error("detector unplugged"));
    const seriesId = `c${n}`;
    this.ctx.emit({ type: "start-data", seriesId, seriesNumber: 40 + n });
    for (let index = 0; index < 2; index++) {
      const images = {
        a: new Uint16Array(6).fill(n * 100 + index * 10),
        b: new Uint16Array(6).fill(n * 100 + index * 10 + 1),
      };
      this.ctx.emit({
        type: "image-data",
        seriesId,
        index,
        timestamp: 5 + index,
        exposure: duration,
        images,
      });
    }
    this.ctx.emit({ type: "end-data", seriesId });
    return Promise.resolve();
  }
  cancel() {
    return Promise.resolve();
  }
}

Deno.test("example series_to_file: every series lands in files, pixels and metadata exact", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await writeSeries({
      device: (ctx) => new CountingDevice(ctx),
      dir,
      count: 2,
      duration: 0.25,
      env: {},
    });
    assert.deepEqual(files.map((f) => f.slice(dir.length + 1)), [
      "0-40-a.raw",
      "0-40-b.raw",
      "1-41-a.raw",
      "1-41-b.raw",
    ]);
    const b1 = new Uint16Array((await Deno.readFile(join(dir, "1-41-b.raw"))).buffer);
    assert.deepEqual([...b1], [101, 101, 101, 101, 101, 101, 111, 111, 111, 111, 111, 111]);
    const lines = (await Deno.readTextFile(join(dir, "series.jsonl"))).trim().split("\n");
    assert.equal(lines.length, 2);
    const meta = JSON.parse(lines[1]);
    assert.equal(meta.seriesNumber, 41);
    assert.equal(meta.ssqcnt, 1);
    assert.deepEqual(meta.timestamps, [5, 6]);
    assert.deepEqual(meta.exposures, [0.25, 0.25]);
    assert.deepEqual([meta.numImages, meta.height, meta.width, meta.pixelType], [
      2,
      2,
      3,
      "uint16",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("example series_to_file: a failing acquisition ends it with the controller's error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      writeSeries({
        device: (ctx) => new CountingDevice(ctx, 1),
        dir,
        count: 3,
        duration: 0,
        env: {},
      }),
      /controller ERROR: Acquire failed: detector unplugged/,
    );
    const lines = (await Deno.readTextFile(join(dir, "series.jsonl"))).trim().split("\n");
    assert.equal(lines.length, 1, "the series before the failure was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
