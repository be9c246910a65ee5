/**
 * GigE Vision camera backend (`--backend gige`, alias `pylon`): any GigE Vision camera (Basler,
 * FLIR, Allied Vision, JAI, ...) over GVCP/GVSP with its GenICam description, in pure TypeScript.
 * USB3 Vision cameras are not covered.
 *
 * Initialize: discover the camera (unicast, or broadcast on the named interface), fetch and parse
 * its description, take control with a heartbeat, apply `GIGE_FEATURES` in order (each read back
 * and logged), set trigger and acquisition mode, open the stream channel. Acquire: exposure from
 * the duration, AcquisitionStart, N frames reassembled from GVSP, AcquisitionStop. One channel
 * `camera` with the read-only facts `gain` and `pixel_format`. Any lost control, incomplete frame
 * or frame of the wrong size/format ends the acquisition with an error naming it; clear then
 * reconnects.
 *
 * @module
 */

import type {
  Device,
  DeviceConfig,
  DeviceContext,
  MetaValue,
  PixelArray,
  RuntimeStateEvent,
} from "../contract.ts";
import { errorMessage } from "../../core/errors.ts";
import {
  Bootstrap,
  Capability,
  type DiscoveryInfo,
  GVSP_CONFIG_EXTENDED_ID,
  ipv4Value,
} from "./gvcp.ts";
import { GvcpClient } from "./gvcp_client.ts";
import { fetchDescription } from "./description.ts";
import { type FeatureValue, NodeMap, type RegisterPort } from "./genicam.ts";
import { FrameAssembler } from "./gvsp_assembler.ts";
import { GvspReceiver } from "./gvsp_receiver.ts";
import { payloadHasChunks } from "./gvsp.ts";
import { parseChunks } from "./chunks.ts";
import { negotiatePacketSize, SCPS_DO_NOT_FRAGMENT, SCPS_PIXEL_BIG_ENDIAN } from "./packet_size.ts";
import { type PixelFormatInfo, pixelFormatInfo, unpackPixels } from "./pixels.ts";
import { type GigeSettings, parseGigeSettings } from "./settings.ts";
import { discoverOnInterface, type LocalAddress, resolveLocalAddress } from "./network.ts";

/** Name of the one image channel. */
export const GIGE_CHANNEL = "camera";

const EXPOSURE_FEATURES = ["ExposureTime", "ExposureTimeAbs"];
const GAIN_FEATURES = ["Gain", "GainRaw", "GainAbs"];
const TEMPERATURE_FEATURES = ["DeviceTemperature", "TemperatureAbs"];
const RUNTIME_POLL_MS = 2000;
/** Kernel receive buffer asked for the stream socket (capped by net.core.rmem_max). */
const RECEIVE_BUFFER_BYTES = 32 * 1024 * 1024;
/** Packet size bounds of the negotiation without GIGE_PACKET_SIZE (jumbo frames) and below. */
const DEFAULT_MAX_PACKET_SIZE = 9000;
const MIN_PACKET_SIZE = 576;

/** Seconds per unit of a time feature's `<Unit>` (µs when absent, as SFNC defines). */
export function secondsPerUnit(unit: string): number {
  switch (unit.trim()) {
    case "s":
      return 1;
    case "ms":
      return 1e-3;
    case "ns":
      return 1e-9;
    case "":
    case "us":
    case "µs":
    case "μs":
      return 1e-6;
    default:
      throw new Error(`exposure unit ${JSON.stringify(unit)} not understood`);
  }
}

/**
 * Per-image facts of a frame: its block id and, when the camera has a timestamp clock, the
 * leader's timestamp in seconds of that clock (`device_time`; its epoch is the camera's, often
 * power-up or PTP/Unix time).
 */
export function imageMeta(
  blockId: number,
  ticks: bigint,
  tickFrequency: number,
): Record<string, number> {
  if (!(tickFrequency > 0)) return { block_id: blockId };
  const f = BigInt(tickFrequency);
  return { block_id: blockId, device_time: Number(ticks / f) + Number(ticks % f) / tickFrequency };
}

