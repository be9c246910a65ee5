/**
 * The Harp backend against the HydraHarp stand-in library (built with gcc), in process: settings
 * reach the device, histograms equal what the stand-in computed, cancel, every injected library
 * error ends the command with an error naming the call, unplug and clear, channel adjustment,
 * runtime values, device selection by serial, and the load-time errors.
 */

import assert from "node:assert/strict";
import { HarpDevice } from "../devices/harp/backend.ts";
import type { DeviceEvent, ImageDataEvent } from "../devices/contract.ts";
import { recordingContext } from "./support/eiger.ts";
import { createStandIn, expectedHistogram, type StandIn } from "./support/harp/standin.ts";

interface Rig {
  standIn: StandIn;
  device: HarpDevice;
  events: DeviceEvent[];
  waitFor: ReturnType<typeof recordingContext>["waitFor"];
  close(): Promise<void>;
}

/** Sets the stand-in's variables in the process environment (the C library reads getenv). */
function exportEnv(env: Record<string, string>): void {
  for (const [k, v] of Object.entries(env)) if (k.startsWith("HHSTANDIN_")) Deno.env.set(k, v);
}

async function rig(env: Record<string, string> = {}, initialize = true): Promise<Rig> {
  const standIn = await createStandIn();
  const full = standIn.env({ HARP_POLL_INTERVAL: "0.05", HARP_CTC_POLL_MS: "5", ...env });
  exportEnv({ HHSTANDIN_DEVICES: "0:1020304", HHSTANDIN_INPUTS: "4", ...full });
  const rec = recordingContext(full);
  const device = new HarpDevice(rec.ctx);
  await device.startup();
  if (initialize) await device.initialize(new AbortController().signal);
  return {
    standIn,
    device,
    events: rec.events,
    waitFor: rec.waitFor,
    close: async () => {
      await device.teardown();
      rec.abort();
      await standIn.remove();
    },
  };
}

/** Waits (bounded) until the stand-in logged a call matching `pattern`. */
async function waitForCall(standIn: StandIn, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if ((await standIn.calls()).some((l) => pattern.test(l))) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`call ${pattern} not logged: ${(await standIn.calls()).join("; ")}`);
}

/** Awaits `fn`'s rejection and checks its message contains `text`. */
async function assertRejects(fn: () => Promise<unknown>, _: unknown, text: string): Promise<void> {
  await assert.rejects(fn, (error: Error) => {
    assert.ok(error.message.includes(text), `"${error.message}" lacks "${text}"`);
    return true;
  });
}

/** Checks `fn` throws an error whose message contains `text`. */
function assertThrows(fn: () => unknown, _: unknown, text: string): void {
  assert.throws(fn, (error: Error) => {
    assert.ok(error.message.includes(text), `"${error.message}" lacks "${text}"`);
    return true;
  });
}

function images(events: DeviceEvent[]): ImageDataEvent[] {
  return events.filter((e): e is ImageDataEvent => e.type === "image-data");
}

