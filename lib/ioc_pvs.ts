/**
 * The IOC's PV layer: serves a {@link Controller} as Channel Access PVs on a {@link CaServer}.
 *
 * Top-level PVs (`state`, `ssqcnt`, `uuid`, `numid`, `acquire`, `duration`, `cancel`, `clear`,
 * `error`) exist from the start; the per-channel PVs and `start_ts`/`acq_td` are added once the
 * backend's configuration is known. Images are served in the smallest CA type that holds every
 * pixel value without loss ({@link IMAGE_CA_TYPES}).
 *
 * @module
 */

import type { CommandRequest, DeviceConfig, MetaValue, PixelType } from "../devices/contract.ts";
import {
  AlarmStatus,
  type CaServer,
  type NativeType,
  type NativeValue,
  OWNER_POSTS,
  type PvHandle,
  Severity,
  WriteRefusedError,
} from "../ca/mod.ts";
import type { Controller, ControllerState } from "./controller.ts";
import { getLog, type Logger } from "../core/log.ts";
import {
  anyDoubles,
  anyInt,
  anyString,
  type NdArraySource,
  type NdAttribute,
  type PvaServer,
  type PviSignal,
  pviStructure,
  type ScalarType,
  staticSource,
} from "../pva/mod.ts";
import { versionString } from "./version.ts";
import { errorMessage } from "../core/errors.ts";

/**
 * CA type of the `image` PV for each pixel type: the smallest that holds all values exactly
 * (CA has no unsigned types: uint8 → CHAR is unsigned in CA, uint16 needs LONG, uint32 DOUBLE).
 */
export const IMAGE_CA_TYPES: Readonly<Record<PixelType, NativeType>> = {
  uint8: "char",
  int8: "short",
  uint16: "long",
  int16: "short",
  uint32: "double",
  int32: "long",
  float32: "float",
  float64: "double",
};

/** pvData type of each pixel type (NTNDArray images over pvAccess keep the native type). */
export const PIXEL_SCALAR: Readonly<Record<PixelType, Exclude<ScalarType, "string">>> = {
  uint8: "ubyte",
  int8: "byte",
  uint16: "ushort",
  int16: "short",
  uint32: "uint",
  int32: "int",
  float32: "float",
  float64: "double",
};

/** Longest text served on the `error` PV (CA strings hold 39 characters plus NUL). */
export const ERROR_TEXT_MAX = 39;

/** PV names (without prefix) in the order they are served, for a configuration (or none yet). */
export function pvSuffixes(config: DeviceConfig | undefined): string[] {
  const names = [
    "state",
    "ssqcnt",
    "uuid",
    "numid",
    "acquire",
    "duration",
    "cancel",
    "clear",
    "error",
    "version",
  ];
  if (config === undefined) return names;
  names.push("channels");
  for (const ch of config.channels) {
    names.push(`${ch.name}:asize0`, `${ch.name}:asize1`, `${ch.name}:asize2`);
    for (const key of Object.keys(ch.meta)) names.push(`${ch.name}:${key}`);
    names.push(`${ch.name}:image`);
  }
  names.push("start_ts", "acq_td");
  return names;
}

/**
 * The IOC's PVI entries (PV names without the prefix) for a configuration (or none yet): the
 * top-level signals, and one child device per channel with its sizes, image and metadata.
 */
export function pviLayout(config: DeviceConfig | undefined): {
  top: PviSignal[];
  children: { name: string; signals: PviSignal[] }[];
} {
  const top: PviSignal[] = [
    { name: "state", r: "state" },
    { name: "ssqcnt", r: "ssqcnt" },
    { name: "uuid", r: "uuid" },
    { name: "numid", r: "numid" },
    { name: "acquire", rw: "acquire" },
    { name: "duration", rw: "duration" },
    { name: "cancel", x: "cancel" },
    { name: "clear", x: "clear" },
    { name: "error", r: "error" },
    { name: "version", r: "version" },
  ];
  const children: { name: string; signals: PviSignal[] }[] = [];
  if (config !== undefined) {
    top.push({ name: "channels", r: "channels" });
    top.push({ name: "start_ts", r: "start_ts" }, { name: "acq_td", r: "acq_td" });
    for (const ch of config.channels) {
      const signals: PviSignal[] = [
        { name: "asize0", r: `${ch.name}:asize0` },
        { name: "asize1", r: `${ch.name}:asize1` },
        { name: "asize2", r: `${ch.name}:asize2` },
        { name: "image", r: `${ch.name}:image` },
      ];
      for (const key of Object.keys(ch.meta)) {
        signals.push({ name: key, rw: `${ch.name}:${key}` });
      }
      children.push({ name: ch.name, signals });
    }
  }
  return { top, children };
}