/** A connected camera: control socket, node map, stream receiver. */
interface Session {
  client: GvcpClient;
  nodes: NodeMap;
  receiver: GvspReceiver;
  identity: DiscoveryInfo;
  local: LocalAddress;
  format: PixelFormatInfo;
  formatName: string;
  width: number;
  height: number;
  packetSize: number;
  resend: boolean;
  exposureFeature: string;
  exposureScale: number;
  /** Timestamp ticks per second of the camera (0: it has no timestamps). */
  tickFrequency: number;
  gainFeature: string | undefined;
  temperatureFeature: string | undefined;
  /** Reassembly of the last acquisition, reused (with its frame buffers) while PayloadSize stays. */
  assembler?: FrameAssembler;
}

/** The GigE Vision device backend. */
export class GigeDevice implements Device {
  #ctx: DeviceContext;
  #settings: GigeSettings;
  #session: Session | undefined;
  #config: DeviceConfig | undefined;
  #initialized = false;
  #lost: string | undefined;
  #acquire: AbortController | undefined;
  #cancelled = false;
  #series = 0;
  #runtime: RuntimeStateEvent["values"] = {};
  #runtimeTimer: ReturnType<typeof setTimeout> | undefined;
  #unpackPool: Uint16Array[] = [];
  #lastStats: Record<string, number> = {};

  /** Reads the settings from `ctx.env`; throws naming an invalid variable. */
  constructor(ctx: DeviceContext) {
    this.#ctx = ctx;
    this.#settings = parseGigeSettings(ctx.env);
  }

  /** The parsed settings. */
  get settings(): Readonly<GigeSettings> {
    return this.#settings;
  }

  /** The node map of the connected camera (tests and tools). */
  get nodes(): NodeMap | undefined {
    return this.#session?.nodes;
  }

