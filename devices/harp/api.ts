/**
 * The PicoQuant "Harp" library family as data: which C functions the backend binds, with their
 * C parameter types, and the constants of the HydraHarp library (HHLib 3.x, `hhdefin.h` and
 * `errorcodes.h`). The MultiHarp (`MH_*`) and PicoHarp (`PH_*`) libraries follow the same pattern
 * (same call names with another prefix, a few different signatures and limits): each is one more
 * {@link HarpFamily} value; see the notes at {@link HYDRAHARP}.
 *
 * Facts are from PicoQuant's public HHLib 3.0 headers and demo programs.
 *
 * @module
 */

/** C types used in the Harp signatures (every pointer becomes an FFI `buffer`). */
export type CType =
  | "int"
  | "unsigned int"
  | "char*"
  | "int*"
  | "unsigned int*"
  | "double*";

/** One bound library function: C parameter types, and whether it may take long. */
export interface HarpFunction {
  /** C parameter types in order; the result is always `int` (0 or positive = success). */
  params: readonly CType[];
  /**
   * Calls that talk to the hardware for a long time (device open, FPGA initialization,
   * calibration, histogram transfer) run on a worker thread (`nonblocking`), so the event loop
   * (and the CA server) keep running meanwhile.
   */
  slow?: boolean;
}

/** Names of the functions the backend binds, without the family prefix. */
export type HarpCall =
  | "GetLibraryVersion"
  | "GetErrorString"
  | "OpenDevice"
  | "CloseDevice"
  | "Initialize"
  | "GetHardwareInfo"
  | "GetSerialNumber"
  | "GetBaseResolution"
  | "GetNumOfInputChannels"
  | "Calibrate"
  | "SetSyncDiv"
  | "SetSyncCFD"
  | "SetSyncChannelOffset"
  | "SetInputCFD"
  | "SetInputChannelOffset"
  | "SetHistoLen"
  | "SetBinning"
  | "SetOffset"
  | "ClearHistMem"
  | "StartMeas"
  | "StopMeas"
  | "CTCStatus"
  | "GetHistogram"
  | "GetResolution"
  | "GetSyncRate"
  | "GetCountRate"
  | "GetFlags"
  | "GetWarnings"
  | "GetWarningsText";

/** Limits and codes of one library family. */
export interface HarpLimits {
  /** Device indices 0 .. maxDevices-1 (`MAXDEVNUM`). */
  maxDevices: number;
  /** Largest histogram (`MAXHISTLEN`); lengths are `minHistLen << lencode`. */
  maxHistLen: number;
  /** Histogram length of length code 0. */
  minHistLen: number;
  /** Largest binning code + 1 (`BINSTEPSMAX`; the device may offer fewer). */
  binStepsMax: number;
  /** Sync divider range (`SYNCDIVMIN`..`SYNCDIVMAX`, powers of two). */
  syncDivMax: number;
  /** CFD zero-cross range in mV (`ZCMIN`..`ZCMAX`). */
  zeroCross: [number, number];
  /** CFD discriminator level range in mV (`DISCRMIN`..`DISCRMAX`). */
  cfdLevel: [number, number];
  /** Channel offset range in ps (`CHANOFFSMIN`..`CHANOFFSMAX`). */
  channelOffset: [number, number];
  /** Histogram offset range in ns (`OFFSETMIN`..`OFFSETMAX`). */
  offset: [number, number];
  /** Acquisition time range in ms (`ACQTMIN`..`ACQTMAX`). */
  acquisitionMs: [number, number];
  /** Bytes the caller provides for each string the library writes. */
  buffers: {
    version: number;
    errorString: number;
    serial: number;
    model: number;
    partNumber: number;
    hardwareVersion: number;
    warningsText: number;
  };
}

/** One library family: prefix, default locations, bindings, constants. */
export interface HarpFamily {
  /** Product name for messages. */
  product: string;
  /** Function name prefix, e.g. `HH_`. */
  prefix: string;
  /** Library major.minor versions this binding is written for (`HH_GetLibraryVersion`). */
  versions: readonly string[];
  /** Places the vendor's installer puts the library, tried in order when none is given. */
  defaultPaths: Readonly<Partial<Record<typeof Deno.build.os, readonly string[]>>>;
  /** The bound functions. */
  functions: Readonly<Record<HarpCall, HarpFunction>>;
  /** Limits and buffer sizes. */
  limits: HarpLimits;
}

/** Measurement mode codes of `Initialize` (`MODE_HIST` is the one this backend uses). */
export const MODE_HIST = 0;
/** Reference clock sources of `Initialize`. */
export const REF_SOURCES: Readonly<Record<"internal" | "external", number>> = {
  internal: 0,
  external: 1,
};

/** `HH_ERROR_DEVICE_OPEN_FAIL`: no device at this index (or it is used elsewhere). */
export const ERROR_DEVICE_OPEN_FAIL = -1;

/** Flag bits of `GetFlags`. */
export const FLAGS: Readonly<Record<string, number>> = {
  overflow: 0x0001,
  fifo_full: 0x0002,
  sync_lost: 0x0004,
  ref_lost: 0x0008,
  system_error: 0x0010,
  active: 0x0020,
};