/** Options of {@link createIocPvs}. */
export interface IocPvsOptions {
  server: CaServer;
  /** pvAccess server sharing the CA server's PVs: images become NTNDArrays, `{prefix}PVI` added. */
  pva?: PvaServer;
  controller: Controller;
  /** PV prefix, e.g. `DISS:det:`. */
  prefix: string;
  /**
   * CA type of uint32 image PVs: `double` (default; every value exact) or `long` (the same 32
   * bits as a signed int32, zero-copy and half the bytes; values >= 2^31, e.g. EIGER's 2^32-1
   * flag, read as negative numbers).
   */
  uint32As?: "double" | "long";
  /** Initial `duration` in seconds; default 1. */
  duration?: number;
  log?: Logger;
}

/** The served PVs; {@link IocPvs.close} detaches from the controller. */
export interface IocPvs {
  /** Full names of all PVs served so far. */
  names(): string[];
  /** Stops following the controller. */
  close(): void;
}

function stateAlarm(state: ControllerState): { severity: number; status: number } {
  if (state === "ERROR") return { severity: Severity.MAJOR, status: AlarmStatus.STATE };
  if (state === "FAIL") return { severity: Severity.INVALID, status: AlarmStatus.STATE };
  return { severity: Severity.NO_ALARM, status: AlarmStatus.NO_ALARM };
}

function firstNumber(value: NativeValue): number {
  return Number(value[0]);
}

