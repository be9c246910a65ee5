import assert from "node:assert/strict";
import { WriteRefusedError } from "../ca/pv.ts";
import { createIocPvs, ERROR_TEXT_MAX, IMAGE_CA_TYPES, pvSuffixes } from "../lib/ioc_pvs.ts";
import { startHarness } from "./support/controller_harness.ts";
import { FakeCaServer } from "./support/fake_ca_server.ts";
import { fakeConfig, fakeImages, type FakeScript } from "./support/fake_device.ts";

async function setup(script: FakeScript = {}) {
  const h = await startHarness(script);
  const server = new FakeCaServer();
  const pvs = createIocPvs({ server, controller: h.controller, prefix: "T:" });
  return { h, server, pvs };
}

Deno.test("pvs: served names follow the configuration, in the original's order", async () => {
  const { h, server, pvs } = await setup();
  assert.deepEqual(server.names(), pvSuffixes(fakeConfig()).map((s) => `T:${s}`));
  assert.deepEqual(pvs.names(), server.names());
  assert.equal(server.get("T:a:image")?.definition.type, "long", "uint16 -> LONG");
  assert.equal(server.get("T:a:image")?.definition.maxCount, 2 * 4 * 3);
  assert.deepEqual(server.read("T:a:asize0"), [2]);
  assert.deepEqual(server.read("T:a:asize1"), [3]);
  assert.deepEqual(server.read("T:a:asize2"), [4]);
  assert.deepEqual(server.read("T:state"), ["READY"]);
  assert.equal(IMAGE_CA_TYPES.uint32, "double");
  assert.equal(IMAGE_CA_TYPES.uint8, "char");
  pvs.close();
  await h.close();
});

Deno.test("pvs: state and error are served before READY (ERROR in WARMUP)", async () => {
  const { h, server, pvs } = await setup({
    initialize: () => Promise.reject(new Error("a very long error text that does not fit in 40")),
  });
  assert.deepEqual(server.read("T:state"), ["ERROR"]);
  const err = String(server.read("T:error")[0]);
  assert.equal(err.length, ERROR_TEXT_MAX);
  assert.ok(err.startsWith("Initialize failed: a very long"));
  assert.equal(server.get("T:a:image"), undefined, "no channel PVs without a configuration");
  const statePost = server.posts.findLast((p) => p.name === "T:state");
  assert.equal(statePost?.options?.severity, 2, "MAJOR alarm in ERROR");
  pvs.close();
  await h.close();
});

Deno.test("pvs: acquire publishes images and timestamps before acquire returns to 0", async () => {
  const { h, server, pvs } = await setup();
  await server.write("T:duration", 0.25);
  await server.write("T:acquire", 1);
  await h.advance(0);
  assert.deepEqual(server.read("T:acquire"), [0]);
  assert.deepEqual(server.read("T:state"), ["READY"]);
  const order = server.posts.map((p) => `${p.name}=${p.name.endsWith("image") ? "img" : p.value}`);
  const i1 = order.indexOf("T:acquire=1");
  const iImg = order.indexOf("T:a:image=img");
  const iTs = order.indexOf("T:start_ts=100,101");
  const i0 = order.lastIndexOf("T:acquire=0");
  assert.ok(
    i1 >= 0 && i1 < iImg && iImg < i0 && order.indexOf("T:b:image=img") < i0,
    order.join(" "),
  );
  assert.ok(iTs < i0 && iTs > 0, order.join(" "));
  assert.deepEqual(
    order.filter((o) => o.startsWith("T:acquire=")),
    ["T:acquire=1", "T:acquire=0"],
    "acquire has one writer (the state hook): no second post from the write",
  );
  await server.write("T:acquire", 0);
  assert.equal(server.posts.filter((p) => p.name === "T:acquire").length, 2, "writing 0: no post");
  assert.equal(server.read("T:a:image").length, 24);
  assert.deepEqual(server.read("T:ssqcnt"), [0]);
  assert.deepEqual(server.read("T:numid"), [7]);
  assert.match(String(server.read("T:uuid")[0]), /^[0-9a-f-]{36}$/);
  assert.equal(h.frames[0].duration, 0.25, "acquire used the duration PV");
  pvs.close();
  await h.close();
});

Deno.test("pvs: nonsense writes are refused with WriteRefusedError", async () => {
  const { h, server, pvs } = await setup({ acquire: () => new Promise(() => {}) });
  await assert.rejects(server.write("T:duration", -1), WriteRefusedError);
  await assert.rejects(server.write("T:duration", NaN), WriteRefusedError);
  assert.deepEqual(server.read("T:duration"), [1]);
  await assert.rejects(server.write("T:cancel", 1), /Nothing to cancel in state READY/);
  await server.write("T:acquire", 1);
  assert.deepEqual(server.read("T:acquire"), [1]);
  await assert.rejects(server.write("T:acquire", 1), /Cannot acquire in state INTEGRATE/);
  await server.write("T:cancel", 1);
  assert.equal(h.controller.state, "CANCEL");
  pvs.close();
  await h.close();
});

