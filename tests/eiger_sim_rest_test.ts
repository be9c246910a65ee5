/**
 * The simulated DCU's SIMPLON REST interface: version discovery, description objects, type,
 * range, enum and read-only checks, single and collection PUT, couplings, state machine and
 * commands, the control endpoint.
 */

import assert from "node:assert/strict";
import { startTestSim, type TestSim } from "./support/eiger.ts";

async function withSim(
  fn: (sim: TestSim, call: Call) => Promise<void>,
  options: Parameters<typeof startTestSim>[0] = {},
): Promise<void> {
  const sim = await startTestSim({ loopback: true, ...options });
  const base = `http://${sim.hostname}:${sim.apiPort}`;
  const call: Call = async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json };
  };
  try {
    await fn(sim, call);
  } finally {
    await sim.close();
  }
}

type Call = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; text: string; json: unknown }>;

const D = "/detector/api/1.8.0";

Deno.test("eiger sim: version endpoints and unknown versions", async () => {
  await withSim(async (_sim, call) => {
    for (
      const path of ["/detector/api/version", "/detector/api/version/", "/stream/api/version/"]
    ) {
      const r = await call("GET", path);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { value: "1.8.0", value_type: "string" });
    }
    const old = await call("GET", "/detector/api/1.6.0/config/count_time");
    assert.equal(old.status, 404);
    assert.equal((await call("GET", "/nothing/here")).status, 404);
  });
});

Deno.test("eiger sim: description objects, keys and geometry", async () => {
  await withSim(async (_sim, call) => {
    const ct = await call("GET", `${D}/config/count_time`);
    assert.equal(ct.status, 200);
    const d = ct.json as Record<string, unknown>;
    assert.equal(d.value_type, "float");
    assert.equal(d.unit, "s");
    assert.equal(d.access_mode, "rw");
    assert.equal(typeof d.min, "number");
    const tm = (await call("GET", `${D}/config/trigger_mode`)).json as Record<string, unknown>;
    assert.deepEqual(tm.allowed_values, ["ints", "inte", "exts", "exte", "extg"]);
    const x = (await call("GET", `${D}/config/x_pixels_in_detector`)).json as { value: number };
    assert.equal(x.value, 200);
    const st = (await call("GET", `${D}/status/state`)).json as Record<string, unknown>;
    assert.equal(st.value, "idle");
    assert.equal(st.state, "normal");
    assert.equal(typeof st.time, "string");
    const keys = (await call("GET", `${D}/config/keys`)).json as string[];
    for (
      const k of [
        "auto_sum_strict",
        "auto_summation",
        "bit_depth_image",
        "bit_depth_readout",
        "compression",
        "count_time",
        "counting_mode",
        "eiger_fw_version",
        "extg_mode",
        "frame_time",
        "nexpi",
        "nimages",
        "ntrigger",
        "pixel_mask_applied",
        "photon_energy",
        "test_image_mode",
        "threshold/1/energy",
        "threshold/2/energy",
        "threshold/2/mode",
        "threshold/difference/mode",
        "trigger_mode",
        "trigger_start_delay",
        "x_pixel_size",
        "y_pixel_size",
        "x_pixels_in_detector",
        "y_pixels_in_detector",
        "countrate_correction_applied",
        "flatfield_correction_applied",
        "detector_readout_time",
      ]
    ) assert.ok(keys.includes(k), k);
    assert.equal((await call("GET", `${D}/config/no_such_key`)).status, 404);
  }, { width: 200, height: 100 });
});

