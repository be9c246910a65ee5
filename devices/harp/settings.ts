/**
 * Settings of the Harp backend, parsed from `HARP_*` environment variables and checked against
 * the family's documented limits, so a bad value stops the IOC at start naming the variable.
 *
 * @module
 */

import { type HarpLimits, REF_SOURCES } from "./api.ts";

/** Parsed, validated settings. */
export interface HarpSettings {
  /** Library file (`HARP_LIBRARY`); undefined: the vendor's default install locations. */
  library?: string;
  /** Device index to open (`HARP_DEVICE_INDEX`); undefined: search (by serial, or the first). */
  deviceIndex?: number;
  /** Serial number the device must have (`HARP_SERIAL`). */
  serial?: string;
  /** Binning code: bin width = base resolution × 2^binning (`HARP_BINNING`, default 0). */
  binning: number;
  /** Histogram offset in ns (`HARP_OFFSET`, default 0). */
  offset: number;
  /** Sync divider, a power of two (`HARP_SYNC_DIVIDER`, default 1). */
  syncDivider: number;
  /** Sync CFD level and zero cross in mV (`HARP_SYNC_CFD_LEVEL` 50, `..._ZERO_CROSS` 10). */
  syncCfdLevel: number;
  syncCfdZeroCross: number;
  /** Sync channel offset in ps (`HARP_SYNC_OFFSET`, default 0). */
  syncOffset: number;
  /** Per-input CFD level in mV (`HARP_INPUT_CFD_LEVEL`: one value for all or a list; 50). */
  inputCfdLevel: number[];
  /** Per-input CFD zero cross in mV (`HARP_INPUT_CFD_ZERO_CROSS`, default 10). */
  inputCfdZeroCross: number[];
  /** Per-input channel offset in ps (`HARP_INPUT_OFFSET`, default 0). */
  inputOffset: number[];
  /** Histogram length in bins (`HARP_HISTO_LEN`, default the maximum). */
  histoLen: number;
  /** Reference clock (`HARP_REF_SOURCE`: `internal` (default) or `external`). */
  refSource: keyof typeof REF_SOURCES;
  /** Seconds between runtime reads (rates, warnings) (`HARP_POLL_INTERVAL`, default 1). */
  pollInterval: number;
  /** Milliseconds between `CTCStatus` polls during a measurement (`HARP_CTC_POLL_MS`, 20). */
  ctcPollMs: number;
  /** Seconds past the duration before an unfinished measurement is an error (`HARP_OVERDUE`). */
  overdue: number;
}

type Env = Readonly<Record<string, string | undefined>>;

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

function integer(value: string, name: string, [min, max]: [number, number]): number {
  const n = Number(value);
  if (!/^[+-]?\d+$/.test(value) || n < min || n > max) {
    throw new Error(
      `${name}=${JSON.stringify(value)} is invalid: expected an integer ${min}..${max}`,
    );
  }
  return n;
}

function intSetting(env: Env, name: string, range: [number, number], fallback: number): number {
  const raw = text(env, name);
  return raw === undefined ? fallback : integer(raw, name, range);
}

function numberSetting(env: Env, name: string, min: number, fallback: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    throw new Error(`${name}=${JSON.stringify(raw)} is invalid: expected a number >= ${min}`);
  }
  return n;
}

/** One value for every input, or a comma-separated list (one per input, checked later). */
function perInput(env: Env, name: string, range: [number, number], fallback: number): number[] {
  const raw = text(env, name);
  if (raw === undefined) return [fallback];
  return raw.split(",").map((part) => integer(part.trim(), name, range));
}

const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;

/**
 * Reads and validates the settings from an environment map against `limits`.
 * Throws an Error naming the offending variable when a value is invalid.
 */
export function parseHarpSettings(env: Env, limits: HarpLimits): HarpSettings {
  const indexText = text(env, "HARP_DEVICE_INDEX");
  const deviceIndex = indexText === undefined
    ? undefined
    : integer(indexText, "HARP_DEVICE_INDEX", [0, limits.maxDevices - 1]);
  const serial = text(env, "HARP_SERIAL");
  if (serial !== undefined && !/^[\x21-\x7e]{1,7}$/.test(serial)) {
    throw new Error(`HARP_SERIAL=${JSON.stringify(serial)} is invalid: expected the serial number`);
  }
  const syncDivider = intSetting(env, "HARP_SYNC_DIVIDER", [1, limits.syncDivMax], 1);
  if (!isPowerOfTwo(syncDivider)) {
    throw new Error(`HARP_SYNC_DIVIDER=${syncDivider} is invalid: expected 1, 2, 4, ...`);
  }
  const histoLen = intSetting(
    env,
    "HARP_HISTO_LEN",
    [limits.minHistLen, limits.maxHistLen],
    limits.maxHistLen,
  );
  if (!isPowerOfTwo(histoLen)) {
    throw new Error(
      `HARP_HISTO_LEN=${histoLen} is invalid: expected a power of two ${limits.minHistLen}..${limits.maxHistLen}`,
    );
  }
  const ref = (text(env, "HARP_REF_SOURCE") ?? "internal").toLowerCase();
  if (!(ref in REF_SOURCES)) {
    throw new Error(
      `HARP_REF_SOURCE=${JSON.stringify(ref)} is invalid: expected internal or external`,
    );
  }
  return {
    library: text(env, "HARP_LIBRARY"),
    deviceIndex,
    serial,
    binning: intSetting(env, "HARP_BINNING", [0, limits.binStepsMax - 1], 0),
    offset: intSetting(env, "HARP_OFFSET", limits.offset, 0),
    syncDivider,
    syncCfdLevel: intSetting(env, "HARP_SYNC_CFD_LEVEL", limits.cfdLevel, 50),
    syncCfdZeroCross: intSetting(env, "HARP_SYNC_CFD_ZERO_CROSS", limits.zeroCross, 10),
    syncOffset: intSetting(env, "HARP_SYNC_OFFSET", limits.channelOffset, 0),
    inputCfdLevel: perInput(env, "HARP_INPUT_CFD_LEVEL", limits.cfdLevel, 50),
    inputCfdZeroCross: perInput(env, "HARP_INPUT_CFD_ZERO_CROSS", limits.zeroCross, 10),
    inputOffset: perInput(env, "HARP_INPUT_OFFSET", limits.channelOffset, 0),
    histoLen,
    refSource: ref as keyof typeof REF_SOURCES,
    pollInterval: numberSetting(env, "HARP_POLL_INTERVAL", 0.05, 1),
    ctcPollMs: numberSetting(env, "HARP_CTC_POLL_MS", 1, 20),
    overdue: numberSetting(env, "HARP_OVERDUE", 0, 5),
  };
}

/** The value of a per-input list for input `index` (a single value applies to all inputs). */
export function inputValue(list: readonly number[], index: number, name: string): number {
  if (list.length === 1) return list[0];
  const value = list[index];
  if (value === undefined) {
    throw new Error(`${name} lists ${list.length} values but the device has more inputs`);
  }
  return value;
}

/** Length code of `SetHistoLen` for a histogram of `bins` bins. */
export function lengthCode(bins: number, limits: HarpLimits): number {
  return Math.round(Math.log2(bins / limits.minHistLen));
}
