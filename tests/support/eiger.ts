/**
 * Test helpers for the EIGER backend and simulator: an in-process simulator on port 0, a
 * DeviceContext that records emitted events, and a client for the simulator's control endpoint.
 *
 * @module
 */

import type { DeviceContext, DeviceEvent } from "../../devices/contract.ts";
import { getLog } from "../../core/log.ts";
import { encodeStreamMessage } from "../../devices/eiger/stream2.ts";
import { EigerDevice } from "../../devices/eiger/backend.ts";
import {
  type EigerSim,
  type EigerSimOptions,
  startEigerSim,
} from "../../devices/eiger_sim/main.ts";
import { createLoopbackStream, type LoopbackStream } from "../../devices/eiger_sim/loopback.ts";
import { SimDetector, type SimMessage } from "../../devices/eiger_sim/detector.ts";

/** A simulator started for a test, with helpers. */
export interface TestSim extends EigerSim {
  /** Loopback stream link (when started with `loopback: true`). */
  loopback?: LoopbackStream;
  /** Calls `PUT /sim/control/<action>` (or GET for `status`) and returns the JSON reply. */
  control(action: string, body?: unknown): Promise<unknown>;
  /** Environment for an EigerDevice talking to this simulator. */
  env(extra?: Record<string, string>): Record<string, string>;
}

/**
 * Starts a simulator on loopback with OS-assigned ports. With `loopback: true` the stream goes
 * through an in-process link instead of ZeroMQ (pass `sim.loopback.open` to the backend).
 */