Deno.test("harp: settings reach the device, histograms equal the stand-in's, buffers recycle", async () => {
  const r = await rig({
    HARP_BINNING: "3",
    HARP_OFFSET: "2",
    HARP_HISTO_LEN: "4096",
    HARP_INPUT_OFFSET: "0,500,-300,1000",
    HARP_SYNC_DIVIDER: "4",
    HARP_REF_SOURCE: "external",
  });
  try {
    const config = r.device.getConfig()!;
    assert.deepEqual(config.channels.map((c) => c.name), ["ch1", "ch2", "ch3", "ch4"]);
    assert.deepEqual([config.width, config.height, config.numImages], [4096, 1, 1]);
    assert.deepEqual(config.pixelType, "uint32");
    assert.deepEqual(config.channels[1].meta, { offset: 500, cfd_level: 50, cfd_zero_cross: 10 });
    assert.deepEqual(config.extra?.resolution_ps, 8);
    assert.deepEqual(config.extra?.serial, "1020304");
    const calls = (await r.standIn.calls()).map((l) => l.split(" ")[0]);
    assert.ok(
      calls.indexOf("HH_Initialize") < calls.indexOf("HH_Calibrate"),
      "calibrate after init",
    );
    const log = await r.standIn.calls();
    assert.ok(log.includes("HH_Initialize 0 0 1"), "histogram mode, external reference");
    assert.ok(log.includes("HH_SetSyncDiv 0 4 0"));
    assert.ok(log.includes("HH_SetHistoLen 0 2 0"), "length code 2 = 4096 bins");
    assert.ok(log.includes("HH_SetInputChannelOffset 0 2 -300"));

    await r.standIn.clearCalls();
    await r.device.acquire(0.25, new AbortController().signal);
    const seq = (await r.standIn.calls()).map((l) => l.split(" ").slice(0, 2).join(" "));
    const order = ["HH_ClearHistMem 0", "HH_StartMeas 0", "HH_CTCStatus 0", "HH_StopMeas 0"];
    assert.deepEqual(order.map((c) => seq.indexOf(c) >= 0), [true, true, true, true]);
    assert.ok(order.every((c, i) => i === 0 || seq.indexOf(order[i - 1]) < seq.indexOf(c)));
    assert.ok((await r.standIn.calls()).includes("HH_StartMeas 0 250 0"), "duration in ms");
    const [first] = images(r.events);
    assert.deepEqual(r.events.map((e) => e.type).filter((t) => t !== "runtime"), [
      "start-data",
      "image-data",
      "end-data",
    ]);
    const offsets = [0, 500, -300, 1000];
    const geometry = { binning: 3, offsetNs: 2, bins: 4096 };
    for (let i = 0; i < 4; i++) {
      const got = first.images[`ch${i + 1}`] as Uint32Array;
      assert.deepEqual(got.length, 4096);
      assert.deepEqual(got, await r.standIn.dumped(i));
      const want = expectedHistogram({
        ...geometry,
        input: i,
        measuredMs: 250,
        channelOffsetPs: offsets[i],
      });
      assert.deepEqual(got, want);
    }
    // A longer measurement scales the counts; released buffers are reused.
    const kept = first.images.ch1;
    first.release!();
    await r.device.acquire(0.5, new AbortController().signal);
    const second = images(r.events)[1];
    assert.ok(second.images.ch1 === kept || Object.values(second.images).includes(kept));
    const peak = Math.max(
      ...expectedHistogram({ ...geometry, input: 0, measuredMs: 500, channelOffsetPs: 0 }),
    );
    assert.deepEqual(Math.max(...(second.images.ch1 as Uint32Array)), peak);
    assert.equal(peak, 505, "(i+1)*T + T/100 at T = 500 ms: twice the 250 ms peak plus background");
  } finally {
    await r.close();
  }
});

Deno.test("harp: cancel stops the measurement and emits CancelData", async () => {
  const r = await rig();
  try {
    await r.standIn.control("hang");
    const done = r.device.acquire(1, new AbortController().signal);
    await waitForCall(r.standIn, /^HH_CTCStatus/);
    await r.device.cancel();
    await done;
    const types = r.events.map((e) => e.type).filter((t) => t !== "runtime");
    assert.deepEqual(types, ["start-data", "cancel-data"]);
    assert.ok(
      (await r.standIn.calls()).some((l) => l.startsWith("HH_StopMeas")),
      "StopMeas called",
    );
    // The next acquisition works.
    await r.standIn.control();
    await r.device.acquire(0.05, new AbortController().signal);
    assert.deepEqual(r.events.at(-1)?.type, "end-data");
  } finally {
    await r.close();
  }
});

Deno.test("harp: a measurement that never finishes is an error naming CTCStatus", async () => {
  const r = await rig({ HARP_OVERDUE: "0.1" });
  try {
    await r.standIn.control("hang");
    await assertRejects(
      () => r.device.acquire(0.05, new AbortController().signal),
      Error,
      "HH_CTCStatus: measurement of 50 ms not finished",
    );
    assert.ok((await r.standIn.calls()).some((l) => l.startsWith("HH_StopMeas")), "stopped");
  } finally {
    await r.close();
  }
});

