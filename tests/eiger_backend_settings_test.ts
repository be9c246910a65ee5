/**
 * EIGER settings parsing, mode writes, and the SIMPLON client's error texts and retry policy.
 */

import assert from "node:assert/strict";
import { EigerDevice, modeWrites } from "../devices/eiger/backend.ts";
import { gatesPerImage, parseEigerSettings } from "../devices/eiger/settings.ts";
import { sequenceIdOf, SimplonClient, SimplonError } from "../devices/eiger/simplon.ts";
import { recordingContext } from "./support/eiger.ts";
import { type DeviceClass, isDevice } from "../devices/contract.ts";

Deno.test("eiger settings: defaults", () => {
  const s = parseEigerSettings({ EIGER_DEVICE_HOST: "dcu.example" });
  assert.deepEqual(s, {
    host: "dcu.example",
    numImages: 1,
    apiPort: 80,
    streamPort: 31001,
    mode: "snapshot",
    gatingFrequency: 104500,
    threshold1Energy: undefined,
    threshold2Energy: undefined,
    imageOverdue: 5,
    apiVersion: undefined,
    requestTimeout: 20,
    pollInterval: 1,
    decodeInPlace: true,
  });
  const gated = parseEigerSettings({ EIGER_DEVICE_HOST: "h", EIGER_DEVICE_MODE: "Double" });
  assert.equal(gated.mode, "double");
  assert.equal(gated.imageOverdue, 300);
  const off = parseEigerSettings({ EIGER_DEVICE_HOST: "h", EIGER_IMAGE_OVERDUE: "0" });
  assert.equal(off.imageOverdue, 0);
  const fast = parseEigerSettings({
    EIGER_DEVICE_HOST: "h",
    EIGER_NUM_IMAGES: "100",
    EIGER_DECODE_WORKERS: "0",
    EIGER_DECODE_BACKLOG: "64",
    EIGER_DECODE_IN_PLACE: "0",
  });
  assert.equal(fast.numImages, 100);
  assert.equal(fast.decodeInPlace, false);
  assert.equal(fast.decodeWorkers, 0);
  assert.equal(fast.decodeBacklog, 64);
  assert.deepEqual(
    modeWrites(fast).find(([, key]) => key === "nimages"),
    ["detector", "nimages", 100],
  );
});

Deno.test("eiger settings: each invalid value names its variable", () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{}, /EIGER_DEVICE_HOST is not set/],
    [{ EIGER_DEVICE_HOST: "a b" }, /EIGER_DEVICE_HOST/],
    [{ EIGER_API_PORT: "http" }, /EIGER_API_PORT="http" is invalid/],
    [{ EIGER_STREAM_PORT: "70000" }, /EIGER_STREAM_PORT/],
    [
      { EIGER_DEVICE_MODE: "sinlge" },
      /EIGER_DEVICE_MODE="sinlge" is invalid.*snapshot, single, double/,
    ],
    [{ EIGER_GATING_FREQUENCY: "0" }, /EIGER_GATING_FREQUENCY/],
    [{ EIGER_DECODE_IN_PLACE: "yes" }, /EIGER_DECODE_IN_PLACE="yes" is invalid/],
    [{ EIGER_X2_THRESHOLD1_ENERGY: "-5" }, /EIGER_X2_THRESHOLD1_ENERGY/],
    [{ EIGER_X2_THRESHOLD2_ENERGY: "lots" }, /EIGER_X2_THRESHOLD2_ENERGY/],
    [{ EIGER_IMAGE_OVERDUE: "-1" }, /EIGER_IMAGE_OVERDUE/],
    [{ EIGER_API_VERSION: "v2" }, /EIGER_API_VERSION/],
    [{ EIGER_REQUEST_TIMEOUT: "0" }, /EIGER_REQUEST_TIMEOUT/],
    [{ EIGER_POLL_INTERVAL: "x" }, /EIGER_POLL_INTERVAL/],
    [{ EIGER_NUM_IMAGES: "0" }, /EIGER_NUM_IMAGES="0" is invalid/],
    [{ EIGER_NUM_IMAGES: "5", EIGER_DEVICE_MODE: "double" }, /EIGER_NUM_IMAGES=5 needs .*snapshot/],
    [{ EIGER_DECODE_WORKERS: "-1" }, /EIGER_DECODE_WORKERS="-1" is invalid/],
    [{ EIGER_DECODE_BACKLOG: "0" }, /EIGER_DECODE_BACKLOG="0" is invalid/],
  ];
  for (const [env, pattern] of bad) {
    const full = "EIGER_DEVICE_HOST" in env || Object.keys(env).length === 0
      ? env
      : { EIGER_DEVICE_HOST: "h", ...env };
    assert.throws(() => parseEigerSettings(full), pattern, JSON.stringify(env));
  }
  // The backend refuses to construct with a bad setting.
  const rec = recordingContext({ EIGER_DEVICE_HOST: "h", EIGER_DEVICE_MODE: "triple" });
  assert.throws(() => new EigerDevice(rec.ctx), /EIGER_DEVICE_MODE/);
});

