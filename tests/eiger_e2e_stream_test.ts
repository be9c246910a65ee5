/**
 * EIGER backend + simulator over real loopback sockets: SIMPLON over HTTP and stream v2 over
 * ZeroMQ (ZMTP PUSH/PULL, CBOR, bslz4). Checks full-size images, the byte-level faults (corrupt
 * compressed block, dropped stream connection) and recovery.
 */

import assert from "node:assert/strict";
import type { DeviceEvent, ErrorEvent, ImageDataEvent } from "../devices/contract.ts";
import { makePattern, renderImage } from "../devices/eiger_sim/images.ts";
import { clearLikeController, dataEvents, type EigerRig, startEigerRig } from "./support/eiger.ts";

type Rig = EigerRig;

function rig(
  env: Record<string, string> = {},
  size: { width: number; height: number } = { width: 64, height: 32 },
): Promise<Rig> {
  return startEigerRig({
    sim: { ...size, gateFrequency: 1000 },
    env: { EIGER_GATING_FREQUENCY: "1000", ...env },
    initialize: true,
  });
}

function types(events: DeviceEvent[]): string[] {
  return dataEvents(events).map((e) => e.type);
}

Deno.test("eiger e2e: snapshot 1028x512 over ZMTP with bslz4, pixels intact", async () => {
  const r = await rig({ EIGER_X2_THRESHOLD2_ENERGY: "9000" }, { width: 1028, height: 512 });
  try {
    const config = r.device.getConfig()!;
    assert.equal(config.width, 1028);
    assert.equal(config.height, 512);
    await r.device.acquire(0.05, AbortSignal.timeout(20_000));
    assert.deepEqual(types(r.rec.events), ["start-data", "image-data", "end-data"]);
    const image = r.rec.events.find((e) => e.type === "image-data") as ImageDataEvent;
    // The simulator renders deterministically from (series, image, channel): compare exactly.
    const pattern = makePattern(1028, 512);
    const want1 = renderImage(pattern, "uint16", 0.05, 100, 1 * 7919 + 0 * 31 + 0);
    const want2 = renderImage(pattern, "uint16", 0.05, 30, 1 * 7919 + 0 * 31 + 1);
    assert.deepEqual(image.images.threshold_1, want1);
    assert.deepEqual(image.images.threshold_2, want2);
  } finally {
    await r.close();
  }
});

Deno.test("eiger e2e: double gating over ZMTP", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "double" });
  try {
    const acquiring = r.device.acquire(0.2, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    await r.sim.control("gate");
    await acquiring;
    assert.deepEqual(types(r.rec.events), ["start-data", "image-data", "image-data", "end-data"]);
    const exposures = (r.rec.events.filter((e) => e.type === "image-data") as ImageDataEvent[])
      .map((e) => e.exposure);
    assert.deepEqual(exposures, [0.1, 0.1]);
  } finally {
    await r.close();
  }
});

Deno.test("eiger e2e: corrupt bslz4 block is an error naming the series", async () => {
  const r = await rig();
  try {
    await r.sim.control("fault", { kind: "corrupt-image", imageId: 0 });
    await assert.rejects(
      r.device.acquire(0.05, AbortSignal.timeout(10_000)),
      /series 1: bad stream message: (?:.*)(?:bslz4|lz4|block|compress)/i,
    );
    assert.deepEqual(types(r.rec.events), ["start-data"]);
    await r.device.clear();
    await r.device.acquire(0.05, AbortSignal.timeout(10_000));
    assert.deepEqual(types(r.rec.events), ["start-data", "start-data", "image-data", "end-data"]);
  } finally {
    await r.close();
  }
});

Deno.test("eiger e2e: stream connection dropped mid-series; reconnects for the next one", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "double" });
  try {
    await r.sim.control("fault", { kind: "drop-stream", afterImages: 1 });
    const acquiring = r.device.acquire(0.2, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    await r.sim.control("gate");
    await assert.rejects(acquiring, /image stream connection lost during series 1/);
    const images = r.rec.events.filter((e) => e.type === "image-data") as ImageDataEvent[];
    assert.deepEqual(images.map((e) => e.index), [0], "the complete first image was delivered");
    assert.equal(r.device.isInitialized(), false, "a lost stream asks for a new initialize");
    await clearLikeController(r.device);
    const from = r.rec.events.length;
    const next = r.device.acquire(0.2, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data", { from });
    await r.sim.control("gate");
    await next;
    assert.deepEqual(types(r.rec.events.slice(from)), [
      "start-data",
      "image-data",
      "image-data",
      "end-data",
    ]);
    assert.equal(
      r.rec.events.filter((e) => e.type === "error").length,
      0,
      (r.rec.events.filter((e) => e.type === "error") as ErrorEvent[]).map((e) => e.message)
        .join("; "),
    );
  } finally {
    await r.close();
  }
});
