/**
 * Parameter store of the simulated EIGER2 DCU: SIMPLON keys with value, type, access mode,
 * limits, allowed values and unit; typed writes with range/enum checks and the couplings of the
 * real DCU (count_time ↔ frame_time, photon_energy → thresholds, bit depth from trigger mode).
 *
 * @module
 */

/** A parameter value as it travels in SIMPLON JSON. */
export type SimValue = boolean | number | string | null | SimValue[];

/** SIMPLON value types used here. */
export type SimValueType = "bool" | "float" | "int" | "uint" | "string" | "string[]" | "list";

/** One parameter with its description fields. */
export interface SimParam {
  value: SimValue;
  value_type: SimValueType;
  access_mode: "r" | "rw" | "w";
  min?: number;
  max?: number;
  allowed_values?: SimValue[];
  unit?: string;
}

/** A rejected write: HTTP status and a short reason. */
export class ParamError extends Error {
  /** HTTP status to answer with. */
  readonly status: number;
  /** Creates an error answered with `status`. */
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Geometry and bit depth of the simulated detector. */
export interface SimGeometry {
  width: number;
  height: number;
  /** bit_depth_image in internal-trigger modes (8, 16 or 32). */
  bitDepth: number;
}

const READOUT_TIME = 1e-7;

function p(
  value: SimValue,
  value_type: SimValueType,
  extra: Partial<SimParam> = {},
): SimParam {
  return { value, value_type, access_mode: "rw", ...extra };
}

function ro(value: SimValue, value_type: SimValueType, extra: Partial<SimParam> = {}): SimParam {
  return p(value, value_type, { ...extra, access_mode: "r" });
}

/** Creates the detector config parameters for a geometry. */
export function detectorConfig(geometry: SimGeometry): Map<string, SimParam> {
  const onOff = ["enabled", "disabled"];
  const energy = { min: 2700, max: 100000, unit: "eV" };
  return new Map<string, SimParam>(Object.entries({
    auto_sum_strict: p(false, "bool"),
    auto_summation: p(true, "bool"),
    beam_center_x: p(geometry.width / 2, "float", { unit: "pixel" }),
    beam_center_y: p(geometry.height / 2, "float", { unit: "pixel" }),
    bit_depth_image: ro(geometry.bitDepth, "uint", { unit: "bit" }),
    bit_depth_readout: ro(16, "uint", { unit: "bit" }),
    compression: p("bslz4", "string", { allowed_values: ["lz4", "bslz4", "none"] }),
    count_time: p(0.5, "float", { min: 0.0005, max: 3600, unit: "s" }),
    countrate_correction_applied: p(true, "bool"),
    countrate_correction_count_cutoff: ro(126634, "uint", { unit: "counts" }),
    counting_mode: p("normal", "string", { allowed_values: ["normal", "retrigger"] }),
    description: ro("Dectris EIGER2 Si 500K (simulated)", "string"),
    detector_distance: p(0.1, "float", { min: 0, unit: "m" }),
    detector_number: ro("E-01-0000-SIM", "string"),
    detector_readout_time: ro(READOUT_TIME, "float", { unit: "s" }),
    eiger_fw_version: ro("release-2022.1.2-sim", "string"),
    element: p("", "string"),
    extg_mode: p("double", "string", { allowed_values: ["single", "double"] }),
    flatfield_correction_applied: p(true, "bool"),
    frame_count_time: ro(0.5, "float", { unit: "s" }),
    frame_time: p(0.5 + READOUT_TIME, "float", { min: 0.0005, max: 3600, unit: "s" }),
    incident_energy: p(8041, "float", energy),
    mask_to_zero: p(false, "bool"),
    nexpi: p(1, "uint", { min: 1, max: 2 ** 32 }),
    nimages: p(1, "uint", { min: 1, max: 2 ** 32 }),
    ntrigger: p(1, "uint", { min: 1, max: 2 ** 32 }),
    photon_energy: p(8041, "float", energy),
    pixel_mask_applied: p(true, "bool"),
    sensor_material: ro("Si", "string"),
    sensor_thickness: ro(4.5e-4, "float", { unit: "m" }),
    software_version: ro("1.8.0", "string"),
    test_image_mode: p("", "string", { allowed_values: ["", "value", "cal_pulse", "mcb_id"] }),
    test_image_value: p(0, "uint"),
    "threshold/1/energy": p(4020.5, "float", energy),
    "threshold/1/mode": p("enabled", "string", { allowed_values: onOff }),
    "threshold/2/energy": p(11257.4, "float", energy),
    "threshold/2/mode": p("disabled", "string", { allowed_values: onOff }),
    "threshold/difference/mode": p("disabled", "string", { allowed_values: onOff }),
    threshold_energy: p(4020.5, "float", energy),
    trigger_mode: p("ints", "string", {
      allowed_values: ["ints", "inte", "exts", "exte", "extg"],
    }),
    trigger_start_delay: p(0, "float", { min: 0, max: 3600, unit: "s" }),
    virtual_pixel_correction_applied: p(true, "bool"),
    wavelength: p(1.5419, "float", { min: 0.1, max: 5, unit: "Å" }),
    x_pixel_size: ro(7.5e-5, "float", { unit: "m" }),
    x_pixels_in_detector: ro(geometry.width, "uint", { unit: "pixel" }),
    y_pixel_size: ro(7.5e-5, "float", { unit: "m" }),
    y_pixels_in_detector: ro(geometry.height, "uint", { unit: "pixel" }),
  }));
}

/** Creates the detector status parameters. */
export function detectorStatus(): Map<string, SimParam> {
  return new Map<string, SimParam>(Object.entries({
    state: ro("idle", "string", {
      allowed_values: ["na", "initialize", "configure", "idle", "ready", "acquire", "error"],
    }),
    temperature: ro(24.8, "float", { unit: "°C" }),
    humidity: ro(3.1, "float", { unit: "%" }),
    time: ro(new Date().toISOString(), "string"),
    "high_voltage/state": ro("READY", "string"),
    error: ro([], "string[]"),
    "board_000/th0_temp": ro(24.8, "float", { unit: "°C" }),
    "board_000/th0_humidity": ro(3.1, "float", { unit: "%" }),
  }));
}

/** Creates the stream config parameters. */
export function streamConfig(): Map<string, SimParam> {
  return new Map<string, SimParam>(Object.entries({
    mode: p("disabled", "string", { allowed_values: ["enabled", "disabled"] }),
    format: p("legacy", "string", { allowed_values: ["legacy", "cbor"] }),
    header_detail: p("basic", "string", { allowed_values: ["all", "basic", "none"] }),
    header_appendix: p("", "string"),
    image_appendix: p("", "string"),
  }));
}

/** Creates the stream status parameters. */
export function streamStatus(): Map<string, SimParam> {
  return new Map<string, SimParam>(Object.entries({
    state: ro("disabled", "string", { allowed_values: ["disabled", "ready", "acquire", "error"] }),
    dropped: ro(0, "uint"),
  }));
}

/** Creates the config of a subsystem that only has a mode switch (monitor, filewriter). */
export function modeOnlyConfig(): Map<string, SimParam> {
  return new Map([["mode", p("disabled", "string", { allowed_values: ["enabled", "disabled"] })]]);
}

/** Checks `value` against the description of `key`; throws a {@link ParamError} (400/403). */
export function checkValue(key: string, param: SimParam, value: unknown): SimValue {
  if (param.access_mode === "r") throw new ParamError(403, `parameter ${key} is read-only`);
  const t = param.value_type;
  const bad = (want: string) =>
    new ParamError(400, `wrong type for ${key}: ${JSON.stringify(value)} is not ${want}`);
  if (t === "bool") {
    if (typeof value !== "boolean") throw bad("a bool");
  } else if (t === "float" || t === "int" || t === "uint") {
    if (typeof value !== "number" || !Number.isFinite(value)) throw bad(`a ${t}`);
    if (t !== "float" && !Number.isInteger(value)) throw bad(`an ${t}`);
    if (t === "uint" && value < 0) throw bad("a uint");
    if (param.min !== undefined && value < param.min) {
      throw new ParamError(400, `value ${value} of ${key} below minimum ${param.min}`);
    }
    if (param.max !== undefined && value > param.max) {
      throw new ParamError(400, `value ${value} of ${key} above maximum ${param.max}`);
    }
  } else if (t === "string") {
    if (typeof value !== "string") throw bad("a string");
  } else if (!Array.isArray(value)) throw bad("a list");
  const allowed = param.allowed_values;
  if (allowed !== undefined && allowed.length > 0 && !allowed.includes(value as SimValue)) {
    throw new ParamError(
      400,
      `value ${JSON.stringify(value)} of ${key} not in allowed values ${JSON.stringify(allowed)}`,
    );
  }
  return value as SimValue;
}

/**
 * Applies a checked detector config write and the DCU's couplings; returns the changed keys.
 * `bitDepth` is the internal-trigger bit depth of the simulated model.
 */
export function writeDetectorConfig(
  config: Map<string, SimParam>,
  key: string,
  value: SimValue,
  bitDepth: number,
): string[] {
  const set = (k: string, v: SimValue) => {
    const param = config.get(k);
    if (param !== undefined) param.value = v;
  };
  const get = (k: string) => config.get(k)?.value;
  const changed = new Set([key]);
  set(key, value);
  const readout = READOUT_TIME;
  if (key === "count_time") {
    const ct = value as number;
    set("frame_time", ct + readout);
    set("frame_count_time", ct);
    ["frame_time", "frame_count_time", "bit_depth_image", "countrate_correction_count_cutoff"]
      .forEach((k) => changed.add(k));
  } else if (key === "frame_time") {
    const ft = value as number;
    if ((get("count_time") as number) > ft - readout) {
      set("count_time", Math.max(ft - readout, 0.0005));
      changed.add("count_time");
    }
  } else if (key === "photon_energy" || key === "incident_energy") {
    const e = value as number;
    set("photon_energy", e);
    set("incident_energy", e);
    set("threshold/1/energy", 0.5 * e);
    set("threshold_energy", 0.5 * e);
    set("threshold/2/energy", 1.4 * e);
    set("element", "");
    set("wavelength", 12398.42 / e);
    for (
      const k of ["photon_energy", "incident_energy", "threshold/1/energy", "threshold_energy"]
    ) {
      changed.add(k);
    }
    ["threshold/2/energy", "element", "wavelength", "flatfield"].forEach((k) => changed.add(k));
  } else if (key === "threshold/1/energy" || key === "threshold_energy") {
    set("threshold/1/energy", value);
    set("threshold_energy", value);
    changed.add("threshold/1/energy").add("threshold_energy").add("flatfield");
  } else if (key === "threshold/2/energy") {
    changed.add("flatfield");
  }
  if (key === "trigger_mode" || key === "extg_mode" || key === "count_time") {
    const depth = get("trigger_mode") === "extg"
      ? (get("extg_mode") === "single" ? 32 : 16)
      : bitDepth;
    set("bit_depth_image", depth);
    changed.add("bit_depth_image");
  }
  return [...changed].sort();
}

/** Serializes a parameter as the SIMPLON description object (status adds time and state). */
export function describe(param: SimParam, status = false): Record<string, unknown> {
  const out: Record<string, unknown> = {
    value: param.value,
    value_type: param.value_type,
    access_mode: param.access_mode,
  };
  if (param.min !== undefined) out.min = param.min;
  if (param.max !== undefined) out.max = param.max;
  if (param.allowed_values !== undefined) out.allowed_values = param.allowed_values;
  if (param.unit !== undefined) out.unit = param.unit;
  if (status) {
    out.time = new Date().toISOString();
    out.state = "normal";
    delete out.access_mode;
  }
  return out;
}
