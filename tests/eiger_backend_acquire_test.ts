/**
 * EIGER backend against the in-process simulator (REST over loopback HTTP, stream over the
 * in-process link): initialize, the three modes, thresholds, cancel, channel adjust, overdue.
 */

import assert from "node:assert/strict";
import type { DeviceEvent, ImageDataEvent } from "../devices/contract.ts";
import { dataEvents, type EigerRig, startEigerRig, type startTestSim } from "./support/eiger.ts";

type Rig = EigerRig;

function rig(
  env: Record<string, string> = {},
  simOptions: Parameters<typeof startTestSim>[0] = {},
): Promise<Rig> {
  return startEigerRig({ sim: { loopback: true, ...simOptions }, env });
}

Deno.test("eiger backend: snapshot initialize + acquire delivers one image with metadata", async () => {
  const r = await rig({ EIGER_X2_THRESHOLD1_ENERGY: "6000" });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    assert.equal(r.device.isInitialized(), true);
    const config = r.device.getConfig()!;
    assert.equal(config.width, 64);
    assert.equal(config.height, 32);
    assert.equal(config.pixelType, "uint16");
    assert.equal(config.numImages, 1);
    assert.deepEqual(config.channels, [{ name: "threshold_1", meta: { threshold_energy: 6000 } }]);
    const cfg = r.sim.detector.params.get("detector/config")!;
    assert.equal(cfg.get("trigger_mode")!.value, "ints");
    assert.equal(cfg.get("countrate_correction_applied")!.value, true);
    assert.equal(r.sim.detector.params.get("stream/config")!.get("format")!.value, "cbor");

    const before = Date.now() / 1000;
    await r.device.acquire(0.05, AbortSignal.timeout(10_000));
    const data = dataEvents(r.rec.events);
    assert.deepEqual(data.map((e) => e.type), ["start-data", "image-data", "end-data"]);
    const start = data[0] as Extract<DeviceEvent, { type: "start-data" }>;
    assert.equal(start.seriesNumber, 1);
    const image = data[1] as ImageDataEvent;
    assert.equal(image.index, 0);
    assert.ok(Math.abs(image.exposure - 0.05) < 1e-6, `exposure ${image.exposure}`);
    assert.ok(image.timestamp >= before - 1 && image.timestamp < before + 10);
    const pixels = image.images.threshold_1;
    assert.ok(pixels instanceof Uint16Array);
    assert.equal(pixels.length, 64 * 32);
    assert.ok(pixels.some((v) => v > 0), "image has counts");
    assert.equal(cfg.get("count_time")!.value, 0.05);
    assert.equal(r.sim.detector.state, "idle");
    // A second acquisition gets the next series number.
    const from = r.rec.events.length;
    await r.device.acquire(0.02, AbortSignal.timeout(10_000));
    const second = dataEvents(r.rec.events.slice(from));
    assert.equal((second[0] as { seriesNumber: number }).seriesNumber, 2);
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: initialize runs `initialize` on a DCU in state na", async () => {
  const r = await rig({}, { startState: "na" });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    assert.equal(r.sim.detector.state, "idle");
    assert.equal(r.device.isInitialized(), true);
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: threshold 2 enables a second channel with its energy", async () => {
  const r = await rig({ EIGER_X2_THRESHOLD1_ENERGY: "5000", EIGER_X2_THRESHOLD2_ENERGY: "9000" });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    const cfg = r.sim.detector.params.get("detector/config")!;
    assert.equal(cfg.get("threshold/2/mode")!.value, "enabled");
    assert.deepEqual(r.device.getConfig()!.channels, [
      { name: "threshold_1", meta: { threshold_energy: 5000 } },
      { name: "threshold_2", meta: { threshold_energy: 9000 } },
    ]);
    await r.device.acquire(0.02, AbortSignal.timeout(10_000));
    const image = r.rec.events.find((e) => e.type === "image-data") as ImageDataEvent;
    assert.deepEqual(Object.keys(image.images).sort(), ["threshold_1", "threshold_2"]);
    // threshold 2 sees fewer counts than threshold 1
    const sum = (a: ArrayLike<number>) => {
      let total = 0;
      for (let i = 0; i < a.length; i++) total += a[i];
      return total;
    };
    assert.ok(sum(image.images.threshold_2) < sum(image.images.threshold_1));

    await r.device.adjustChannel("threshold_2", { threshold_energy: 9500 });
    assert.equal(cfg.get("threshold/2/energy")!.value, 9500);
    const adjusted = r.rec.events.find((e) => e.type === "channel-state");
    assert.deepEqual(adjusted, {
      type: "channel-state",
      channel: "threshold_2",
      values: { threshold_energy: 9500 },
    });
    await assert.rejects(r.device.adjustChannel("threshold_3", { threshold_energy: 1 }), /unknown/);
    await assert.rejects(
      r.device.adjustChannel("threshold_1", { threshold_energy: 1e9 }),
      /threshold\/1\/energy: HTTP 400/,
    );
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: single gating sets extg/nexpi and takes one image per gate train", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "single", EIGER_GATING_FREQUENCY: "1000" }, {
    gateFrequency: 1000,
  });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    assert.equal(r.device.getConfig()!.pixelType, "uint32");
    const acquiring = r.device.acquire(0.5, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    const cfg = r.sim.detector.params.get("detector/config")!;
    assert.equal(cfg.get("trigger_mode")!.value, "extg");
    assert.equal(cfg.get("extg_mode")!.value, "single");
    assert.equal(cfg.get("nexpi")!.value, 500);
    assert.equal(cfg.get("countrate_correction_applied")!.value, false);
    await r.sim.control("gate", { measurements: 1 });
    await acquiring;
    const data = dataEvents(r.rec.events);
    assert.deepEqual(data.map((e) => e.type), ["start-data", "image-data", "end-data"]);
    const image = data[1] as ImageDataEvent;
    assert.ok(image.images.threshold_1 instanceof Uint32Array);
    assert.ok(Math.abs(image.exposure - 0.5) < 1e-6);
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: double gating yields two images; works without auto-end", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "double", EIGER_GATING_FREQUENCY: "1000" });
  try {
    await r.sim.control("auto-end", { value: false });
    await r.device.initialize(AbortSignal.timeout(10_000));
    const config = r.device.getConfig()!;
    assert.equal(config.numImages, 2);
    assert.equal(config.pixelType, "uint16");
    const acquiring = r.device.acquire(1, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    const cfg = r.sim.detector.params.get("detector/config")!;
    assert.equal(cfg.get("extg_mode")!.value, "double");
    assert.equal(cfg.get("nimages")!.value, 2);
    assert.equal(cfg.get("nexpi")!.value, 500);
    await r.sim.control("gate", { measurements: 1 });
    await acquiring; // the backend disarms after the images: the end follows
    const data = dataEvents(r.rec.events);
    assert.deepEqual(data.map((e) => e.type), [
      "start-data",
      "image-data",
      "image-data",
      "end-data",
    ]);
    assert.deepEqual(data.slice(1, 3).map((e) => (e as ImageDataEvent).index), [0, 1]);
    assert.equal(r.sim.detector.state, "idle");
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: cancel during a gated series emits CancelData and disarms", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "double", EIGER_GATING_FREQUENCY: "1000" });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    const acquiring = r.device.acquire(1, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    await r.device.cancel();
    await acquiring;
    const data = dataEvents(r.rec.events);
    assert.deepEqual(data.map((e) => e.type), ["start-data", "cancel-data"]);
    assert.equal(r.sim.detector.state, "idle");
    // The next acquisition works and is not confused by the cancelled series' end message.
    const from = r.rec.events.length;
    const next = r.device.acquire(1, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data", { from });
    await r.sim.control("gate");
    await next;
    assert.deepEqual(dataEvents(r.rec.events.slice(from)).map((e) => e.type), [
      "start-data",
      "image-data",
      "image-data",
      "end-data",
    ]);
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: cancel during a snapshot trigger", async () => {
  const r = await rig();
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    const acquiring = r.device.acquire(30, AbortSignal.timeout(20_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    await r.device.cancel();
    await acquiring;
    assert.deepEqual(dataEvents(r.rec.events).map((e) => e.type), ["start-data", "cancel-data"]);
    assert.equal(r.sim.detector.state, "idle");
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: image overdue in gated mode is an error naming the series", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "single", EIGER_IMAGE_OVERDUE: "0.3" });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    await assert.rejects(
      r.device.acquire(0.01, AbortSignal.timeout(10_000)),
      /series 1: image overdue, 0 of 1 images after 0\.3 s/,
    );
    assert.equal(r.sim.detector.state, "idle", "the failed series was aborted");
    await r.device.clear();
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: runtime values are polled", async () => {
  const r = await rig();
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    const deadline = Date.now() + 5000;
    while (r.device.getRuntime().temperature === undefined && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50)); // bounded poll: the poller is periodic
    }
    const runtime = r.device.getRuntime();
    assert.equal(runtime.state, "idle");
    assert.equal(runtime.temperature, 24.8);
    assert.equal(runtime.stream_state, "ready");
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: API version is discovered, or taken from EIGER_API_VERSION", async () => {
  const r = await rig();
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    assert.equal(r.device.getConfig()!.extra!.apiVersion, "1.8.0");
  } finally {
    await r.close();
  }
  const old = await rig({ EIGER_API_VERSION: "1.6.0" });
  try {
    await assert.rejects(
      old.device.initialize(AbortSignal.timeout(10_000)),
      /SIMPLON GET detector\/status\/state: HTTP 404 \(unsupported API version 1\.6\.0\)/,
    );
    assert.equal(old.device.isInitialized(), false);
  } finally {
    await old.close();
  }
});

