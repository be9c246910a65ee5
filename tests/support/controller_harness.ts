/**
 * Runs a controller around a {@link FakeDevice} on a {@link ManualClock}, recording states,
 * frames and errors.
 *
 * @module
 */

import { ManualClock } from "../../core/clock.ts";
import {
  type Controller,
  type ControllerOptions,
  type ControllerState,
  createController,
  type Frame,
} from "../../lib/controller.ts";
import type { CommandRequest } from "../../devices/contract.ts";
import { FakeDevice, type FakeScript } from "./fake_device.ts";

/** A running controller under test. */
export interface Harness {
  clock: ManualClock;
  dev: FakeDevice;
  controller: Controller;
  states: ControllerState[];
  frames: Frame[];
  /** Moves the manual clock (and lets the controller react). */
  advance(ms?: number): Promise<void>;
  /** Stops the controller. */
  close(): Promise<void>;
}

/** Acquire request. */
export function acquire(duration = 1): CommandRequest {
  return { kind: "command", command: "Acquire", duration };
}

/** Cancel / Clear requests. */
export const CANCEL: CommandRequest = { kind: "command", command: "Cancel" };
/** Clear request. */
export const CLEAR: CommandRequest = { kind: "command", command: "Clear" };

/** Starts a controller with a fake device following `script`. */
export async function startHarness(
  script: FakeScript = {},
  options: Partial<ControllerOptions> = {},
): Promise<Harness> {
  const clock = options.clock instanceof ManualClock ? options.clock : new ManualClock();
  let dev: FakeDevice | undefined;
  const states: ControllerState[] = [];
  const frames: Frame[] = [];
  const controller = createController({
    device: (ctx) => (dev = new FakeDevice(ctx, script)),
    runtimeInterval: 0,
    env: {},
    ...options,
    clock,
  });
  controller.subscribe({
    state: ({ state }) => states.push(state),
    data: (frame) => {
      frames.push(frame);
    },
  });
  await controller.start();
  await clock.advance(0);
  return {
    clock,
    dev: dev!,
    controller,
    states,
    frames,
    advance: (ms = 0) => clock.advance(ms),
    close: () => controller.stop(),
  };
}