Deno.test("eiger settings: nexpi from duration and gating frequency", () => {
  assert.equal(gatesPerImage(1, 104500, "single"), 104500);
  assert.equal(gatesPerImage(1, 104500, "double"), 52250);
  assert.equal(gatesPerImage(0.5, 1000, "double"), 250);
  assert.throws(() => gatesPerImage(1e-9, 1000, "single"), /too short/);
});

Deno.test("eiger settings: mode writes fix the original's threshold/2/mode bug", () => {
  const snap = modeWrites(parseEigerSettings({
    EIGER_DEVICE_HOST: "h",
    EIGER_X2_THRESHOLD1_ENERGY: "7000",
    EIGER_X2_THRESHOLD2_ENERGY: "12000",
  }));
  const asMap = new Map(snap.map(([sub, key, value]) => [`${sub}/${key}`, value]));
  assert.equal(asMap.get("detector/trigger_mode"), "ints");
  assert.equal(asMap.get("detector/nimages"), 1);
  assert.equal(asMap.get("detector/threshold/1/energy"), 7000);
  assert.equal(asMap.get("detector/threshold/2/mode"), "enabled");
  assert.equal(asMap.get("detector/threshold/2/energy"), 12000);
  assert.equal(asMap.get("stream/format"), "cbor");
  assert.equal(asMap.get("stream/mode"), "enabled");
  const dbl = new Map(
    modeWrites(parseEigerSettings({ EIGER_DEVICE_HOST: "h", EIGER_DEVICE_MODE: "double" }))
      .map(([sub, key, value]) => [`${sub}/${key}`, value]),
  );
  assert.equal(dbl.get("detector/trigger_mode"), "extg");
  assert.equal(dbl.get("detector/extg_mode"), "double");
  assert.equal(dbl.get("detector/nimages"), 2);
  assert.equal(dbl.get("detector/countrate_correction_applied"), false);
  assert.equal(dbl.has("detector/threshold/1/energy"), false, "unset thresholds stay untouched");
});

Deno.test("eiger simplon: sequence id variants", () => {
  assert.equal(sequenceIdOf({ "sequence id": 7 }), 7);
  assert.equal(sequenceIdOf({ sequence_id: 8 }), 8);
  assert.equal(sequenceIdOf({ "series id": 9 }), 9);
  assert.equal(sequenceIdOf({}), undefined);
  assert.equal(sequenceIdOf(undefined), undefined);
});

Deno.test("eiger simplon: bounded retries for idempotent requests only", async () => {
  let hits = 0;
  const controller = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
    onListen: () => {},
  }, () => {
    hits++;
    return new Response("busy", { status: 503 });
  });
  try {
    const client = new SimplonClient({
      host: "127.0.0.1",
      port: server.addr.port,
      version: "1.8.0",
      timeoutMs: 2000,
      retries: 2,
      retryDelayMs: 5,
    });
    await assert.rejects(
      client.get("detector", "status", "state"),
      (e: unknown) =>
        e instanceof SimplonError && e.status === 503 && e.key === "detector/status/state" &&
        /HTTP 503 \(busy\) \(after 3 attempts\)/.test(e.message),
    );
    assert.equal(hits, 3);
    hits = 0;
    await assert.rejects(client.command("arm"), /SIMPLON PUT detector\/command\/arm: HTTP 503/);
    assert.equal(hits, 1, "commands are never retried");
  } finally {
    controller.abort();
    await server.finished;
  }
});

Deno.test("eiger simplon: connection refused and bad version reply are clear errors", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const client = new SimplonClient({
    host: "127.0.0.1",
    port,
    timeoutMs: 1000,
    retries: 1,
    retryDelayMs: 5,
  });
  await assert.rejects(
    client.discoverVersion(),
    /SIMPLON GET detector\/version failed: .* \(after 2 attempts\)/,
  );
  await assert.rejects(client.get("detector", "config", "x"), /version unknown/);
});

Deno.test("eiger backend: EigerDevice fits the backend registry's DeviceClass", () => {
  const cls: DeviceClass = EigerDevice;
  assert.equal(isDevice(cls.prototype), true);
  const rec = recordingContext({ EIGER_DEVICE_HOST: "dcu", EIGER_DEVICE_MODE: "single" });
  const device = new cls(rec.ctx);
  assert.equal(device.isInitialized(), false);
  assert.equal(device.getConfig(), undefined);
  assert.equal((device as EigerDevice).settings.imageOverdue, 300);
});
