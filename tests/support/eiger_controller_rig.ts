/**
 * The real controller with the EIGER backend against an in-process simulator over loopback
 * sockets (SIMPLON HTTP + ZMTP), with the controller's states, frames and errors recorded and a
 * simulator that can be restarted on the same ports.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type Controller,
  type ControllerState,
  createController,
  type Frame,
} from "../../lib/controller.ts";
import { EigerDevice } from "../../devices/eiger/backend.ts";
import type { EigerSimOptions } from "../../devices/eiger_sim/main.ts";
import { startTestSim, type TestSim } from "./eiger.ts";

/** Simulator options of the rig. */
export const SIM: EigerSimOptions = { width: 64, height: 32, gateFrequency: 1000 };
const LIMIT_MS = 20_000; // failure detector only

/** A controller + EIGER backend + simulator that can be restarted on the same ports. */
export class ControllerRig {
  sim: TestSim;
  controller: Controller;
  states: ControllerState[] = [];
  frames: Frame[] = [];
  errors: readonly string[] = [];
  seriesStarts = 0;
  #waiters: (() => void)[] = [];

  constructor(sim: TestSim, mode: string) {
    this.sim = sim;
    this.controller = createController({
      device: (ctx) => new EigerDevice(ctx, { statePollMs: 20 }),
      env: sim.env({ EIGER_DEVICE_MODE: mode, EIGER_GATING_FREQUENCY: "1000" }),
      runtimeInterval: 100,
    });
    const wake = () => {
      const w = this.#waiters;
      this.#waiters = [];
      w.forEach((f) => f());
    };
    this.controller.subscribe({
      state: ({ state }) => {
        this.states.push(state);
        wake();
      },
      data: (frame) => {
        this.frames.push(frame);
        wake();
      },
      errors: (errors) => {
        this.errors = errors;
        wake();
      },
      seriesStart: () => {
        this.seriesStarts++;
        wake();
      },
    });
  }

  /** Resolves once `done()` holds; progress comes from the controller's hooks. */
  until(done: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`${what}: not reached; states ${this.states.join(",")}; ${this.errors}`),
          ),
        LIMIT_MS,
      );
      const check = () => {
        if (!done()) return void this.#waiters.push(check);
        clearTimeout(timer);
        resolve();
      };
      check();
    });
  }

  reach(state: ControllerState, from: number): Promise<void> {
    return this.until(() => this.states.slice(from).includes(state), `state ${state}`);
  }

  /** Stops the simulator and starts a fresh one (power-on defaults) on the same ports. */
  async restartSim(options: EigerSimOptions = {}): Promise<void> {
    const { apiPort, streamPort } = this.sim;
    await this.sim.close();
    this.sim = await startTestSim({ ...SIM, ...options, apiPort, streamPort });
  }

  /** Acquires one series (gating it in extg modes) and checks it arrived; returns the frame. */
  async acquireOk(gated: boolean): Promise<Frame> {
    const mark = this.states.length;
    const frames = this.frames.length;
    const starts = this.seriesStarts;
    await this.controller.request({ kind: "command", command: "Acquire", duration: 0.05 });
    if (gated) {
      await this.until(() => this.seriesStarts > starts, "series start");
      await this.sim.control("gate");
    }
    await this.until(() => this.frames.length > frames, "frame");
    await this.reach("READY", mark);
    assert.ok(!this.states.slice(mark).includes("ERROR"), this.errors.join("; "));
    return this.frames.at(-1)!;
  }

  /** Clear: must pass through a new initialize (WARMUP) to READY. */
  async clear(): Promise<void> {
    const mark = this.states.length;
    await this.controller.request({ kind: "command", command: "Clear" });
    await this.reach("READY", mark);
    assert.deepEqual(this.states.slice(mark), ["WARMUP", "READY"], "clear initializes again");
  }

  async close(): Promise<void> {
    await this.controller.stop();
    await this.sim.close();
  }
}

/** Starts a rig in EIGER_DEVICE_MODE `mode` and waits for READY. */
export async function startControllerRig(mode = "snapshot"): Promise<ControllerRig> {
  const rig = new ControllerRig(await startTestSim(SIM), mode);
  await rig.controller.start();
  await rig.reach("READY", 0);
  return rig;
}
