/**
 * EIGER backend fault handling against the simulator's fault injection: every fault ends in an
 * error naming its cause (key, status, series), `clear` succeeds once the fault is gone, the next
 * acquisition works, and images that arrived complete before the fault were delivered.
 */

import assert from "node:assert/strict";
import { EigerDevice } from "../devices/eiger/backend.ts";
import type { DeviceEvent, ErrorEvent, ImageDataEvent } from "../devices/contract.ts";
import {
  clearLikeController,
  dataEvents,
  type EigerRig,
  recordingContext,
  startEigerRig,
  startTestSim,
} from "./support/eiger.ts";

type Rig = EigerRig;

function rig(env: Record<string, string> = {}): Promise<Rig> {
  return startEigerRig({
    sim: { loopback: true, gateFrequency: 1000 },
    env: { EIGER_GATING_FREQUENCY: "1000", ...env },
    initialize: true,
  });
}

function types(events: DeviceEvent[]): string[] {
  return dataEvents(events).map((e) => e.type);
}

/** After a fault: remove it, clear, and prove a full acquisition works again. */
async function recovers(r: Rig, gated = false): Promise<void> {
  await r.sim.control("clear");
  await clearLikeController(r.device);
  const from = r.rec.events.length;
  const acquiring = r.device.acquire(0.05, AbortSignal.timeout(10_000));
  if (gated) {
    await r.rec.waitFor((e) => e.type === "start-data", { from });
    await r.sim.control("gate");
  }
  await acquiring;
  const got = types(r.rec.events.slice(from));
  assert.equal(got[0], "start-data");
  assert.equal(got.at(-1), "end-data");
}

Deno.test("eiger faults: HTTP error on arm names key and status; clear recovers", async () => {
  const r = await rig();
  try {
    await r.sim.control("fault", { kind: "http", key: "detector/command/arm", status: 500 });
    await assert.rejects(
      r.device.acquire(0.05, AbortSignal.timeout(10_000)),
      /SIMPLON PUT detector\/command\/arm: HTTP 500 .*; the DCU needs initialization \(arm failed: .*\): clear initializes it again/,
    );
    assert.deepEqual(types(r.rec.events), []);
    assert.equal(r.device.isInitialized(), false, "a failed arm asks for a new initialize");
    await recovers(r);
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: HTTP error on a config key names the key", async () => {
  const r = await rig();
  try {
    await r.sim.control("fault", { kind: "http", key: "detector/config/count_time", status: 400 });
    await assert.rejects(
      r.device.acquire(0.05, AbortSignal.timeout(10_000)),
      /detector\/config\/count_time: HTTP 400/,
    );
    await recovers(r);
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: a transient 503 is retried and the acquisition succeeds", async () => {
  const r = await rig();
  try {
    await r.sim.control("fault", {
      kind: "http",
      key: "detector/config/count_time",
      status: 503,
      count: 1,
    });
    await r.device.acquire(0.05, AbortSignal.timeout(10_000));
    assert.deepEqual(types(r.rec.events), ["start-data", "image-data", "end-data"]);
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: slow reply times out with the key in the message", async () => {
  const r = await rig({ EIGER_REQUEST_TIMEOUT: "0.2" });
  try {
    await r.sim.control("fault", { kind: "delay", key: "detector/config/count_time", ms: 1000 });
    await assert.rejects(
      r.device.acquire(0.05, AbortSignal.timeout(10_000)),
      /SIMPLON PUT detector\/config\/count_time timed out after 0\.2 s \(after 3 attempts\)/,
    );
    await recovers(r);
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: failing status poll is an error event, clear fails until fixed", async () => {
  const r = await rig();
  try {
    const from = r.rec.events.length;
    await r.sim.control("fault", { kind: "http", key: "detector/status/temperature", status: 502 });
    const error = await r.rec.waitFor((e) => e.type === "error", { from }) as ErrorEvent;
    assert.match(error.message, /status poll: SIMPLON GET detector\/status\/temperature: HTTP 502/);
    await assert.rejects(r.device.clear(), /detector\/status\/temperature: HTTP 502/);
    // The poller keeps running: still exactly one report per failure streak.
    assert.equal(r.rec.events.slice(from).filter((e) => e.type === "error").length, 1);
    await recovers(r);
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: stream dropped mid-series names the series, keeps the first image", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "double" });
  try {
    await r.sim.control("fault", { kind: "drop-stream", afterImages: 1 });
    const acquiring = r.device.acquire(1, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    await r.sim.control("gate");
    await assert.rejects(acquiring, /image stream connection lost during series 1/);
    const images = r.rec.events.filter((e) => e.type === "image-data") as ImageDataEvent[];
    assert.deepEqual(images.map((e) => e.index), [0]);
    assert.deepEqual(types(r.rec.events), ["start-data", "image-data"]);
    await recovers(r, true);
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: a missing image is reported with its id when the series ends", async () => {
  const r = await rig({ EIGER_DEVICE_MODE: "double" });
  try {
    await r.sim.control("fault", { kind: "missing-image", imageId: 1 });
    const acquiring = r.device.acquire(1, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    await r.sim.control("gate");
    await assert.rejects(acquiring, /series 1 ended after 1 of 2 images \(missing image id 1\)/);
    assert.deepEqual(types(r.rec.events), ["start-data", "image-data"]);
    await recovers(r, true);
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: a corrupt image names the series", async () => {
  const r = await rig();
  try {
    await r.sim.control("fault", { kind: "corrupt-image", imageId: 0 });
    await assert.rejects(
      r.device.acquire(0.05, AbortSignal.timeout(10_000)),
      /series 1: bad stream message: corrupt bslz4 data in image 0/,
    );
    await recovers(r);
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: a wrong series id in the stream is detected", async () => {
  const r = await rig();
  try {
    await r.sim.control("fault", { kind: "wrong-series" });
    await assert.rejects(
      r.device.acquire(0.05, AbortSignal.timeout(10_000)),
      /stream series id 1001 does not match armed series 1/,
    );
    assert.deepEqual(types(r.rec.events), []);
    await recovers(r);
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: DCU state error is reported; clear re-initializes the DCU", async () => {
  const r = await rig();
  try {
    const from = r.rec.events.length;
    await r.sim.control("fault", { kind: "state", state: "error" });
    const error = await r.rec.waitFor((e) => e.type === "error", { from }) as ErrorEvent;
    assert.match(error.message, /DCU reports detector state error/);
    await recovers(r);
    assert.equal(r.sim.detector.state, "idle");
  } finally {
    await r.close();
  }
});

Deno.test("eiger faults: acquiring without a stream connection fails with a clear error", async () => {
  const sim = await startTestSim({ loopback: true });
  const rec = recordingContext(sim.env({ EIGER_REQUEST_TIMEOUT: "0.3" }));
  // A stream source that never connects.
  const never = async function* (signal: AbortSignal) {
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    yield* [];
  };
  const device = new EigerDevice(rec.ctx, { openStream: never, statePollMs: 20 });
  try {
    await device.startup();
    await device.initialize(AbortSignal.timeout(10_000));
    await assert.rejects(
      device.acquire(0.05, AbortSignal.timeout(10_000)),
      /image stream 127\.0\.0\.1:31001 not connected after 0\.3 s/,
    );
    assert.equal(sim.detector.seriesId, 0, "nothing was armed");
  } finally {
    await device.teardown();
    rec.abort();
    await sim.close();
  }
});
