import assert from "node:assert/strict";
import { resolveSimSettings, SimDevice, simGenerator } from "../devices/sim.ts";
import { SimImageGenerator } from "../devices/sim_image.ts";
import type { DeviceContext, DeviceEvent } from "../devices/contract.ts";
import { ManualClock } from "../core/clock.ts";
import { getLog } from "../core/log.ts";

function context(env: Record<string, string>, events: DeviceEvent[]): DeviceContext {
  return {
    emit: (e) => events.push(e),
    log: getLog("test.sim"),
    env,
    signal: new AbortController().signal,
  };
}

Deno.test("sim settings: random defaults are deterministic per seed and in range", () => {
  const a = resolveSimSettings({ SIM_SEED: "42" });
  assert.deepEqual(resolveSimSettings({ SIM_SEED: "42" }), a);
  assert.ok(a.channels.length >= 1 && a.channels.length <= 4);
  for (const c of a.channels) assert.match(c, /^[a-z]{4}$/);
  assert.ok(a.numImages >= 1 && a.numImages <= 7);
  assert.ok(a.width >= 128 && a.width <= 256 && a.height >= 128 && a.height <= 256);
  const seeds = new Set(
    Array.from({ length: 20 }, (_, i) => JSON.stringify(resolveSimSettings({ SIM_SEED: `${i}` }))),
  );
  assert.ok(seeds.size > 15, "different seeds give different configurations");
  // Overriding one setting leaves the other random choices alone.
  const b = resolveSimSettings({ SIM_SEED: "42", SIM_NUM_IMAGES: "3" });
  assert.deepEqual({ ...b, numImages: a.numImages }, a);
});

Deno.test("sim settings: env overrides", () => {
  const s = resolveSimSettings({
    SIM_SEED: "1",
    SIM_CHANNELS: "t1, t2",
    SIM_NUM_IMAGES: "2",
    SIM_IMAGE_SIZE: "1028x512",
    SIM_PIXEL_TYPE: "uint16",
  });
  assert.deepEqual(s, {
    seed: 1,
    channels: ["t1", "t2"],
    numImages: 2,
    width: 1028,
    height: 512,
    pixelType: "uint16",
  });
});

Deno.test("sim settings: bad values are rejected with one-line messages", () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ SIM_SEED: "abc" }, /SIM_SEED=abc: not an integer/],
    [{ SIM_SEED: "99999999999" }, /SIM_SEED=.*must be/],
    [{ SIM_NUM_IMAGES: "0" }, /SIM_NUM_IMAGES=0: must be 1..10000/],
    [{ SIM_NUM_IMAGES: "2.5" }, /not an integer/],
    [{ SIM_IMAGE_SIZE: "100" }, /expected WxH/],
    [{ SIM_IMAGE_SIZE: "0x10" }, /must be 1..16384/],
    [{ SIM_PIXEL_TYPE: "int64" }, /expected one of uint8, uint16, uint32, float32/],
    [{ SIM_CHANNELS: "a b" }, /bad channel name/],
    [{ SIM_CHANNELS: "a,a" }, /duplicate/],
  ];
  for (const [env, message] of bad) {
    assert.throws(() => resolveSimSettings(env), message);
    assert.throws(() => new SimDevice(context(env, [])), message);
  }
});

Deno.test("sim images: deterministic, detector-like, scaled with duration", () => {
  const params = { seed: 7, width: 200, height: 100, pixelType: "uint32" as const, channels: 2 };
  const g1 = new SimImageGenerator(params);
  const g2 = new SimImageGenerator(params);
  const a = g1.image(3, 1, 0, 1);
  assert.deepEqual(g2.image(3, 1, 0, 1), a);
  assert.ok(a instanceof Uint32Array && a.length === 200 * 100);
  assert.notDeepEqual(g1.image(3, 2, 0, 1), a, "image index matters");
  assert.notDeepEqual(g1.image(4, 1, 0, 1), a, "series matters");
  assert.notDeepEqual(g1.image(3, 1, 1, 1), a, "channel matters");
  const sum = (x: ArrayLike<number>) => {
    let s = 0;
    for (let i = 0; i < x.length; i++) if (x[i] < 1e6) s += x[i];
    return s;
  };
  assert.ok(sum(g1.image(0, 0, 0, 4)) > 3 * sum(g1.image(0, 0, 0, 1)), "longer is brighter");
  assert.ok(a.some((v) => v === 0xffffffff), "hot pixels");
  const uniq = new Set(a);
  assert.ok(uniq.size > 50, "not flat");
  for (const pixelType of ["uint8", "uint16", "float32"] as const) {
    const img = new SimImageGenerator({ ...params, pixelType }).image(0, 0, 0, 100);
    assert.equal(img.length, 20000);
    assert.ok(img.every((v) => Number.isFinite(v) && v >= 0));
  }
});