Deno.test("eiger sim: writes are type-, range-, enum- and access-checked", async () => {
  await withSim(async (_sim, call) => {
    const put = (key: string, value: unknown) => call("PUT", `${D}/config/${key}`, { value });
    assert.equal((await put("count_time", "1")).status, 400, "string for float");
    assert.equal((await put("count_time", 1e6)).status, 400, "above max");
    assert.equal((await put("nimages", 1.5)).status, 400, "non-integer uint");
    assert.equal((await put("nimages", -1)).status, 400, "negative uint");
    assert.equal((await put("threshold/2/mode", true)).status, 400, "bool for enum string");
    assert.equal((await put("trigger_mode", "bogus")).status, 400, "not allowed");
    const ro = await put("x_pixels_in_detector", 10);
    assert.equal(ro.status, 403);
    assert.match(ro.text, /read-only/);
    assert.equal((await call("PUT", `${D}/config/count_time`, "not json")).status, 400);
    const ok = await put("threshold/2/mode", "enabled");
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json, ["threshold/2/mode"]);
  });
});

Deno.test("eiger sim: couplings and collection PUT", async () => {
  await withSim(async (_sim, call) => {
    const ct = await call("PUT", `${D}/config/count_time`, { value: 2 });
    assert.ok((ct.json as string[]).includes("frame_time"));
    const ft = (await call("GET", `${D}/config/frame_time`)).json as { value: number };
    assert.ok(ft.value > 2 && ft.value < 2.001);
    const pe = await call("PUT", `${D}/config/photon_energy`, { value: 10000 });
    assert.ok((pe.json as string[]).includes("threshold/1/energy"));
    const t1 = (await call("GET", `${D}/config/threshold/1/energy`)).json as { value: number };
    assert.equal(t1.value, 5000);
    const multi = await call("PUT", `${D}/config`, {
      "extg_mode": { value: "single" },
      "trigger_mode": { value: "extg" },
    });
    assert.equal(multi.status, 200);
    assert.ok((multi.json as string[]).includes("bit_depth_image"));
    const depth = (await call("GET", `${D}/config/bit_depth_image`)).json as { value: number };
    assert.equal(depth.value, 32, "extg single images are 32 bit");
    const stream = await call("PUT", "/stream/api/1.8.0/config", {
      mode: { value: "enabled" },
      format: { value: "cbor" },
    });
    assert.deepEqual(stream.json, ["format", "mode"]);
    const sst = (await call("GET", "/stream/api/1.8.0/status/state")).json as { value: string };
    assert.equal(sst.value, "ready");
  });
});

Deno.test("eiger sim: state machine, commands and series ids", async () => {
  await withSim(async (sim, call) => {
    const got: string[] = [];
    sim.detector.output = { send: (m) => got.push(m.type), drop: () => {} };
    await call("PUT", "/stream/api/1.8.0/config/mode", { value: "enabled" });
    await call("PUT", "/stream/api/1.8.0/config/format", { value: "cbor" });
    await call("PUT", `${D}/config/count_time`, { value: 0.01 });
    // Empty body, {} and Content-Length 0 are all accepted for commands.
    const arm = await call("PUT", `${D}/command/arm`, "");
    assert.equal(arm.status, 200);
    assert.deepEqual(arm.json, { "sequence id": 1 });
    assert.equal(sim.detector.state, "ready");
    const writeWhileArmed = await call("PUT", `${D}/config/count_time`, { value: 0.02 });
    assert.equal(writeWhileArmed.status, 403);
    assert.equal((await call("PUT", `${D}/command/arm`, {})).status, 400, "already armed");
    const trig = await call("PUT", `${D}/command/trigger`, {});
    assert.equal(trig.status, 200);
    assert.equal(sim.detector.state, "idle", "auto-disarm after the triggered series");
    assert.deepEqual(got, ["start", "image", "end"]);
    const disarm = await call("PUT", `${D}/command/disarm`);
    assert.deepEqual(disarm.json, { "sequence id": 1 });
    assert.equal((await call("PUT", `${D}/command/trigger`, {})).status, 400, "not armed");
    // extg double needs an even nimages
    await call("PUT", `${D}/config`, {
      trigger_mode: { value: "extg" },
      extg_mode: { value: "double" },
      nimages: { value: 3 },
    });
    const bad = await call("PUT", `${D}/command/arm`, {});
    assert.equal(bad.status, 400);
    assert.match(bad.text, /even/);
    await call("PUT", `${D}/config/nimages`, { value: 2 });
    assert.deepEqual((await call("PUT", `${D}/command/arm`, {})).json, { "sequence id": 2 });
    assert.equal((await call("PUT", `${D}/command/trigger`, {})).status, 400, "no trigger in extg");
    assert.deepEqual(await sim.control("gate", { measurements: 1 }), { images: 2 });
    assert.equal(sim.detector.state, "idle");
    assert.deepEqual(got.slice(3), ["start", "image", "image", "end"]);
    const abort = await call("PUT", `${D}/command/abort`, {});
    assert.deepEqual(abort.json, { "sequence id": 2 });
    await call("PUT", `${D}/command/initialize`, {});
    assert.deepEqual((await call("PUT", `${D}/command/arm`, {})).json, { "sequence id": 1 });
  });
});