Deno.test("harp: slow library calls and the measurement wait do not block the event loop", async () => {
  const r = await rig({}, false);
  try {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      await r.standIn.control("delay Calibrate 400", "delay GetHistogram 200");
      await r.device.initialize(new AbortController().signal);
      const duringInit = ticks;
      await r.device.acquire(0.3, new AbortController().signal);
      const duringAcquire = ticks - duringInit;
      // 400 ms of Calibrate and 300 + 4 × 200 ms of acquisition at one tick per 10 ms: a blocked
      // loop would see at most a few ticks (timers fire only between calls).
      assert.ok(duringInit >= 8, `ticks during initialize: ${duringInit}`);
      assert.ok(duringAcquire >= 20, `ticks during acquire: ${duringAcquire}`);
    } finally {
      clearInterval(timer);
    }
  } finally {
    await r.close();
  }
});

const INIT_CALLS = [
  "OpenDevice",
  "Initialize",
  "GetHardwareInfo",
  "GetNumOfInputChannels",
  "Calibrate",
  "SetSyncDiv",
  "SetSyncCFD",
  "SetSyncChannelOffset",
  "SetInputCFD",
  "SetInputChannelOffset",
  "SetHistoLen",
  "SetBinning",
  "SetOffset",
  "GetResolution",
  "GetBaseResolution",
];
const ACQUIRE_CALLS = [
  "ClearHistMem",
  "StartMeas",
  "CTCStatus",
  "StopMeas",
  "GetFlags",
  "GetHistogram",
];

Deno.test("harp: every injected error in initialize names the call and the library's text", async () => {
  const r = await rig({ HARP_DEVICE_INDEX: "0" }, false);
  try {
    for (const call of INIT_CALLS) {
      await r.standIn.control(`fail ${call} -46`);
      await assertRejects(
        () => r.device.initialize(new AbortController().signal),
        Error,
        `HH_${call} failed: calibration failed (error -46)`,
      );
      assert.deepEqual(r.device.isInitialized(), false, call);
    }
    await r.standIn.control();
    await r.device.initialize(new AbortController().signal);
    assert.ok(r.device.isInitialized());
  } finally {
    await r.close();
  }
});

Deno.test("harp: every injected error in acquire names the call; the next acquisition works", async () => {
  const r = await rig();
  try {
    for (const call of ACQUIRE_CALLS) {
      await r.standIn.control(`fail ${call} -17`);
      await assertRejects(
        () => r.device.acquire(0.02, new AbortController().signal),
        Error,
        `HH_${call} failed: invalid argument (error -17)`,
      );
      await r.standIn.control();
      await r.device.acquire(0.02, new AbortController().signal);
      assert.deepEqual(r.events.at(-1)?.type, "end-data", call);
    }
  } finally {
    await r.close();
  }
});

Deno.test("harp: an unplugged device is reported by the poll; clear and re-initialize recover", async () => {
  const r = await rig();
  try {
    await r.standIn.control("unplug");
    const error = await r.waitFor((e) => e.type === "error");
    assert.match((error as { message: string }).message, /HH_GetSyncRate failed: USB bulk read/);
    await assertRejects(() => r.device.acquire(0.02, new AbortController().signal), Error, "HH_");
    await r.device.clear();
    assert.deepEqual(r.device.isInitialized(), false);
    await assertRejects(
      () => r.device.initialize(new AbortController().signal),
      Error,
      "HH_OpenDevice",
    );
    await r.standIn.control();
    await r.device.clear();
    await r.device.initialize(new AbortController().signal);
    await r.device.acquire(0.02, new AbortController().signal);
    assert.deepEqual(r.events.at(-1)?.type, "end-data");
  } finally {
    await r.close();
  }
});