  /** Stream counters of the last acquisition (tests and tools). */
  streamStats(): Record<string, number> {
    return { ...this.#lastStats };
  }

  /**
   * GIGE_IMAGE_OVERDUE for one frame. With several frames the backend bounds each frame itself
   * (exposure + overdue), a total the controller cannot know (it is not N × duration when the
   * camera's frame period is longer), so then it reports 0 and the per-frame bound decides.
   */
  overdueSeconds(): number {
    return this.#settings.numImages === 1 ? this.#settings.imageOverdue : 0;
  }

  /** True after a successful initialize while control is held. */
  isInitialized(): boolean {
    return this.#initialized && this.#lost === undefined;
  }

  /** Configuration read from the camera at initialization. */
  getConfig(): DeviceConfig | undefined {
    return this.#config;
  }

  /** Last polled runtime values (temperature where the camera has it, stream counters). */
  getRuntime(): RuntimeStateEvent["values"] {
    return { ...this.#runtime };
  }

  /** Releases the camera. Never throws. */
  async teardown(): Promise<void> {
    this.#acquire?.abort(new Error("teardown"));
    await this.#disconnect();
  }

  async #disconnect(): Promise<void> {
    clearTimeout(this.#runtimeTimer);
    const s = this.#session;
    this.#session = undefined;
    this.#initialized = false;
    if (s === undefined) return;
    s.client.stopHeartbeat();
    if (this.#lost === undefined) {
      try {
        await s.client.writeRegister(Bootstrap.SCP0, 0);
      } catch {
        // best effort: the camera may be gone
      }
      const err = await s.client.releaseControl();
      if (err !== undefined) this.#ctx.log.warn("Releasing camera control failed", { error: err });
    }
    await s.receiver.close();
    await s.client.close();
  }

  #onControlLost(reason: string): void {
    if (this.#lost !== undefined) return;
    this.#lost = reason;
    this.#initialized = false;
    this.#ctx.log.error("Camera control lost", { reason });
    this.#acquire?.abort(new Error(`camera control lost: ${reason}`));
    this.#ctx.emit({ type: "error", message: `camera control lost: ${reason}` });
  }

  /** Forgets a lost camera; the controller then initializes again (reconnecting). */
  async clear(): Promise<void> {
    if (this.#lost !== undefined || !this.#initialized) {
      await this.#disconnect();
    }
  }

  /** Connects, configures and opens the stream. */
  async initialize(signal: AbortSignal): Promise<void> {
    await this.#disconnect();
    this.#lost = undefined;
    this.#config = undefined;
    const st = this.#settings;
    const log = this.#ctx.log;
    let host = st.host;
    let local: LocalAddress;
    if (host === undefined) {
      local = resolveLocalAddress(st.interface);
      const found = await discoverOnInterface(local);
      if (found.length === 0) throw new Error(`no GigE Vision camera answered on ${local.address}`);
      host = found[0].ip;
      log.info("Camera discovered", { ip: host, model: found[0].model, found: found.length });
    } else {
      local = resolveLocalAddress(st.interface, host);
    }
    const client = new GvcpClient({
      host,
      port: st.port,
      localAddress: local.address,
      timeoutMs: st.gvcpTimeoutMs,
    });
    let receiver: GvspReceiver | undefined;
    let controlTaken = false;
    try {
      const identity = await client.discover();
      log.info("Camera found", {
        address: client.address,
        vendor: identity.manufacturer,
        model: identity.model,
        serial: identity.serial,
        version: identity.deviceVersion,
      });
      signal.throwIfAborted();
      const capability = await client.readRegister(Bootstrap.GVCP_CAPABILITY);
      const port: RegisterPort = {
        readMemory: (a, l) => client.readMemory(a, l),
        writeMemory: async (a, data) => {
          if ((capability & Capability.WRITEMEM) !== 0) return await client.writeMemory(a, data);
          if (data.length % 4 !== 0) {
            throw new Error(
              `camera has no WRITEMEM and ${data.length} bytes are not whole registers`,
            );
          }
          const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
          for (let i = 0; i < data.length; i += 4) {
            await client.writeRegister(a + i, dv.getUint32(i));
          }
        },
        readRegister: (a) => client.readRegister(a),
        writeRegister: (a, v) => client.writeRegister(a, v),
      };
      const description = await fetchDescription((a, l) => client.readMemory(a, l));
      const nodes = NodeMap.parse(description.xml, port);
      log.info("GenICam description loaded", {
        file: description.fileName,
        schema: nodes.schemaVersion,
        nodes: nodes.names().length,
      });
      signal.throwIfAborted();
      await client.takeControl();
      controlTaken = true;
      const heartbeatTimeout = await client.readRegister(Bootstrap.HEARTBEAT_TIMEOUT);
      const period = Math.max(100, Math.min(1000, Math.floor((heartbeatTimeout || 3000) / 3)));
      client.startHeartbeat(period, (reason) => this.#onControlLost(reason));
      // Stop anything a previous owner left running before touching the configuration.
      await this.#tryExecute(nodes, "AcquisitionStop");
      await this.#trySet(nodes, "TLParamsLocked", 0);

      for (const [name, value] of st.features) {
        try {
          await nodes.set(name, value);
          const back = await nodes.get(name);
          log.info("Feature set", { feature: name, value, read_back: back });
        } catch (err) {
          throw new Error(`GIGE_FEATURES ${name}=${value} refused: ${errorMessage(err)}`);
        }
      }
      await this.#setupTrigger(nodes);
      await this.#setupMode(nodes);

      const exposureFeature = EXPOSURE_FEATURES.find((f) => nodes.has(f));
      if (exposureFeature === undefined) {
        throw new Error(`camera has no exposure feature (${EXPOSURE_FEATURES.join(" or ")})`);
      }
      const exposureScale = secondsPerUnit(nodes.unit(exposureFeature));
      const gainFeature = GAIN_FEATURES.find((f) => nodes.has(f));
      const temperatureFeature = TEMPERATURE_FEATURES.find((f) => nodes.has(f));

      const width = Number(await nodes.get("Width"));
      const height = Number(await nodes.get("Height"));
      const formatName = String(await nodes.get("PixelFormat"));
      const formatCode = await nodes.getNumber("PixelFormat");
      const format = pixelFormatInfo(formatCode, formatName);

      // Stream channel: destination and port, then the packet size (its test packets go there).
      receiver = new GvspReceiver({
        localAddress: local.address,
        device: { host, port: st.port },
        receiveBufferBytes: RECEIVE_BUFFER_BYTES,
      });
      const destination = local.address === "0.0.0.0" ? "127.0.0.1" : local.address;
      await client.writeRegister(Bootstrap.SCDA0, ipv4Value(destination));
      await client.writeRegister(Bootstrap.SCP0, receiver.port);
      const packetSize = await this.#negotiatePacketSize(client, nodes, receiver, signal);
      const extendedIds = await this.#enableExtendedIds(client);
      const resend = (capability & Capability.PACKETRESEND) !== 0;
      const tickFrequency = (await client.readRegister(Bootstrap.TICK_FREQUENCY_HIGH)) *
          0x100000000 + (await client.readRegister(Bootstrap.TICK_FREQUENCY_LOW));
      const buffer = receiver.receiveBuffer;
      log.info("Stream channel open", {
        destination: `${destination}:${receiver.port}`,
        packet_size: packetSize,
        resend,
        block_ids: extendedIds ? "64-bit" : "16-bit",
        receive_buffer: buffer?.bytes ?? "system default",
        ...(buffer?.applied ? {} : { receive_buffer_note: buffer?.reason ?? "not asked" }),
        receive: receiver.receiveMode.mode,
      });
      if (receiver.receiveMode.mode !== "batch") {
        log.warn("GVSP received one datagram per call: batched receive needs --allow-ffi", {
          reason: receiver.receiveMode.reason,
        });
      }

      this.#session = {
        client,
        nodes,
        receiver,
        identity,
        local,
        format,
        formatName,
        width,
        height,
        packetSize,
        resend,
        exposureFeature,
        exposureScale,
        tickFrequency,
        gainFeature,
        temperatureFeature,
      };
      const gain = gainFeature === undefined ? "" : await nodes.get(gainFeature);
      this.#config = {
        channels: [{
          name: GIGE_CHANNEL,
          meta: { gain: typeof gain === "boolean" ? Number(gain) : gain, pixel_format: formatName },
        }],
        numImages: st.numImages,
        width,
        height,
        pixelType: format.pixelType,
        extra: {
          vendor: identity.manufacturer,
          model: identity.model,
          serial: identity.serial,
          firmware: identity.deviceVersion,
          address: client.address,
          pixel_format: formatName,
          exposure_feature: exposureFeature,
          description: description.fileName,
        },
      };
      this.#initialized = true;
      await this.#pollRuntime();
    } catch (err) {
      this.#session = undefined;
      client.stopHeartbeat();
      if (controlTaken && this.#lost === undefined) await client.releaseControl();
      await receiver?.close();
      await client.close();
      throw err;
    }
  }

  /**
   * Packet size: the largest that arrives, found with test packets between GIGE_PACKET_SIZE (or
   * 9000) and 576, within the camera's GevSCPSPacketSize range when its description has one. A
   * camera that sends no test packets (the aravis fake) gets GIGE_PACKET_SIZE, else keeps its
   * own size; a log line says so. Returns the size read back from the camera.
   */
  async #negotiatePacketSize(
    client: GvcpClient,
    nodes: NodeMap,
    receiver: GvspReceiver,
    signal: AbortSignal,
  ): Promise<number> {
    const st = this.#settings;
    const log = this.#ctx.log;
    let min = MIN_PACKET_SIZE;
    let max = st.packetSize ?? DEFAULT_MAX_PACKET_SIZE;
    let inc = 4;
    if (nodes.has("GevSCPSPacketSize")) {
      try {
        const range = await nodes.range("GevSCPSPacketSize");
        if (Number.isFinite(range.min)) min = Math.max(min, range.min);
        if (Number.isFinite(range.max)) max = Math.min(max, range.max);
        if (range.inc !== undefined && range.inc > 0) inc = range.inc;
      } catch (err) {
        log.warn("GevSCPSPacketSize range unreadable", { error: errorMessage(err) });
      }
    }
    min = Math.min(min, max);
    const before = (await client.readRegister(Bootstrap.SCPS0)) & 0xffff;
    const result = await negotiatePacketSize(client, receiver, {
      min,
      max,
      inc,
      timeoutMs: st.testPacketTimeoutMs,
      signal,
    });
    const trials = result.trials.map((t) => `${t.size}:${t.arrived ? "ok" : "lost"}`).join(",");
    let wanted = result.size;
    if (wanted === undefined) {
      wanted = st.packetSize ?? before;
      log.warn("Camera sent no test packet: packet size not negotiated", {
        packet_size: wanted,
        from: st.packetSize !== undefined ? "GIGE_PACKET_SIZE" : "camera",
        trials,
      });
      if (wanted !== before) {
        const scps = await client.readRegister(Bootstrap.SCPS0);
        await client.writeRegister(
          Bootstrap.SCPS0,
          ((scps & (SCPS_DO_NOT_FRAGMENT | SCPS_PIXEL_BIG_ENDIAN)) | wanted) >>> 0,
        );
      }
    } else {
      log.info("Packet size negotiated", { packet_size: wanted, largest_tried: max, trials });
    }
    const packetSize = (await client.readRegister(Bootstrap.SCPS0)) & 0xffff;
    if (packetSize !== wanted) {
      throw new Error(`camera uses packet size ${packetSize} instead of ${wanted}`);
    }
    return packetSize;
  }

  /**
   * 64-bit block ids (extended-id GVSP headers) on cameras of GigE Vision 2.0 and later, which
   * must support them: no 16-bit wrap. Older cameras, or one that refuses, keep 16-bit ids (the
   * receiver reads either form from every packet anyway).
   */
  async #enableExtendedIds(client: GvcpClient): Promise<boolean> {
    const version = await client.readRegister(Bootstrap.VERSION);
    if (version >>> 16 < 2) return false;
    try {
      const config = await client.readRegister(Bootstrap.GVSP_CONFIGURATION);
      await client.writeRegister(
        Bootstrap.GVSP_CONFIGURATION,
        (config | GVSP_CONFIG_EXTENDED_ID) >>> 0,
      );
      return ((await client.readRegister(Bootstrap.GVSP_CONFIGURATION)) &
        GVSP_CONFIG_EXTENDED_ID) !== 0;
    } catch (err) {
      this.#ctx.log.warn("64-bit block ids not enabled", { error: errorMessage(err) });
      return false;
    }
  }

