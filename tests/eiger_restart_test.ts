/**
 * The DCU restarts (or loses its configuration otherwise) under a running IOC: the real controller
 * with the EIGER backend against the simulator over loopback sockets (SIMPLON HTTP + ZMTP). The
 * simulator is stopped and started again on the same ports with its power-on defaults (stream
 * disabled, series numbers from 1) while the IOC is READY, INTEGRATE or ERROR. The IOC must go to
 * ERROR saying the DCU lost its configuration, initialize it completely on Clear, and acquire
 * again. The same for a DCU found in state `na`, with a changed setting, or failing to arm.
 */

import assert from "node:assert/strict";
import {
  type ControllerRig as Rig,
  startControllerRig as startRig,
} from "./support/eiger_controller_rig.ts";

function lostError(rig: Rig, pattern: RegExp): Promise<void> {
  return rig.until(
    () => rig.errors.some((e) => pattern.test(e)),
    `an error matching ${pattern}`,
  );
}

Deno.test("eiger restart: DCU restarts while the IOC is READY", async () => {
  const rig = await startRig();
  try {
    assert.equal((await rig.acquireOk(false)).seriesNumber, 1);
    const mark = rig.states.length;
    await rig.restartSim();
    await rig.reach("ERROR", mark);
    await lostError(rig, /DCU lost its configuration: image stream connection lost/);
    await rig.clear();
    assert.equal((await rig.acquireOk(false)).seriesNumber, 1, "the new DCU counts from 1");
  } finally {
    await rig.close();
  }
});

Deno.test("eiger restart: DCU restarts in state na while the IOC is READY", async () => {
  const rig = await startRig();
  try {
    const mark = rig.states.length;
    await rig.restartSim({ startState: "na" });
    await rig.reach("ERROR", mark);
    await lostError(rig, /DCU lost its configuration/);
    await rig.clear();
    await rig.acquireOk(false);
  } finally {
    await rig.close();
  }
});

Deno.test("eiger restart: DCU restarts while the IOC is INTEGRATE", async () => {
  const rig = await startRig("single");
  try {
    const mark = rig.states.length;
    await rig.controller.request({ kind: "command", command: "Acquire", duration: 0.05 });
    await rig.until(() => rig.seriesStarts === 1, "series start");
    assert.equal(rig.states.at(-1), "INTEGRATE");
    await rig.restartSim();
    await rig.reach("ERROR", mark);
    await lostError(
      rig,
      /image stream connection lost during series 1 .*clear initializes it again/,
    );
    await rig.clear();
    await rig.acquireOk(true);
  } finally {
    await rig.close();
  }
});

Deno.test("eiger restart: DCU restarts while the IOC is in ERROR", async () => {
  const rig = await startRig();
  try {
    await rig.sim.control("fault", { kind: "missing-image", imageId: 0 });
    let mark = rig.states.length;
    await rig.controller.request({ kind: "command", command: "Acquire", duration: 0.05 });
    await rig.reach("ERROR", mark);
    assert.match(rig.errors.join("; "), /series 1 ended after 0 of 1 images/);
    mark = rig.states.length;
    await rig.restartSim();
    await lostError(rig, /DCU lost its configuration: image stream connection lost/);
    await rig.clear();
    await rig.acquireOk(false);
  } finally {
    await rig.close();
  }
});

Deno.test("eiger restart: a DCU found in state na is initialized again on clear", async () => {
  const rig = await startRig();
  try {
    const mark = rig.states.length;
    await rig.sim.control("fault", { kind: "state", state: "na" });
    await rig.reach("ERROR", mark);
    await lostError(rig, /DCU lost its configuration: detector state na/);
    await rig.clear();
    await rig.acquireOk(false);
  } finally {
    await rig.close();
  }
});

Deno.test("eiger restart: a setting changed behind the IOC's back is noticed", async () => {
  const rig = await startRig();
  try {
    const mark = rig.states.length;
    // Another client turns the stream off (a DCU reboot has the same effect).
    const url = `http://${rig.sim.hostname}:${rig.sim.apiPort}/stream/api/1.8.0/config/mode`;
    const res = await fetch(url, { method: "PUT", body: JSON.stringify({ value: "disabled" }) });
    assert.equal(res.status, 200, await res.text());
    await rig.reach("ERROR", mark);
    await lostError(
      rig,
      /DCU lost its configuration: stream\/config\/mode is "disabled", was "enabled"/,
    );
    await rig.clear();
    await rig.acquireOk(false);
  } finally {
    await rig.close();
  }
});

Deno.test("eiger restart: a failed arm asks for a complete initialize on clear", async () => {
  const rig = await startRig();
  try {
    await rig.sim.control("fault", { kind: "http", key: "detector/command/arm", status: 400 });
    const mark = rig.states.length;
    await rig.controller.request({ kind: "command", command: "Acquire", duration: 0.05 });
    await rig.reach("ERROR", mark);
    await lostError(rig, /arm: HTTP 400 .*the DCU needs initialization \(arm failed/);
    await rig.sim.control("clear");
    await rig.clear();
    await rig.acquireOk(false);
  } finally {
    await rig.close();
  }
});
