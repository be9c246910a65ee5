/**
 * Late messages of a series the IOC cancelled (the simulator's `leftovers` fault), at every
 * timing a DCU may send them: before the next series' start, right after it, in the middle of the
 * next series, and while idle. They are dropped with one warning naming the series and what was
 * dropped, and change nothing: no data event, no error, the next series is delivered intact.
 * Messages of a series nobody here armed are still an error.
 */

import assert from "node:assert/strict";
import type { DeviceEvent, ErrorEvent, StartDataEvent } from "../devices/contract.ts";
import { dataEvents, type EigerRig, startEigerRig } from "./support/eiger.ts";
import { startControllerRig } from "./support/eiger_controller_rig.ts";
import type { EigerSimOptions } from "../devices/eiger_sim/main.ts";

const DROPPED = /Dropped late stream messages of a series/;

function rig(zmq = false, sim: EigerSimOptions = {}): Promise<EigerRig> {
  return startEigerRig({
    sim: { loopback: !zmq, gateFrequency: 1000, ...sim },
    env: { EIGER_GATING_FREQUENCY: "1000", EIGER_DEVICE_MODE: "double" },
    initialize: true,
  });
}

function types(events: DeviceEvent[]): string[] {
  return dataEvents(events).map((e) => e.type);
}

function errors(events: DeviceEvent[]): string[] {
  return (events.filter((e) => e.type === "error") as ErrorEvent[]).map((e) => e.message);
}

/** Series 1 is cancelled before its gates; the simulator holds its two images and end back. */
async function cancelFirstSeries(r: EigerRig, at?: string): Promise<void> {
  if (at !== undefined) await r.sim.control("fault", { kind: "leftovers", at });
  const from = r.rec.events.length;
  const acquiring = r.device.acquire(0.2, AbortSignal.timeout(10_000));
  await r.rec.waitFor((e) => e.type === "start-data", { from });
  await r.device.cancel();
  await acquiring;
  assert.deepEqual(types(r.rec.events.slice(from)), ["start-data", "cancel-data"]);
}

/** Runs series 2 (gated: two images); `during` runs after its start-data arrived. */
async function secondSeries(r: EigerRig, during?: () => Promise<void>): Promise<void> {
  const from = r.rec.events.length;
  const next = r.device.acquire(0.2, AbortSignal.timeout(10_000));
  const start = await r.rec.waitFor((e) => e.type === "start-data", { from }) as StartDataEvent;
  assert.equal(start.seriesNumber, 2);
  await during?.();
  await r.sim.control("gate");
  await next;
  const got = dataEvents(r.rec.events.slice(from));
  assert.deepEqual(got.map((e) => e.type), ["start-data", "image-data", "image-data", "end-data"]);
  assert.ok(
    got.every((e) => "seriesId" in e && e.seriesId === start.seriesId),
    "all events are of series 2",
  );
}

/** Exactly one warning, naming series 1 and its two images and end. */
function assertOneReport(r: EigerRig): void {
  const reports = r.rec.warnings.filter((w) => DROPPED.test(w.message));
  assert.equal(reports.length, 1, JSON.stringify(r.rec.warnings));
  assert.equal(reports[0].fields.series, 1);
  assert.equal(reports[0].fields.dropped, "images 0-1 (2), end");
  assert.equal(reports[0].fields.why, "cancelled");
  assert.equal(typeof reports[0].fields.uniqueId, "string");
  assert.deepEqual(errors(r.rec.events), []);
}

for (const zmq of [false, true]) {
  const via = zmq ? "ZMTP" : "loopback";
  Deno.test(`eiger leftovers (${via}): sent before the next series' start`, async () => {
    const r = await rig(zmq);
    try {
      await cancelFirstSeries(r, "before-start");
      await secondSeries(r);
      assertOneReport(r);
    } finally {
      await r.close();
    }
  });
}

Deno.test("eiger leftovers: sent right after the next series' start", async () => {
  const r = await rig();
  try {
    await cancelFirstSeries(r, "after-start");
    await secondSeries(r);
    assertOneReport(r);
  } finally {
    await r.close();
  }
});