Deno.test("eiger backend: a failing write during initialize names the key; retry works", async () => {
  const r = await rig();
  try {
    await r.sim.control("fault", { kind: "http", key: "stream/config/format", status: 500 });
    await assert.rejects(
      r.device.initialize(AbortSignal.timeout(10_000)),
      /SIMPLON PUT stream\/config\/format: HTTP 500/,
    );
    assert.equal(r.device.isInitialized(), false);
    await r.sim.control("clear");
    await r.device.initialize(AbortSignal.timeout(10_000));
    assert.equal(r.device.isInitialized(), true);
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: an aborted acquire task ends the series on the DCU", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "single" });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    const task = new AbortController();
    const acquiring = r.device.acquire(1, task.signal);
    await r.rec.waitFor((e) => e.type === "start-data");
    assert.equal(r.sim.detector.state, "ready");
    task.abort(new Error("controller gave up"));
    await acquiring;
    assert.deepEqual(dataEvents(r.rec.events).map((e) => e.type), ["start-data", "cancel-data"]);
    assert.equal(r.sim.detector.state, "idle");
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: teardown during an acquisition returns promptly", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "single" });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    const acquiring = r.device.acquire(1, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    await r.device.teardown();
    await acquiring;
    assert.equal(dataEvents(r.rec.events).at(-1)!.type, "cancel-data");
  } finally {
    await r.close();
  }
});

Deno.test("eiger backend: a detector without threshold 2 keys has one channel", async () => {
  const r = await rig();
  try {
    r.sim.detector.params.get("detector/config")!.delete("threshold/2/mode");
    await r.device.initialize(AbortSignal.timeout(10_000));
    assert.deepEqual(r.device.getConfig()!.channels.map((c) => c.name), ["threshold_1"]);
  } finally {
    await r.close();
  }
});