  async #tryExecute(nodes: NodeMap, name: string): Promise<void> {
    if (nodes.has(name) && nodes.kind(name) === "Command") await nodes.execute(name);
  }

  async #trySet(nodes: NodeMap, name: string, value: FeatureValue): Promise<void> {
    if (nodes.has(name) && await nodes.isWritable(name)) await nodes.set(name, value);
  }

  async #setupTrigger(nodes: NodeMap): Promise<void> {
    const external = this.#settings.trigger === "external";
    if (!nodes.has("TriggerMode")) {
      if (external) throw new Error("GIGE_TRIGGER=external but the camera has no TriggerMode");
      return;
    }
    if (nodes.has("TriggerSelector")) {
      const entries = await nodes.enumEntries("TriggerSelector");
      if (entries.has("AcquisitionStart")) {
        await nodes.set("TriggerSelector", "AcquisitionStart");
        await nodes.set("TriggerMode", "Off");
      }
      if (entries.has("FrameStart")) await nodes.set("TriggerSelector", "FrameStart");
    }
    await nodes.set("TriggerMode", external ? "On" : "Off");
    this.#ctx.log.info("Trigger set", {
      trigger: this.#settings.trigger,
      source: nodes.has("TriggerSource") ? await nodes.get("TriggerSource").catch(() => "?") : "-",
    });
  }

  async #setupMode(nodes: NodeMap): Promise<void> {
    if (!nodes.has("AcquisitionMode")) return;
    const entries = await nodes.enumEntries("AcquisitionMode");
    const n = this.#settings.numImages;
    if (n === 1 && entries.has("SingleFrame")) {
      await nodes.set("AcquisitionMode", "SingleFrame");
    } else if (entries.has("MultiFrame") && nodes.has("AcquisitionFrameCount")) {
      await nodes.set("AcquisitionMode", "MultiFrame");
      await nodes.set("AcquisitionFrameCount", n);
    } else if (entries.has("Continuous")) {
      await nodes.set("AcquisitionMode", "Continuous");
    }
  }

  async #pollRuntime(): Promise<void> {
    clearTimeout(this.#runtimeTimer);
    const s = this.#session;
    if (s === undefined || this.#lost !== undefined) return;
    const values: RuntimeStateEvent["values"] = {};
    if (s.temperatureFeature !== undefined) {
      try {
        values.temperature = Number(await s.nodes.getNumber(s.temperatureFeature));
      } catch (err) {
        this.#ctx.log.warn("Temperature read failed", { error: errorMessage(err) });
      }
    }
    const stats = this.#lastStats;
    if (stats.packets !== undefined) {
      values.frames_failed = stats.framesFailed;
      values.packets_malformed = stats.malformed;
      values.packets_resent = stats.resentReceived;
    }
    this.#runtime = values;
    if (this.#session === s) {
      this.#runtimeTimer = setTimeout(() => void this.#pollRuntime(), RUNTIME_POLL_MS);
    }
  }

  /** Gain and pixel format are facts of the camera: refused, and the current values reported. */
  adjustChannel(channel: string, values: Record<string, MetaValue>): Promise<void> {
    const keys = Object.keys(values).join(", ");
    const meta = this.#config?.channels.find((c) => c.name === channel)?.meta;
    if (meta !== undefined) this.#ctx.emit({ type: "channel-state", channel, values: { ...meta } });
    return Promise.reject(
      new Error(
        `${channel}:${keys} is read-only (set camera features with GIGE_FEATURES at start)`,
      ),
    );
  }

  /** Stops the running acquisition; acquire then emits CancelData. */
  cancel(): Promise<void> {
    this.#cancelled = true;
    this.#acquire?.abort(new Error("cancelled"));
    return Promise.resolve();
  }

  #image(s: Session, buffer: Uint8Array, data: Uint8Array, recycle: () => void) {
    const count = s.width * s.height;
    const f = s.format;
    if (f.pixelType === "uint8") {
      return { pixels: data.subarray(0, count) as PixelArray, release: recycle };
    }
    if (!f.packed) {
      return { pixels: new Uint16Array(buffer.buffer, buffer.byteOffset, count), release: recycle };
    }
    const out = this.#unpackPool.pop() ?? new Uint16Array(count);
    unpackPixels(f.code, data, out, count);
    recycle();
    return {
      pixels: out,
      release: () => {
        if (out.length === count && this.#unpackPool.length < 4) this.#unpackPool.push(out);
      },
    };
  }

  /** One series: `numImages` frames of `duration` seconds exposure. */
  async acquire(duration: number, signal: AbortSignal): Promise<void> {
    const s = this.#session;
    if (s === undefined || this.#lost !== undefined) {
      throw new Error(
        this.#lost !== undefined ? `camera control lost: ${this.#lost}` : "camera not initialized",
      );
    }
    const log = this.#ctx.log;
    const nodes = s.nodes;
    const st = this.#settings;
    const stop = new AbortController();
    this.#acquire = stop;
    this.#cancelled = false;
    const abort = AbortSignal.any([signal, stop.signal]);

    const exposureValue = duration / s.exposureScale;
    try {
      await nodes.set(s.exposureFeature, exposureValue);
    } catch (err) {
      throw new Error(`duration ${duration} s refused: ${errorMessage(err)}`);
    }
    const exposure = Number(await nodes.getNumber(s.exposureFeature)) * s.exposureScale;
    const payloadSize = Number(await nodes.getNumber("PayloadSize"));
    const expectedBytes = s.format.bytes(s.width, s.height);
    if (payloadSize < expectedBytes) {
      throw new Error(
        `PayloadSize ${payloadSize} smaller than a ${s.width}x${s.height} ${s.formatName} image`,
      );
    }
    // The frame buffers of the previous acquisition are reused: no allocation, no page faults
    // and no garbage of image size while the first frames arrive.
    let assembler = s.assembler;
    if (assembler?.payloadSize === payloadSize) assembler.reset();
    else {
      assembler = new FrameAssembler({
        payloadSize,
        packetSize: s.packetSize,
        resend: s.resend,
        windowMs: st.resendWindowMs,
      });
      s.assembler = assembler;
    }
    s.receiver.setAssembler(assembler);
    this.#lastStats = assembler.stats as unknown as Record<string, number>;
    const seriesId = `gige-${s.identity.serial || "cam"}-${++this.#series}`;
    let started = false;
    let ended = false;
    const blocks: number[] = [];
    try {
      await this.#trySet(nodes, "TLParamsLocked", 1);
      this.#ctx.emit({ type: "start-data", seriesId, seriesNumber: this.#series });
      started = true;
      await nodes.execute("AcquisitionStart");
      log.info("Acquisition started", { series: seriesId, frames: st.numImages, exposure });
      for (let index = 0; index < st.numImages; index++) {
        const frameSignal = st.imageOverdue > 0
          ? AbortSignal.any([
            abort,
            AbortSignal.timeout((duration + st.imageOverdue) * 1000),
          ])
          : abort;
        let out;
        try {
          out = await s.receiver.next(frameSignal);
        } catch (err) {
          if (abort.aborted) throw abort.reason;
          throw new Error(
            `frame ${
              index + 1
            } of ${st.numImages} overdue: nothing complete from ${s.client.address} ` +
              `within ${duration + st.imageOverdue} s (${errorMessage(err)})`,
          );
        }
        if (out.kind === "incomplete") throw new Error(out.reason);
        const buffer = out.buffer;
        const recycle = () => assembler.recycle(buffer);
        const leader = out.leader;
        if (
          leader === undefined || leader.width !== s.width || leader.height !== s.height ||
          leader.pixelFormat !== s.format.code
        ) {
          recycle();
          throw new Error(
            `block ${out.blockId}: frame ${leader?.width}x${leader?.height} format 0x${
              leader?.pixelFormat.toString(16)
            }, expected ${s.width}x${s.height} ${s.formatName}`,
          );
        }
        let data = out.data;
        if (payloadHasChunks(leader.payloadType)) {
          // The image is the first chunk; the others (and every chunk tag) are stripped.
          try {
            data = data.subarray(0, parseChunks(data)[0].length);
          } catch (err) {
            recycle();
            throw new Error(`block ${out.blockId}: ${errorMessage(err)}`);
          }
        }
        if (leader.paddingX !== 0 || data.length < expectedBytes) {
          recycle();
          throw new Error(
            `block ${out.blockId}: ${data.length} bytes (padding ${leader.paddingX}), expected ${expectedBytes}`,
          );
        }
        blocks.push(out.blockId);
        const image = this.#image(s, buffer, data, recycle);
        this.#ctx.emit({
          type: "image-data",
          seriesId,
          index,
          timestamp: Date.now() / 1000,
          exposure,
          images: { [GIGE_CHANNEL]: image.pixels },
          meta: imageMeta(out.blockId, leader.timestamp, s.tickFrequency),
          release: image.release,
        });
      }
      ended = true;
    } catch (err) {
      if (this.#cancelled && !signal.aborted && this.#lost === undefined) {
        log.info("Acquisition cancelled", { series: seriesId });
      } else {
        await this.#stopCamera(s);
        throw err;
      }
    } finally {
      if (this.#acquire === stop) this.#acquire = undefined;
    }
    await this.#stopCamera(s);
    if (ended) {
      this.#ctx.emit({ type: "end-data", seriesId });
      log.info("Acquisition done", {
        series: seriesId,
        blocks: blocks.join(","),
        ...assembler.stats,
      });
    } else if (started) {
      this.#ctx.emit({ type: "cancel-data", seriesId });
    }
  }

  async #stopCamera(s: Session): Promise<void> {
    s.receiver.setAssembler(undefined);
    if (this.#lost !== undefined) return;
    try {
      await s.nodes.execute("AcquisitionStop");
      await this.#trySet(s.nodes, "TLParamsLocked", 0);
    } catch (err) {
      this.#ctx.log.warn("AcquisitionStop failed", { error: errorMessage(err) });
    }
  }
}