Deno.test("eiger leftovers: sent in the middle of the next series", async () => {
  const r = await rig();
  try {
    await cancelFirstSeries(r, "on-request");
    await secondSeries(r, async () => {
      const w = r.rec.warnings.length;
      assert.deepEqual(await r.sim.control("leftovers"), { messages: 3 });
      await r.rec.waitForWarning(DROPPED, { from: w });
    });
    assertOneReport(r);
  } finally {
    await r.close();
  }
});

Deno.test("eiger leftovers: sent while idle", async () => {
  const r = await rig();
  try {
    await cancelFirstSeries(r, "on-request");
    const from = r.rec.events.length;
    assert.deepEqual(await r.sim.control("leftovers"), { messages: 3 });
    await r.rec.waitForWarning(DROPPED);
    assert.deepEqual(r.rec.events.slice(from), [], "no data event, no error");
    await secondSeries(r);
    assertOneReport(r);
  } finally {
    await r.close();
  }
});

Deno.test("eiger leftovers: eiger-sim --leftovers sends them for every cancelled series", async () => {
  const r = await rig(false, { leftovers: { at: "after-start" } });
  try {
    await cancelFirstSeries(r);
    await cancelFirstSeries(r); // series 2; series 1's rest arrives after its start
    const from = r.rec.events.length;
    const next = r.device.acquire(0.2, AbortSignal.timeout(10_000));
    const start = await r.rec.waitFor((e) => e.type === "start-data", { from });
    assert.equal((start as StartDataEvent).seriesNumber, 3);
    await r.sim.control("gate");
    await next;
    const reports = r.rec.warnings.filter((w) => DROPPED.test(w.message));
    assert.deepEqual(reports.map((w) => [w.fields.series, w.fields.dropped]), [
      [1, "images 0-1 (2), end"],
      [2, "images 0-1 (2), end"],
    ]);
    assert.deepEqual(errors(r.rec.events), []);
  } finally {
    await r.close();
  }
});

Deno.test("eiger leftovers: a series armed by someone else is an error, reported once", async () => {
  const r = await rig();
  try {
    // Another client arms and disarms the DCU while this IOC is idle.
    await r.sim.detector.command("detector", "arm", undefined);
    const error = await r.rec.waitFor((e) => e.type === "error") as ErrorEvent;
    assert.match(
      error.message,
      /stream start of unknown series 1 \(\w+\) while no acquisition runs/,
    );
    await r.sim.detector.command("detector", "disarm", undefined);
    // The stream is ordered: once series 2 ended, the foreign end was handled (and dropped).
    await secondSeries(r);
    assert.equal(errors(r.rec.events).length, 1, errors(r.rec.events).join("; "));
  } finally {
    await r.close();
  }
});

Deno.test("eiger leftovers: a message of an unknown series during a series is an error", async () => {
  const r = await rig();
  try {
    const acquiring = r.device.acquire(0.2, AbortSignal.timeout(10_000));
    await r.rec.waitFor((e) => e.type === "start-data");
    r.sim.detector.output!.send({ type: "end", seriesId: 77, uniqueId: "FOREIGN" });
    await assert.rejects(acquiring, /stream end of series 77 \(FOREIGN\) during series 1/);
  } finally {
    await r.close();
  }
});

Deno.test("eiger leftovers: under the controller they change no state, frame or numid", async () => {
  const rig = await startControllerRig("double");
  try {
    await rig.sim.control("fault", { kind: "leftovers", at: "on-request" });
    let mark = rig.states.length;
    await rig.controller.request({ kind: "command", command: "Acquire", duration: 0.05 });
    await rig.until(() => rig.seriesStarts === 1, "series start");
    await rig.controller.request({ kind: "command", command: "Cancel" });
    await rig.reach("READY", mark);
    mark = rig.states.length;
    // The cancelled series' two images and end arrive while the IOC is idle.
    assert.deepEqual(await rig.sim.control("leftovers"), { messages: 3 });
    // The stream is ordered: when series 2 is complete, the leftovers were handled before it.
    const frame = await rig.acquireOk(true);
    assert.equal(frame.seriesNumber, 2);
    assert.equal(rig.frames.length, 1, "no frame of the cancelled series");
    assert.deepEqual(rig.states.slice(mark), ["INTEGRATE", "PROCESS", "READY"]);
    assert.deepEqual(rig.errors, []);
  } finally {
    await rig.close();
  }
});