/** Adds the IOC's PVs to `server` and keeps them in step with `controller`. */
export function createIocPvs(options: IocPvsOptions): IocPvs {
  const { server, controller, prefix } = options;
  const log = options.log ?? getLog("pvs");
  const added: string[] = [];

  const add = (def: Parameters<CaServer["add"]>[0]): PvHandle => {
    const pv = server.add(def);
    added.push(def.name);
    log.info("PV", { pv: def.name });
    return pv;
  };

  const refuseUnless = (command: CommandRequest, pv: string) => {
    const reason = controller.refusal(command);
    if (reason !== undefined) {
      log.warning("Write refused", { pv, reason });
      throw new WriteRefusedError(reason);
    }
  };

  const state = add({
    name: `${prefix}state`,
    type: "string",
    initial: controller.state,
    description: "Controller state",
    recordType: "stringin",
  });
  const ssqcnt = add({ name: `${prefix}ssqcnt`, type: "long", initial: -1, recordType: "longin" });
  const uuid = add({ name: `${prefix}uuid`, type: "string", initial: "", recordType: "stringin" });
  const numid = add({ name: `${prefix}numid`, type: "long", initial: -1, recordType: "longin" });
  const acquireValue = () =>
    controller.state === "INTEGRATE" || controller.state === "CANCEL" ? 1 : 0;
  // One writer: the state hook below posts `acquire` (1 in INTEGRATE/CANCEL, 0 afterwards); a
  // client write only asks the controller and leaves the posting to it.
  const acquire = add({
    name: `${prefix}acquire`,
    type: "long",
    initial: 0,
    writable: true,
    recordType: "bo",
    onWrite: (value) => {
      const v = firstNumber(value);
      if (v === 0 && acquireValue() === 1) {
        log.warning("Write refused", { pv: `${prefix}acquire`, value: v });
        throw new WriteRefusedError("acquire 0 does not stop an acquisition: write cancel 1");
      }
      if (v === 0) return OWNER_POSTS; // nothing to do (not acquiring)
      if (v !== 1) {
        log.warning("Write refused", { pv: `${prefix}acquire`, value: v });
        throw new WriteRefusedError(`acquire accepts 1 (start), not ${v}`);
      }
      const command: CommandRequest = {
        kind: "command",
        command: "Acquire",
        duration: firstNumber(duration.value()),
      };
      refuseUnless(command, `${prefix}acquire`);
      controller.request(command).catch((err) =>
        log.error("Acquire failed", { error: String(err) })
      );
      return OWNER_POSTS;
    },
  });
  const duration: PvHandle = add({
    name: `${prefix}duration`,
    type: "double",
    initial: options.duration ?? 1,
    units: "s",
    precision: 3,
    writable: true,
    recordType: "ao",
    onWrite: (value) => {
      const d = firstNumber(value);
      if (!Number.isFinite(d) || d < 0) {
        log.warning("Write refused", { pv: `${prefix}duration`, value: d });
        throw new WriteRefusedError(`Invalid duration ${d}: must be a finite number >= 0`);
      }
    },
  });
  add({
    name: `${prefix}cancel`,
    type: "long",
    initial: 0,
    writable: true,
    recordType: "bo",
    onWrite: (value) => {
      if (firstNumber(value) === 0) return 0;
      const command: CommandRequest = { kind: "command", command: "Cancel" };
      refuseUnless(command, `${prefix}cancel`);
      void controller.request(command).catch(() => {});
      return 0;
    },
  });
  add({
    name: `${prefix}clear`,
    type: "long",
    initial: 0,
    writable: true,
    recordType: "bo",
    onWrite: () => {
      const command: CommandRequest = { kind: "command", command: "Clear" };
      refuseUnless(command, `${prefix}clear`);
      void controller.request(command).catch((err) =>
        log.error("Clear failed", { error: String(err) })
      );
      return 0;
    },
  });
  const error = add({
    name: `${prefix}error`,
    type: "string",
    initial: "",
    recordType: "stringin",
  });

  add({
    name: `${prefix}version`,
    type: "string",
    initial: versionString().slice(0, 39),
    description: "diss-ioc version",
    recordType: "stringin",
  });

  let images: Record<string, PvHandle> = {};
  let ndArrays: Record<string, NdArraySource> = {};
  let published = 0;

  /** The PVI structure (ophyd-async) of what is served now. */
  const publishPvi = (config: DeviceConfig | undefined) => {
    if (options.pva === undefined) return;
    const { top, children } = pviLayout(config);
    for (const { name, type, value } of pviStructure(prefix, top, children)) {
      options.pva.setSource(name, staticSource(type, value));
    }
  };
  publishPvi(undefined);
  let meta: Record<string, Record<string, PvHandle>> = {};
  let startTs: PvHandle | undefined;
  let acqTd: PvHandle | undefined;

  const addChannels = (config: DeviceConfig) => {
    if (startTs !== undefined) return;
    const n = config.numImages;
    const count = n * config.width * config.height;
    images = {};
    meta = {};
    add({
      name: `${prefix}channels`,
      type: "string",
      maxCount: config.channels.length,
      initial: config.channels.map((ch) => ch.name),
      description: "Image channel names",
      recordType: "waveform",
    });
    for (const ch of config.channels) {
      log.info("Registering channel with EPICS", { channel: ch.name });
      const p = `${prefix}${ch.name}:`;
      add({ name: `${p}asize0`, type: "long", initial: n, recordType: "longin" });
      add({ name: `${p}asize1`, type: "long", initial: config.height, recordType: "longin" });
      add({ name: `${p}asize2`, type: "long", initial: config.width, recordType: "longin" });
      meta[ch.name] = {};
      for (const [key, value] of Object.entries(ch.meta)) {
        const name = `${p}${key}`;
        meta[ch.name][key] = add({
          name,
          type: typeof value === "number" ? "double" : "string",
          initial: value,
          writable: true,
          recordType: typeof value === "number" ? "ao" : "stringout",
          onWrite: async (written) => {
            const v: MetaValue = typeof value === "number"
              ? firstNumber(written)
              : String(written[0]);
            const command: CommandRequest = {
              kind: "command",
              command: "ChannelAdjust",
              channel: ch.name,
              values: { [key]: v },
            };
            refuseUnless(command, name);
            try {
              await controller.request(command);
            } catch (err) {
              throw new WriteRefusedError(errorMessage(err));
            }
            return controller.channelMeta[ch.name]?.[key] ?? v;
          },
        });
      }
      images[ch.name] = add({
        name: `${p}image`,
        type: config.pixelType === "uint32" && options.uint32As === "long"
          ? "long"
          : IMAGE_CA_TYPES[config.pixelType],
        maxCount: count,
        recordType: "waveform",
      });
    }
    publishPvi(config);
    if (options.pva !== undefined) {
      ndArrays = {};
      for (const ch of config.channels) {
        const nd = options.pva.serveImage(`${prefix}${ch.name}:image`, {
          width: config.width,
          height: config.height,
          images: n,
          pixel: PIXEL_SCALAR[config.pixelType],
        });
        if (nd !== undefined) ndArrays[ch.name] = nd;
      }
    }
    startTs = add({
      name: `${prefix}start_ts`,
      type: "double",
      maxCount: n,
      units: "s",
      recordType: "waveform",
    });
    acqTd = add({
      name: `${prefix}acq_td`,
      type: "double",
      maxCount: n,
      units: "s",
      recordType: "waveform",
    });
    log.info("Extra dynamic info", { length: added.length });
  };

  const postError = (errors: readonly string[]) => {
    const text = errors[0] ?? "";
    error.post(text.length > ERROR_TEXT_MAX ? text.slice(0, ERROR_TEXT_MAX) : text);
  };

  /** Gives back the frame whose pixels the image PVs serve now. */
  let heldFrame: (() => void) | undefined;
  const unsubscribe = controller.subscribe({
    config: addChannels,
    state: ({ state: s }) => {
      state.post(s, stateAlarm(s));
      if (s === "INTEGRATE") {
        const series = controller.series;
        if (series !== undefined) {
          ssqcnt.post(series.ssqcnt);
          uuid.post(series.uuid);
        }
        if (firstNumber(acquire.value()) !== 1) acquire.post(1);
      } else if (s === "READY" || s === "ERROR" || s === "FAIL") {
        if (firstNumber(acquire.value()) !== 0) acquire.post(0);
      }
    },
    seriesStart: (series) => numid.post(series.seriesNumber),
    data: (frame) => {
      // The PVs read the frame's pixels in place (no copy) until the next frame replaced them.
      const giveBack = frame.retain();
      const timestamp = frame.timestamps[0] * 1000;
      published++;
      const imageAttributes = imageMetaAttributes(frame.imageMeta);
      for (const [name, pixels] of Object.entries(frame.images)) {
        const pv = images[name];
        if (pv === undefined) continue;
        // NTNDArray: per-series attributes first; the pixels come from the post below.
        const attributes: NdAttribute[] = [
          { name: "uuid", value: anyString(frame.uuid), descriptor: "Series UUID" },
          { name: "ssqcnt", value: anyInt(frame.ssqcnt), descriptor: "Sequence counter" },
          { name: "numid", value: anyInt(frame.seriesNumber), descriptor: "Series number" },
          {
            name: "StartTime",
            value: anyDoubles(frame.timestamps),
            descriptor: "Image start time, Unix seconds",
          },
          { name: "Exposure", value: anyDoubles(frame.exposures), descriptor: "Exposure, s" },
          ...imageAttributes,
        ];
        for (const [key, v] of Object.entries(controller.channelMeta[name] ?? {})) {
          attributes.push({
            name: key,
            value: typeof v === "number" ? anyDoubles([v]) : anyString(String(v)),
            descriptor: `Channel ${key}`,
          });
        }
        ndArrays[name]?.setFrame({ uniqueId: published, dataTime: timestamp, attributes });
        // uint32 served as LONG: the same bytes viewed as int32 (no conversion).
        const value = pixels instanceof Uint32Array && pv.definition.type === "long"
          ? new Int32Array(pixels.buffer, pixels.byteOffset, pixels.length)
          : pixels;
        // Readers that outlive the next frame (queued PVA messages) borrow it: no copy.
        pv.post(value, { timestamp, keep: true, retain: frame.retain });
      }
      startTs?.post(frame.timestamps, { timestamp });
      acqTd?.post(frame.exposures, { timestamp });
      heldFrame?.();
      heldFrame = giveBack;
    },
    channel: (channel, values) => {
      for (const [key, value] of Object.entries(values)) meta[channel]?.[key]?.post(value);
    },
    errors: postError,
  });
  if (controller.config !== undefined) addChannels(controller.config);
  postError(controller.errors);
  state.post(controller.state, stateAlarm(controller.state));

  return {
    names: () => [...added],
    // The last frame stays with the PVs (they still serve it): it is not given back.
    close: unsubscribe,
  };
}

/**
 * NTNDArray attributes of the per-image facts of a series (`ImageDataEvent.meta`): one per key,
 * numbers as a double array over the images (NaN where an image lacks the key), anything else as
 * a comma-separated string.
 */
export function imageMetaAttributes(
  imageMeta: readonly (Readonly<Record<string, MetaValue>> | undefined)[],
): NdAttribute[] {
  const keys = new Set<string>();
  for (const m of imageMeta) if (m !== undefined) { for (const k of Object.keys(m)) keys.add(k); }
  const out: NdAttribute[] = [];
  for (const key of keys) {
    const values = imageMeta.map((m) => m?.[key]);
    const numeric = values.every((v) => v === undefined || typeof v === "number");
    out.push({
      name: key,
      value: numeric
        ? anyDoubles(values.map((v) => (v === undefined ? NaN : v as number)))
        : anyString(values.map((v) => (v === undefined ? "" : String(v))).join(",")),
      descriptor: `Image ${key}`,
    });
  }
  return out;
}
