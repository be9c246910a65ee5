import assert from "node:assert/strict";
import type { DeviceEvent } from "../devices/contract.ts";
import { acquire, CLEAR, type Harness, startHarness } from "./support/controller_harness.ts";
import { type FakeDevice, fakeImages } from "./support/fake_device.ts";

/** Runs one acquisition whose device emits `events(dev)` and returns; checks ERROR + message. */
async function violation(
  events: (dev: FakeDevice) => DeviceEvent[],
  message: RegExp,
): Promise<Harness> {
  const h = await startHarness({
    acquire: (dev) => {
      for (const e of events(dev)) dev.ctx.emit(e);
      return Promise.resolve();
    },
  });
  await h.controller.request(acquire(0));
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR", `errors: ${h.controller.errors}`);
  assert.match(h.controller.errors[0], message);
  assert.equal(h.frames.length, 0, "no frame published");
  return h;
}

const img = (dev: FakeDevice, id: string, index: number): DeviceEvent => ({
  type: "image-data",
  seriesId: id,
  index,
  timestamp: 1,
  exposure: 1,
  images: fakeImages(dev.config!, index),
});
const start = (id: string): DeviceEvent => ({ type: "start-data", seriesId: id, seriesNumber: 1 });

Deno.test("protocol: too many images -> ERROR", async () => {
  const h = await violation(
    (d) => [start("s"), img(d, "s", 0), img(d, "s", 1), img(d, "s", 2), {
      type: "end-data",
      seriesId: "s",
    }],
    /Too many images: more than 2/,
  );
  await h.close();
});

Deno.test("protocol: too few images -> ERROR", async () => {
  const h = await violation(
    (d) => [start("s"), img(d, "s", 0), { type: "end-data", seriesId: "s" }],
    /Series ended after 1 of 2 images/,
  );
  await h.close();
});

Deno.test("protocol: data after CancelData -> ERROR", async () => {
  const h = await violation(
    (d) => [start("s"), img(d, "s", 0), { type: "cancel-data", seriesId: "s" }, img(d, "s", 1)],
    /ImageData after CancelData of series s/,
  );
  await h.close();
});

Deno.test("protocol: wrong series id -> ERROR", async () => {
  const h = await violation(
    (d) => [start("s"), img(d, "t", 0)],
    /ImageData of wrong series t \(expected s\)/,
  );
  await h.close();
});

Deno.test("protocol: ImageData before StartData -> ERROR", async () => {
  const h = await violation((d) => [img(d, "s", 0)], /ImageData before StartData/);
  await h.close();
});

Deno.test("protocol: image index out of order -> ERROR", async () => {
  const h = await violation((d) => [start("s"), img(d, "s", 1)], /index 1 out of order/);
  await h.close();
});

Deno.test("protocol: missing channel, wrong size, wrong type -> ERROR", async () => {
  const cases: [(d: FakeDevice) => DeviceEvent, RegExp][] = [
    [(d) => {
      const e = img(d, "s", 0) as Extract<DeviceEvent, { type: "image-data" }>;
      delete e.images.b;
      return e;
    }, /lacks channel b/],
    [(d) => {
      const e = img(d, "s", 0) as Extract<DeviceEvent, { type: "image-data" }>;
      e.images.b = new Uint16Array(5);
      return e;
    }, /has 5 pixels, expected 12/],
    [(d) => {
      const e = img(d, "s", 0) as Extract<DeviceEvent, { type: "image-data" }>;
      e.images.a = new Float32Array(12);
      return e;
    }, /Float32Array, expected Uint16Array/],
    [(d) => {
      const e = img(d, "s", 0) as Extract<DeviceEvent, { type: "image-data" }>;
      e.images.zz = new Uint16Array(12);
      return e;
    }, /unknown channel zz/],
  ];
  for (const [make, message] of cases) {
    const h = await violation((d) => [start("s"), make(d)], message);
    await h.close();
  }
});

Deno.test("protocol: acquire returning without EndData -> ERROR", async () => {
  const h = await violation((d) => [start("s"), img(d, "s", 0)], /returned without EndData/);
  await h.close();
});

Deno.test("protocol: data outside an acquisition (READY) -> ERROR", async () => {
  const h = await startHarness();
  h.dev.ctx.emit(start("late"));
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /StartData outside an acquisition/);
  await h.close();
});

Deno.test("protocol: a series that never ends times out (duration + overdue) -> ERROR", async () => {
  const h = await startHarness({
    acquire: (dev) => {
      dev.ctx.emit(start("s"));
      return new Promise(() => {});
    },
  }, { overdue: 3 });
  await h.controller.request(acquire(2));
  await h.advance(4999);
  assert.equal(h.controller.state, "INTEGRATE");
  await h.advance(1);
  assert.equal(h.controller.state, "ERROR");
  assert.match(
    h.controller.errors[0],
    /timed out after 5 s \(duration 2 s \+ overdue 3 s; 0 of 2 images\)/,
  );
  assert.ok(h.dev.calls.includes("cancel"), "device cancel attempted");
  // The device task is still hanging: clearing keeps the fault.
  await h.controller.request(CLEAR);
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /still running/);
  await h.close();
});

Deno.test("protocol: a late image of a timed-out series after clear -> ERROR again", async () => {
  let late: (() => void) | undefined;
  const h = await startHarness({
    acquire: (dev) => {
      dev.ctx.emit(start("s"));
      return new Promise((resolve) => {
        late = () => {
          dev.ctx.emit(img(dev, "s", 0));
          resolve();
        };
      });
    },
  }, { overdue: 1 });
  await h.controller.request(acquire(0));
  await h.advance(1000);
  assert.equal(h.controller.state, "ERROR");
  late!();
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR", "ignored while in ERROR");
  await h.controller.request(CLEAR);
  await h.advance(0);
  assert.equal(h.controller.state, "READY");
  h.dev.ctx.emit(img(h.dev, "s", 1));
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /ImageData after abort of series s/);
  await h.close();
});

Deno.test("protocol: without --overdue the backend's own allowance plus a margin applies", async () => {
  const h = await startHarness({
    overdue: 20,
    acquire: (dev) => {
      dev.ctx.emit(start("s"));
      return new Promise(() => {});
    },
  });
  await h.controller.request(acquire(2));
  // duration 2 s + backend 20 s + margin 5 s = 27 s; the default 5 s would end it at 7 s.
  await h.advance(26_999);
  assert.equal(h.controller.state, "INTEGRATE");
  await h.advance(1);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /timed out after 27 s/);
  await h.close();
});

Deno.test("protocol: an explicit overdue wins over the backend's allowance", async () => {
  const h = await startHarness({
    overdue: 20,
    acquire: (dev) => {
      dev.ctx.emit(start("s"));
      return new Promise(() => {});
    },
  }, { overdue: 1 });
  await h.controller.request(acquire(2));
  await h.advance(3000);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /timed out after 3 s/);
  await h.close();
});