/**
 * Flags that make a histogram untrustworthy: `FLAG_SYSERROR` is a hardware error (contact
 * PicoQuant); a lost external reference clock skews the time axis.
 */
export const FATAL_FLAGS = FLAGS.system_error | FLAGS.ref_lost;

/** Warning bits of `GetWarnings` (the library's own text comes from `GetWarningsText`). */
export const WARNINGS: Readonly<Record<string, number>> = {
  sync_rate_zero: 0x0001,
  sync_rate_too_low: 0x0002,
  sync_rate_too_high: 0x0004,
  input_rate_zero: 0x0010,
  input_rate_too_high: 0x0040,
  input_rate_ratio: 0x0100,
  divider_greater_one: 0x0200,
  time_span_too_small: 0x0400,
  offset_unnecessary: 0x0800,
};

/** Names of the flag or warning bits set in `bits`, e.g. `overflow,sync_lost`. */
export function bitNames(bits: number, table: Readonly<Record<string, number>>): string {
  const names = Object.entries(table).filter(([, bit]) => (bits & bit) !== 0).map(([n]) => n);
  const known = Object.values(table).reduce((a, b) => a | b, 0);
  if ((bits & ~known) !== 0) names.push(`0x${(bits & ~known).toString(16)}`);
  return names.join(",");
}

/**
 * HydraHarp 400, HHLib 3.x.
 *
 * For the siblings (to be checked against their own headers before use):
 * - MultiHarp 150/160 (`MHLib`, prefix `MH_`): no `Calibrate`; sync and inputs use edge triggers
 *   (`SetSyncEdgeTrg(dev, level, edge)`, `SetInputEdgeTrg(dev, ch, level, edge)`) instead of CFDs;
 *   `GetHistogram(dev, counts, channel)` has no `clear` argument; larger limits (MAXDEVNUM,
 *   inputs, offsets) and a text buffer size of its own.
 * - PicoHarp 300 (`PHLib`, prefix `PH_`): `Initialize(dev, mode)` without reference source; one
 *   input: `SetInputCFD(dev, channel, level, zc)` with channel 0 = sync, 1 = input; fixed
 *   histogram length 65536 (no `SetHistoLen`); `GetHistogram(dev, counts, block)`; warnings are
 *   the return value of `GetWarnings(dev)`.
 */
export const HYDRAHARP: HarpFamily = {
  product: "HydraHarp",
  prefix: "HH_",
  versions: ["3.0"],
  defaultPaths: {
    linux: ["/usr/local/lib64/hh400/hhlib.so", "/usr/lib64/libhh400.so", "/usr/lib/libhh400.so"],
    windows: ["hhlib64.dll", "hhlib.dll"],
  },
  functions: {
    GetLibraryVersion: { params: ["char*"] },
    GetErrorString: { params: ["char*", "int"] },
    OpenDevice: { params: ["int", "char*"], slow: true },
    CloseDevice: { params: ["int"], slow: true },
    Initialize: { params: ["int", "int", "int"], slow: true },
    GetHardwareInfo: { params: ["int", "char*", "char*", "char*"] },
    GetSerialNumber: { params: ["int", "char*"] },
    GetBaseResolution: { params: ["int", "double*", "int*"] },
    GetNumOfInputChannels: { params: ["int", "int*"] },
    Calibrate: { params: ["int"], slow: true },
    SetSyncDiv: { params: ["int", "int"] },
    SetSyncCFD: { params: ["int", "int", "int"] },
    SetSyncChannelOffset: { params: ["int", "int"] },
    SetInputCFD: { params: ["int", "int", "int", "int"] },
    SetInputChannelOffset: { params: ["int", "int", "int"] },
    SetHistoLen: { params: ["int", "int", "int*"] },
    SetBinning: { params: ["int", "int"] },
    SetOffset: { params: ["int", "int"] },
    ClearHistMem: { params: ["int"] },
    StartMeas: { params: ["int", "int"] },
    StopMeas: { params: ["int"] },
    CTCStatus: { params: ["int", "int*"] },
    GetHistogram: { params: ["int", "unsigned int*", "int", "int"], slow: true },
    GetResolution: { params: ["int", "double*"] },
    GetSyncRate: { params: ["int", "int*"] },
    GetCountRate: { params: ["int", "int", "int*"] },
    GetFlags: { params: ["int", "int*"] },
    GetWarnings: { params: ["int", "int*"] },
    GetWarningsText: { params: ["int", "char*", "int"] },
  },
  limits: {
    maxDevices: 8,
    maxHistLen: 65536,
    minHistLen: 1024,
    binStepsMax: 26,
    syncDivMax: 16,
    zeroCross: [0, 40],
    cfdLevel: [0, 1000],
    channelOffset: [-99999, 99999],
    offset: [0, 500000],
    acquisitionMs: [1, 360000000],
    buffers: {
      version: 8,
      errorString: 40,
      serial: 8,
      model: 16,
      partNumber: 8,
      hardwareVersion: 8,
      warningsText: 16384,
    },
  },
};

/** The C prototype of one bound function, e.g. `int HH_StopMeas(int)`. */
export function cPrototype(family: HarpFamily, call: HarpCall): string {
  const params = family.functions[call].params.join(", ");
  return `int ${family.prefix}${call}(${params})`;
}
