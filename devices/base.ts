/**
 * What a device backend implements.
 *
 * A backend is a class constructed with a {@link DeviceContext}. Queries are synchronous methods
 * that answer at once from what the backend already knows. Commands are async methods that the
 * controller starts as tasks running concurrently with its loop; they report progress, data and
 * errors by emitting events through `ctx.emit`. A command that throws (or rejects) is reported by
 * the controller as an error event carrying the thrown message.
 *
 * @module
 */

import type { DeviceConfig, DeviceEvent, MetaValue, RuntimeStateEvent } from "../lib/events.ts";
import type { Logger } from "../lib/log.ts";

/** Everything a backend gets from the program that runs it. */
export interface DeviceContext {
  /** Sends an event to the controller's queue. Never blocks. */
  emit(event: DeviceEvent): void;
  /** Logger for this backend (`key=value` structured lines). */
  log: Logger;
  /** Environment variables (the process environment, or a test's own map). */
  env: Readonly<Record<string, string | undefined>>;
  /** Aborted when the program shuts down. */
  signal: AbortSignal;
  /** Current time in milliseconds since the Unix epoch (injectable for tests). */
  now(): number;
}

/** The interface every backend implements. */
export interface Device {
  /** Called once before anything else, for async setup (connections, ...). */
  startup?(): Promise<void>;
  /** Called once at the end, for cleanup. Must not throw. */
  teardown?(): Promise<void>;

  /** Query IsInitialized: is the device ready to acquire? */
  isInitialized(): boolean;
  /** Query GetConfig: the configuration, or undefined while unknown (before initialization). */
  getConfig(): DeviceConfig | undefined;
  /** Query GetRuntime: current runtime values (temperature, detector state, ...). */
  getRuntime?(): RuntimeStateEvent["values"];

  /**
   * Seconds this backend itself waits beyond the duration before it reports missing images
   * (0 = it never gives up). The controller then allows this plus a margin, so the backend's more
   * specific error comes first, unless the operator set an explicit overdue.
   */
  overdueSeconds?(): number;

  /** Command Initialize: bring the device into a state where it can acquire. */
  initialize(signal: AbortSignal): Promise<void>;
  /**
   * Command Acquire: run one series of `duration` seconds. Emits StartData, then exactly
   * `numImages` ImageData, then EndData (or CancelData after {@link Device.cancel}).
   */
  acquire(duration: number, signal: AbortSignal): Promise<void>;
  /** Command Cancel: stop the running acquisition; the acquire task then emits CancelData. */
  cancel(): Promise<void>;
  /** Command Clear: forget device-side errors. Called when the operator clears ERROR. */
  clear?(): Promise<void>;
  /** Command ChannelAdjust: write channel metadata; report read-back with a ChannelStateEvent. */
  adjustChannel?(channel: string, values: Record<string, MetaValue>): Promise<void>;
}

/** A backend class: `new Backend(ctx)`. */
export type DeviceClass = new (ctx: DeviceContext) => Device;

/** Checks at run time that `value` is an object with the methods of {@link Device}. */
export function isDevice(value: unknown): value is Device {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return ["isInitialized", "getConfig", "initialize", "acquire", "cancel"].every((m) =>
    typeof v[m] === "function"
  );
}