export async function startTestSim(
  options: EigerSimOptions & { loopback?: boolean } = {},
): Promise<TestSim> {
  const loopback = options.loopback ? createLoopbackStream() : undefined;
  const sim = await startEigerSim({
    width: 64,
    height: 32,
    ...options,
    output: loopback?.output ?? options.output,
  });
  const base = `http://${sim.hostname}:${sim.apiPort}/sim/control/`;
  return {
    ...sim,
    loopback,
    async control(action: string, body?: unknown) {
      const res = await fetch(base + action, {
        method: action === "status" ? "GET" : "PUT",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`sim control ${action}: HTTP ${res.status} ${text}`);
      return JSON.parse(text);
    },
    env(extra: Record<string, string> = {}) {
      return {
        EIGER_DEVICE_HOST: sim.hostname,
        EIGER_API_PORT: String(sim.apiPort),
        EIGER_STREAM_PORT: String(sim.streamPort || 31001),
        EIGER_POLL_INTERVAL: "0.2",
        // Decode on the event loop here: `deno test` type-checks every worker it starts (seconds
        // on a loaded box). The worker path has its own tests (eiger_decode_pool_test.ts).
        EIGER_DECODE_WORKERS: "0",
        EIGER_REQUEST_TIMEOUT: "5",
        ...extra,
      };
    },
  };
}

/** A DeviceContext that records events, with a way to wait for them. */
export interface RecordingContext {
  ctx: DeviceContext;
  events: DeviceEvent[];
  /** Warning lines the backend logged: message and fields. */
  warnings: { message: string; fields: Record<string, unknown> }[];
  /** Aborts `ctx.signal`. */
  abort(): void;
  /** Resolves with the first warning (at index >= `from`) whose message matches. */
  waitForWarning(
    match: RegExp,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<{ message: string; fields: Record<string, unknown> }>;
  /**
   * Resolves with the first event at index >= `from` that matches; rejects after `timeoutMs`
   * (a safety bound, not a synchronisation device).
   */
  waitFor(
    match: (event: DeviceEvent) => boolean,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<DeviceEvent>;
}

/** Creates a recording context with the given environment. */
export function recordingContext(env: Record<string, string>): RecordingContext {
  const events: DeviceEvent[] = [];
  const warnings: RecordingContext["warnings"] = [];
  const controller = new AbortController();
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    w.forEach((f) => f());
  };
  const base = getLog("test.eiger");
  // The real logger (lines still go to the log), with warnings also recorded for assertions.
  const log = new Proxy(base, {
    get(target, prop) {
      if (prop === "warn" || prop === "warning") {
        return (message: string, fields: Record<string, unknown> = {}) => {
          warnings.push({ message, fields });
          target.warn(message, fields);
          wake();
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const ctx: DeviceContext = {
    emit(event) {
      events.push(event);
      wake();
    },
    log,
    env,
    signal: controller.signal,
  };
  const waitUntil = <T>(find: () => T | undefined, what: () => string, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found === undefined) return void waiters.push(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters = waiters.filter((w) => w !== check);
        reject(new Error(what()));
      }, timeoutMs);
      check();
    });
  return {
    ctx,
    events,
    warnings,
    abort: () => controller.abort(),
    waitForWarning(match, options = {}) {
      return waitUntil(
        () => warnings.slice(options.from ?? 0).find((w) => match.test(w.message)),
        () => `no warning ${match}; got ${warnings.map((w) => w.message).join(" | ")}`,
        options.timeoutMs ?? 10_000,
      );
    },
    waitFor(match, options = {}) {
      const from = options.from ?? 0;
      const deadline = Date.now() + (options.timeoutMs ?? 10_000);
      return new Promise((resolve, reject) => {
        let timer: ReturnType<typeof setTimeout> | undefined = undefined;
        const check = () => {
          const found = events.slice(from).find(match);
          if (found !== undefined) {
            clearTimeout(timer);
            resolve(found);
            return;
          }
          if (Date.now() >= deadline) {
            clearTimeout(timer);
            reject(new Error(`event not seen; got ${events.map((e) => e.type).join(",")}`));
            return;
          }
          waiters.push(check);
        };
        timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== check);
          reject(new Error(`event not seen; got ${events.map((e) => e.type).join(",")}`));
        }, Math.max(0, deadline - Date.now()));
        check();
      });
    },
  };
}

/** A simulator, an EigerDevice talking to it, and the events the device emitted. */
export interface EigerRig {
  sim: TestSim;
  device: EigerDevice;
  rec: RecordingContext;
  /** Tears the device down and stops the simulator. */
  close(): Promise<void>;
}

/** Options of {@link startEigerRig}. */
export interface EigerRigOptions {
  /** Simulator options; `loopback: true` streams in-process instead of over ZMTP. */
  sim?: Parameters<typeof startTestSim>[0];
  /** Extra `EIGER_*` settings of the device. */
  env?: Record<string, string>;
  /** Run `initialize` before returning (default false). */
  initialize?: boolean;
}

/** Starts a simulator and an EigerDevice (`startup`, optionally `initialize`) against it. */
export async function startEigerRig(options: EigerRigOptions = {}): Promise<EigerRig> {
  const sim = await startTestSim(options.sim);
  const rec = recordingContext(sim.env(options.env));
  const device = new EigerDevice(rec.ctx, {
    openStream: sim.loopback?.open,
    statePollMs: 20,
  });
  const close = async () => {
    await device.teardown();
    rec.abort();
    await sim.close();
  };
  try {
    await device.startup();
    if (options.initialize) await device.initialize(AbortSignal.timeout(10_000));
  } catch (err) {
    await close();
    throw err;
  }
  return { sim, device, rec, close };
}

/**
 * What the controller does on `clear`: the backend's clear, then a complete initialize when the
 * backend reports itself uninitialized (the DCU lost its configuration).
 */
export async function clearLikeController(device: EigerDevice): Promise<void> {
  await device.clear();
  if (!device.isInitialized()) await device.initialize(AbortSignal.timeout(10_000));
}

/** The data events (`*-data`) among `events`. */
export function dataEvents(events: DeviceEvent[]): DeviceEvent[] {
  return events.filter((e) => e.type.endsWith("-data"));
}

/** What {@link recordSimSeries} returns. */
export interface RecordedSimSeries {
  /** The stream messages of the series in order: start, images, end. */
  messages: SimMessage[];
  /** Messages sent by the arm (before the trigger). */
  armedAt: number;
}

/**
 * Runs one internally triggered series of `images` images on an in-process simulated DCU (no
 * sockets) and records its stream messages.
 */
export async function recordSimSeries(
  options: { width: number; height: number; bitDepth: number; images: number },
): Promise<RecordedSimSeries> {
  const messages: SimMessage[] = [];
  const det = new SimDetector({
    width: options.width,
    height: options.height,
    bitDepth: options.bitDepth,
  });
  det.output = { send: (m) => messages.push(m), drop: () => {} };
  det.write("stream", "mode", "enabled");
  det.write("stream", "format", "cbor");
  det.write("detector", "count_time", 0.0005);
  det.write("detector", "nimages", options.images);
  await det.command("detector", "arm", undefined);
  const armedAt = messages.length;
  await det.command("detector", "trigger", undefined);
  return { messages, armedAt };
}

/**
 * One stream v2 `image` message of series 3 (`U3`) with channel `threshold_1` of `rows`×`cols`
 * pixels (`bslz4` unless `compression` says otherwise), encoded as the DCU sends it.
 */
export function streamImageFrame(
  imageId: number,
  pixels: Uint16Array | Uint32Array,
  rows: number,
  cols: number,
  compression?: "bslz4" | "lz4" | "none",
): Uint8Array {
  return encodeStreamMessage({
    type: "image",
    seriesId: 3,
    seriesUniqueId: "U3",
    imageId,
    realTime: [1, 1000],
    seriesDate: "2024-05-01T12:00:00Z",
    startTime: [imageId, 1000],
    stopTime: [imageId + 1, 1000],
    data: new Map([["threshold_1", { dims: [rows, cols], data: pixels, compression }]]),
  });
}