Deno.test("pvs: acquire takes 1 to start; 0 while not acquiring does nothing; else refused", async () => {
  const { h, server, pvs } = await setup({ acquire: () => new Promise(() => {}) });
  await server.write("T:acquire", 0);
  await h.advance(0);
  assert.equal(h.controller.state, "READY", "0 in READY starts nothing");
  assert.deepEqual(server.read("T:acquire"), [0]);
  for (const v of [2, -1, 100]) {
    await assert.rejects(server.write("T:acquire", v), /acquire accepts 1 \(start\), not/);
    await h.advance(0);
    assert.equal(h.controller.state, "READY", `${v} starts nothing`);
  }
  await server.write("T:acquire", 1);
  assert.equal(h.controller.state, "INTEGRATE");
  await assert.rejects(server.write("T:acquire", 0), /does not stop an acquisition/);
  assert.equal(h.controller.state, "INTEGRATE");
  assert.deepEqual(server.read("T:acquire"), [1]);
  pvs.close();
  await h.close();
});

Deno.test("pvs: channel metadata writes run ChannelAdjust and serve the read-back", async () => {
  const { h, server, pvs } = await setup({
    adjustChannel: (dev, channel, values) => {
      dev.ctx.emit({
        type: "channel-state",
        channel,
        values: { enerj: Number(values.enerj) + 0.5 },
      });
      return Promise.resolve();
    },
  });
  await server.write("T:a:enerj", 7);
  await h.advance(0);
  assert.deepEqual(server.read("T:a:enerj"), [7.5]);
  assert.deepEqual(h.controller.channelMeta.a, { enerj: 7.5 });
  pvs.close();
  await h.close();
});

Deno.test("pvs: clear writes clear the error and recover", async () => {
  const { h, server, pvs } = await setup();
  h.dev.ctx.emit({ type: "error", message: "boom" });
  await h.advance(0);
  assert.deepEqual(server.read("T:state"), ["ERROR"]);
  assert.deepEqual(server.read("T:error"), ["boom"]);
  await server.write("T:clear", 1);
  await h.advance(0);
  assert.deepEqual(server.read("T:state"), ["READY"]);
  assert.deepEqual(server.read("T:error"), [""]);
  assert.deepEqual(server.read("T:clear"), [0]);
  pvs.close();
  await h.close();
});

Deno.test("pvs: image PVs serve the frame's pixels in place and give them back at the next frame", async () => {
  const released: number[] = [];
  const served: unknown[] = [];
  let n = 0;
  const { h, server, pvs } = await setup({
    config: { ...fakeConfig(), numImages: 1 },
    acquire: (dev) => {
      const series = n++;
      dev.ctx.emit({ type: "start-data", seriesId: `s${series}`, seriesNumber: series });
      const images = fakeImages(dev.config!, series);
      served.push(images.a);
      dev.ctx.emit({
        type: "image-data",
        seriesId: `s${series}`,
        index: 0,
        timestamp: 100,
        exposure: 0.1,
        images,
        release: () => released.push(series),
      });
      dev.ctx.emit({ type: "end-data", seriesId: `s${series}` });
      return Promise.resolve();
    },
  });
  await server.write("T:acquire", 1);
  await h.advance(0);
  const post = server.posts.findLast((p) => p.name === "T:a:image")!;
  assert.equal(post.value, served[0], "posted without a copy");
  assert.equal(post.options?.keep, true, "handed over: kept as is by the CA store");
  assert.deepEqual(released, [], "still served by the PV after the hooks settled");
  await server.write("T:acquire", 1);
  await h.advance(0);
  assert.deepEqual(released, [0], "given back once the next frame replaced it");
  // A reader that outlives the next frame (a queued PVA message) borrows it with the post's
  // retain instead of copying: the frame is given back only when that reader is done too.
  const second = server.posts.findLast((p) => p.name === "T:a:image")!;
  assert.equal(second.value, served[1]);
  const borrowed = second.options!.retain!();
  await server.write("T:acquire", 1);
  await h.advance(0);
  assert.deepEqual(released, [0], "borrowed: not given back at the next frame");
  borrowed();
  await h.advance(0);
  assert.deepEqual(released, [0, 1], "given back once the borrower is done");
  pvs.close();
  await h.close();
});
