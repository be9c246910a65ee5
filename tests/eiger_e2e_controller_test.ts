/**
 * The real controller driving the EIGER backend against the simulator over loopback sockets
 * (SIMPLON HTTP + ZMTP stream): INIT → READY, an acquisition delivers a frame, an injected HTTP
 * fault ends in ERROR naming key and status, Clear returns to READY, ChannelAdjust reads back.
 */

import assert from "node:assert/strict";
import { type ControllerState, createController, type Frame } from "../lib/controller.ts";
import { EigerDevice } from "../devices/eiger/backend.ts";
import { startTestSim } from "./support/eiger.ts";

Deno.test("eiger e2e: controller + EIGER backend + simulator", async () => {
  const sim = await startTestSim({ width: 128, height: 64 });
  const controller = createController({
    device: (ctx) => new EigerDevice(ctx, { statePollMs: 20 }),
    env: sim.env({ EIGER_X2_THRESHOLD1_ENERGY: "6000", EIGER_X2_THRESHOLD2_ENERGY: "9000" }),
    runtimeInterval: 100,
  });
  const states: ControllerState[] = [];
  const frames: Frame[] = [];
  let wake: (() => void) | undefined;
  controller.subscribe({
    state: ({ state }) => {
      states.push(state);
      wake?.();
    },
    data: (frame) => {
      frames.push(frame);
    },
  });
  const reach = async (state: ControllerState, from = 0) => {
    const deadline = Date.now() + 15_000;
    while (!states.slice(from).includes(state)) {
      if (Date.now() > deadline) throw new Error(`no ${state}; states ${states.join(",")}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, 200); // re-check bound; progress comes from state hooks
      });
      clearTimeout(timer);
    }
  };
  try {
    await controller.start();
    await reach("READY");
    assert.deepEqual(controller.config!.channels.map((c) => c.name), [
      "threshold_1",
      "threshold_2",
    ]);

    let mark = states.length;
    await controller.request({ kind: "command", command: "Acquire", duration: 0.05 });
    await reach("PROCESS", mark);
    await reach("READY", mark);
    assert.equal(frames.length, 1);
    assert.equal(frames[0].seriesNumber, 1);
    assert.equal(frames[0].images.threshold_1.length, 128 * 64);
    assert.ok(Math.abs(frames[0].exposures[0] - 0.05) < 1e-6);

    await sim.control("fault", { kind: "http", key: "detector/command/arm", status: 500 });
    mark = states.length;
    await controller.request({ kind: "command", command: "Acquire", duration: 0.05 });
    await reach("ERROR", mark);
    assert.match(controller.errors.join("; "), /detector\/command\/arm: HTTP 500/);
    await sim.control("clear");
    mark = states.length;
    await controller.request({ kind: "command", command: "Clear" });
    await reach("READY", mark);

    await controller.request({
      kind: "command",
      command: "ChannelAdjust",
      channel: "threshold_1",
      values: { threshold_energy: 6500 },
    });
    assert.equal(controller.channelMeta.threshold_1.threshold_energy, 6500);
  } finally {
    await controller.stop();
    await sim.close();
  }
});