Deno.test("harp: channel adjustment goes to the device and shows in the next histogram", async () => {
  const r = await rig({ HARP_HISTO_LEN: "1024" });
  try {
    await r.device.adjustChannel("ch2", { offset: 700, cfd_level: 120 });
    const log = await r.standIn.calls();
    assert.ok(log.includes("HH_SetInputCFD 0 1 120"), log.join(";"));
    assert.ok(log.includes("HH_SetInputChannelOffset 0 1 700"));
    const state = r.events.find((e) => e.type === "channel-state");
    assert.deepEqual(state, {
      type: "channel-state",
      channel: "ch2",
      values: { offset: 700, cfd_level: 120, cfd_zero_cross: 10 },
    });
    await r.device.acquire(0.1, new AbortController().signal);
    const got = images(r.events)[0].images.ch2;
    assert.deepEqual(
      got,
      expectedHistogram({ input: 1, measuredMs: 100, channelOffsetPs: 700, bins: 1024 }),
    );
    await assertRejects(() => r.device.adjustChannel("ch2", { cfd_level: 5000 }), Error, "0..1000");
    await assertRejects(() => r.device.adjustChannel("ch9", { offset: 1 }), Error, "unknown");
    await r.standIn.control("fail SetInputChannelOffset -17");
    await assertRejects(
      () => r.device.adjustChannel("ch1", { offset: 5 }),
      Error,
      "HH_SetInputChannelOffset failed",
    );
    assert.deepEqual(r.device.getConfig()!.channels[0].meta.offset, 0, "failed write not reported");
  } finally {
    await r.close();
  }
});

Deno.test("harp: runtime values: rates, warnings with their text, resolution", async () => {
  const r = await rig();
  try {
    await r.standIn.control("warn 0x41");
    for (let i = 0; i < 400 && r.device.getRuntime().warnings !== 0x41; i++) {
      await new Promise((res) => setTimeout(res, 5));
    }
    const rt = r.device.getRuntime();
    assert.deepEqual(rt.sync_rate, 80000000);
    assert.deepEqual(rt.count_rate_ch1, 10000);
    assert.deepEqual(rt.count_rate_ch4, 40000);
    assert.deepEqual(rt.warnings, 0x41);
    assert.deepEqual(rt.warnings_names, "sync_rate_zero,input_rate_too_high");
    assert.deepEqual(rt.warnings_text, "stand-in warning bits 0x0041");
    assert.deepEqual(rt.resolution_ps, 1);
  } finally {
    await r.close();
  }
});

Deno.test("harp: HARP_SERIAL picks the device; a missing serial lists what was found", async () => {
  const r = await rig({ HARP_SERIAL: "222", HHSTANDIN_DEVICES: "1:111,3:222" });
  try {
    assert.deepEqual(r.device.getConfig()!.extra?.device_index, 3);
    assert.ok((await r.standIn.calls()).includes("HH_CloseDevice 1 0 0"), "others closed");
  } finally {
    await r.close();
  }
  const s = await rig({ HARP_SERIAL: "999", HHSTANDIN_DEVICES: "1:111" }, false);
  try {
    await assertRejects(
      () => s.device.initialize(new AbortController().signal),
      Error,
      "HH_OpenDevice found no HydraHarp with serial 999 (indices 0,1,2,3,4,5,6,7; found 1:111)",
    );
  } finally {
    await s.close();
  }
});

Deno.test("harp: a missing library, function or wrong version is a clear error at construction", async () => {
  const standIn = await createStandIn(["STANDIN_OMIT_CALIBRATE"]);
  try {
    const make = (env: Record<string, string>) => () =>
      new HarpDevice(recordingContext({ ...env }).ctx);
    assertThrows(
      make({ HARP_LIBRARY: `${standIn.folder}/nothing.so` }),
      Error,
      `cannot load the HydraHarp library (${standIn.folder}/nothing.so:`,
    );
    assertThrows(make({ HARP_LIBRARY: standIn.library }), Error, "it lacks HH_Calibrate");
    const good = await createStandIn();
    try {
      Deno.env.set("HHSTANDIN_VERSION", "2.0");
      assertThrows(make({ HARP_LIBRARY: good.library }), Error, 'HH_GetLibraryVersion "2.0"');
    } finally {
      Deno.env.delete("HHSTANDIN_VERSION");
      await good.remove();
    }
    assertThrows(make({ HARP_BINNING: "26" }), Error, "HARP_BINNING");
    assertThrows(make({ HARP_HISTO_LEN: "3000" }), Error, "HARP_HISTO_LEN");
    assertThrows(make({ HARP_SYNC_DIVIDER: "3" }), Error, "HARP_SYNC_DIVIDER");
    assertThrows(make({ HARP_REF_SOURCE: "gps" }), Error, "HARP_REF_SOURCE");
  } finally {
    await standIn.remove();
  }
});