Deno.test("sim device: acquire waits the duration on the clock and emits a full series", async () => {
  const clock = new ManualClock();
  const events: DeviceEvent[] = [];
  const env = { SIM_SEED: "3", SIM_CHANNELS: "x,y", SIM_NUM_IMAGES: "2", SIM_IMAGE_SIZE: "8x4" };
  const dev = new SimDevice(context(env, events), clock);
  assert.equal(dev.isInitialized(), false);
  await dev.initialize();
  assert.equal(dev.getConfig()?.channels[1].name, "y");
  const done = dev.acquire(2, new AbortController().signal);
  await clock.advance(999);
  assert.deepEqual(events.map((e) => e.type), ["start-data"]);
  await clock.advance(1);
  assert.deepEqual(events.map((e) => e.type), ["start-data", "image-data"]);
  await clock.advance(1000);
  await done;
  assert.deepEqual(events.map((e) => e.type), [
    "start-data",
    "image-data",
    "image-data",
    "end-data",
  ]);
  const gen = simGenerator(resolveSimSettings(env));
  const second = events[2] as Extract<DeviceEvent, { type: "image-data" }>;
  assert.deepEqual(second.images.y, gen.image(0, 1, 1, 2));
});

Deno.test("sim device: cancel ends the wait with CancelData", async () => {
  const clock = new ManualClock();
  const events: DeviceEvent[] = [];
  const dev = new SimDevice(context({ SIM_SEED: "3", SIM_NUM_IMAGES: "1" }, events), clock);
  await dev.initialize();
  const done = dev.acquire(10, new AbortController().signal);
  await clock.advance(100);
  await dev.cancel();
  await done;
  assert.deepEqual(events.map((e) => e.type), ["start-data", "cancel-data"]);
  assert.equal(clock.pending, 0, "timer cleared");
  await dev.adjustChannel(dev.settings.channels[0], { enerj: 9 });
  assert.deepEqual(events.at(-1), {
    type: "channel-state",
    channel: dev.settings.channels[0],
    values: { enerj: 9 },
  });
});

Deno.test("sim device: images computed ahead equal the generator's", async () => {
  const clock = new ManualClock();
  const events: DeviceEvent[] = [];
  const env = { SIM_SEED: "9", SIM_CHANNELS: "p,q", SIM_NUM_IMAGES: "2", SIM_IMAGE_SIZE: "16x8" };
  const dev = new SimDevice(context(env, events), clock);
  await dev.initialize();
  const gen = simGenerator(resolveSimSettings(env));
  await dev.acquire(0, new AbortController().signal);
  assert.equal(clock.pending, 1, "next series scheduled");
  await clock.advance(0);
  events.length = 0;
  await dev.acquire(0, new AbortController().signal);
  const images = events.filter((e) => e.type === "image-data") as Extract<
    DeviceEvent,
    { type: "image-data" }
  >[];
  assert.equal(images.length, 2);
  assert.deepEqual(images[1].images.q, gen.image(1, 1, 1, 0));
  assert.deepEqual(images[0].images.p, gen.image(1, 0, 0, 0));
  // Teardown drops a pending computation.
  await clock.advance(0);
  events.length = 0;
  await dev.acquire(0, new AbortController().signal);
  await dev.teardown();
  assert.equal(clock.pending, 0, "teardown clears the timer");
});
