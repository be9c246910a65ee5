/**
 * Settings of the EIGER2 backend, parsed from `EIGER_*` environment variables.
 *
 * Every value is checked here, so a bad setting stops the IOC at start with a message naming the
 * variable instead of failing later at the detector.
 *
 * @module
 */

import { type Env, envNumber, envText } from "../../core/env.ts";

/** High-level operation modes: internal trigger, or external gating with one or two images. */
export type EigerMode = "snapshot" | "single" | "double";

/** Parsed, validated backend settings. */
export interface EigerSettings {
  /** DCU host name or address (`EIGER_DEVICE_HOST`, required). */
  host: string;
  /** SIMPLON HTTP port (`EIGER_API_PORT`, default 80). */
  apiPort: number;
  /** Stream v2 ZeroMQ PUSH port (`EIGER_STREAM_PORT`, default 31001). */
  streamPort: number;
  /** Operation mode (`EIGER_DEVICE_MODE`, default `snapshot`). */
  mode: EigerMode;
  /** Gate frequency in Hz used to turn a duration into `nexpi` (`EIGER_GATING_FREQUENCY`). */
  gatingFrequency: number;
  /** Threshold 1 energy in eV; undefined leaves the detector's value untouched. */
  threshold1Energy?: number;
  /** Threshold 2 energy in eV; when set, threshold 2 is also enabled. */
  threshold2Energy?: number;
  /** Seconds to wait for images beyond the duration; 0 disables the check. */
  imageOverdue: number;
  /** SIMPLON API version to use; undefined means: ask the DCU (`EIGER_API_VERSION`). */
  apiVersion?: string;
  /** Timeout of ordinary REST requests in seconds (`EIGER_REQUEST_TIMEOUT`, default 20). */
  requestTimeout: number;
  /** Period of the runtime status poll in seconds (`EIGER_POLL_INTERVAL`, default 1). */
  pollInterval: number;
  /** Images per snapshot series (`EIGER_NUM_IMAGES`, default 1; `snapshot` mode only). */
  numImages: number;
  /** Stream decode workers (`EIGER_DECODE_WORKERS`, default one per core; 0 = event loop). */
  decodeWorkers?: number;
  /** Frames that may wait for decoding before the series fails (`EIGER_DECODE_BACKLOG`). */
  decodeBacklog?: number;
  /**
   * Decode images straight into the controller's series stacks (`EIGER_DECODE_IN_PLACE`, 1 or
   * 0, default 1); 0 decodes into buffers of their own that the controller copies (as before).
   */
  decodeInPlace: boolean;
}

/** Default gate frequency (Hz) of the original diss-ioc. */
export const DEFAULT_GATING_FREQUENCY = 104500;

const MODES: readonly EigerMode[] = ["snapshot", "single", "double"];

function port(env: Env, name: string, fallback: number) {
  return envNumber(
    env,
    name,
    (n) => Number.isInteger(n) && n >= 1 && n <= 65535,
    "a TCP port 1..65535",
  ) ?? fallback;
}

/** `{ [key]: value }` when the value is set, else `{}` (unset settings stay absent). */
function optional<K extends string>(key: K, value: number | undefined): { [k in K]?: number } {
  return value === undefined ? {} : { [key]: value } as { [k in K]?: number };
}

/**
 * Reads and validates the EIGER settings from an environment map.
 * Throws an Error naming the offending variable when a value is missing or invalid.
 */
export function parseEigerSettings(
  env: Env,
): EigerSettings {
  const host = envText(env, "EIGER_DEVICE_HOST");
  if (host === undefined) {
    throw new Error("EIGER_DEVICE_HOST is not set: give the host name or address of the DCU");
  }
  if (/[\s/]/.test(host)) {
    throw new Error(`EIGER_DEVICE_HOST=${JSON.stringify(host)} is invalid: expected a host name`);
  }
  const modeText = (envText(env, "EIGER_DEVICE_MODE") ?? "snapshot").toLowerCase();
  if (!(MODES as readonly string[]).includes(modeText)) {
    throw new Error(
      `EIGER_DEVICE_MODE=${JSON.stringify(modeText)} is invalid: expected one of ${
        MODES.join(", ")
      }`,
    );
  }
  const mode = modeText as EigerMode;
  const positive = (n: number) => n > 0;
  const energy = "an energy in eV > 0";
  const overdue = envNumber(env, "EIGER_IMAGE_OVERDUE", (n) => n >= 0, "seconds >= 0 (0 disables)");
  const apiVersion = envText(env, "EIGER_API_VERSION");
  if (apiVersion !== undefined && !/^\d+\.\d+\.\d+$/.test(apiVersion)) {
    throw new Error(
      `EIGER_API_VERSION=${JSON.stringify(apiVersion)} is invalid: expected e.g. 1.8.0`,
    );
  }
  const numImages = envNumber(
    env,
    "EIGER_NUM_IMAGES",
    (n) => Number.isInteger(n) && n >= 1 && n <= 1_000_000,
    "an integer 1..1000000",
  ) ?? 1;
  if (numImages !== 1 && mode !== "snapshot") {
    throw new Error(
      `EIGER_NUM_IMAGES=${numImages} needs EIGER_DEVICE_MODE=snapshot (gated modes take 1 or 2)`,
    );
  }
  return {
    host,
    numImages,
    apiPort: port(env, "EIGER_API_PORT", 80),
    streamPort: port(env, "EIGER_STREAM_PORT", 31001),
    mode,
    gatingFrequency: envNumber(env, "EIGER_GATING_FREQUENCY", positive, "a frequency in Hz > 0") ??
      DEFAULT_GATING_FREQUENCY,
    threshold1Energy: envNumber(env, "EIGER_X2_THRESHOLD1_ENERGY", positive, energy),
    threshold2Energy: envNumber(env, "EIGER_X2_THRESHOLD2_ENERGY", positive, energy),
    imageOverdue: overdue ?? (mode === "snapshot" ? 5 : 300),
    apiVersion,
    requestTimeout: envNumber(env, "EIGER_REQUEST_TIMEOUT", positive, "seconds > 0") ?? 20,
    pollInterval: envNumber(env, "EIGER_POLL_INTERVAL", positive, "seconds > 0") ?? 1,
    ...optional(
      "decodeWorkers",
      envNumber(
        env,
        "EIGER_DECODE_WORKERS",
        (n) => Number.isInteger(n) && n >= 0 && n <= 64,
        "an integer 0..64 (0 decodes on the event loop)",
      ),
    ),
    decodeInPlace: (envNumber(env, "EIGER_DECODE_IN_PLACE", (n) => n === 0 || n === 1, "1 or 0") ??
      1) === 1,
    ...optional(
      "decodeBacklog",
      envNumber(
        env,
        "EIGER_DECODE_BACKLOG",
        (n) => Number.isInteger(n) && n >= 1,
        "a number of frames >= 1",
      ),
    ),
  };
}

/**
 * Number of gates per image (`nexpi`) for a wanted duration: in `double` mode the duration covers
 * both counters, so each gets half of the gates. Throws when the result would be below 1.
 */
export function gatesPerImage(duration: number, frequency: number, mode: EigerMode): number {
  const nexpi = Math.floor(duration * frequency / (mode === "double" ? 2 : 1));
  if (!Number.isFinite(nexpi) || nexpi < 1) {
    throw new Error(
      `duration ${duration} s is too short for gating at ${frequency} Hz (nexpi would be ${nexpi})`,
    );
  }
  return nexpi;
}