Deno.test("eiger sim: state na hides config until initialize", async () => {
  await withSim(async (sim, call) => {
    assert.equal((await call("GET", `${D}/status/state`)).status, 200);
    const ct = await call("GET", `${D}/config/count_time`);
    assert.equal(ct.status, 404);
    assert.match(ct.text, /does not exist/);
    assert.equal((await call("PUT", `${D}/command/arm`, {})).status, 400);
    assert.equal((await call("PUT", `${D}/command/initialize`, {})).status, 200);
    assert.equal(sim.detector.state, "idle");
    assert.equal((await call("GET", `${D}/config/count_time`)).status, 200);
  }, { startState: "na" });
});

Deno.test("eiger sim: control endpoint faults and validation", async () => {
  await withSim(async (sim, call) => {
    await sim.control("fault", { kind: "http", key: "detector/status/temperature", status: 500 });
    const t = await call("GET", `${D}/status/temperature`);
    assert.equal(t.status, 500);
    assert.match(t.text, /detector\/status\/temperature/);
    await sim.control("fault", {
      kind: "http",
      key: "detector/config/nimages",
      status: 503,
      count: 1,
    });
    assert.equal((await call("GET", `${D}/config/nimages`)).status, 503);
    assert.equal((await call("GET", `${D}/config/nimages`)).status, 200, "count 1 is one-shot");
    await sim.control("clear");
    assert.equal((await call("GET", `${D}/status/temperature`)).status, 200);
    await assert.rejects(sim.control("fault", { kind: "bogus" }), /HTTP 400/);
    await assert.rejects(sim.control("gate"), /HTTP 400.*not in extg/);
    await assert.rejects(sim.control("gate", { measurements: 0 }), /HTTP 400/);
    const status = await sim.control("status") as Record<string, unknown>;
    assert.equal(status.state, "idle");
  });
});

Deno.test("eiger sim: external triggers in exts and exte", async () => {
  await withSim(async (sim, call) => {
    const got: string[] = [];
    sim.detector.output = { send: (m) => got.push(m.type), drop: () => {} };
    await call("PUT", "/stream/api/1.8.0/config", {
      mode: { value: "enabled" },
      format: { value: "cbor" },
    });
    await call("PUT", `${D}/config`, {
      trigger_mode: { value: "exts" },
      nimages: { value: 2 },
      ntrigger: { value: 2 },
    });
    await assert.rejects(sim.control("trigger"), /HTTP 400.*not armed/);
    await call("PUT", `${D}/command/arm`, {});
    assert.deepEqual(await sim.control("trigger"), { images: 2 });
    assert.equal(sim.detector.state, "ready", "back to ready between triggers");
    assert.deepEqual(await sim.control("trigger"), { images: 2 });
    assert.equal(sim.detector.state, "idle");
    assert.deepEqual(got, ["start", "image", "image", "image", "image", "end"]);
    await call("PUT", `${D}/config/trigger_mode`, { value: "exte" });
    await call("PUT", `${D}/command/arm`, {});
    assert.deepEqual(await sim.control("trigger", { count: 2 }), { images: 2 });
    assert.equal(sim.detector.state, "idle");
  });
});
