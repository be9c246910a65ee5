/**
 * A GigE Vision camera simulator of our own, for tests and benchmarks on loopback: GVCP on an
 * OS-assigned port (DISCOVERY, READREG, WRITEREG, READMEM, WRITEMEM, PACKETRESEND), control
 * privilege with ACCESS_DENIED for strangers and a heartbeat that expires, an own GenICam
 * description (plain or zipped, covering Float/FloatReg features the aravis fake lacks), and a
 * GVSP sender that keeps its last frames and honours resend requests.
 *
 * Fault knobs (all public fields): go silent, answer with PENDING_ACK first, drop chosen stream
 * packets on first transmission, ignore resends, lie about the frame size or format, send junk.
 *
 * @module
 */

import {
  Bootstrap,
  Capability,
  decodeCommand,
  decodePacketResend,
  encodeAck,
  GvcpCommand,
  GvcpFormatError,
  GVSP_CONFIG_EXTENDED_ID,
  PENDING_ACK,
} from "../gige/gvcp.ts";
import {
  type ImageLeader,
  imageLeader,
  packetizeImage,
  STATUS_PACKET_RESEND,
} from "../gige/gvsp.ts";
import { SCPS_FIRE_TEST_PACKET, TEST_PACKET_OVERHEAD } from "../gige/packet_size.ts";
import { zipArchive } from "./zip_writer.ts";
import { encodeChunks } from "../gige/chunks.ts";

/** Device register addresses of the simulator's description. */
export const SimRegister = {
  WIDTH: 0xa000,
  HEIGHT: 0xa004,
  PIXEL_FORMAT: 0xa008,
  EXPOSURE: 0xa00c,
  GAIN: 0xa010,
  ACQUISITION_MODE: 0xa014,
  ACQUISITION_COMMAND: 0xa018,
  TRIGGER_MODE: 0xa01c,
  TRIGGER_SOFTWARE: 0xa020,
  TEMPERATURE: 0xa024,
  TL_LOCKED: 0xa028,
  FRAME_COUNT: 0xa02c,
  STATUS_BITS: 0xa030,
  CHUNK_MODE: 0xa034,
} as const;

/** Chunk id of the image chunk and of the timestamp chunk the simulator appends. */
export const SIM_CHUNK_IMAGE = 0x1;
export const SIM_CHUNK_TIMESTAMP = 0xa5a5_0001;

const XML_ADDRESS = 0x10000;
const MONO8 = 0x01080001;
const MONO16 = 0x01100007;
const MONO12_PACKED = 0x010c0006;

function floatReg(name: string, address: number, extra = ""): string {
  return `<FloatReg Name="${name}Reg"><Address>0x${
    address.toString(16)
  }</Address><Length>4</Length>` +
    `<AccessMode>RW</AccessMode><pPort>Device</pPort>${extra}<Endianess>BigEndian</Endianess></FloatReg>`;
}

function intReg(name: string, address: number, access = "RW", extra = ""): string {
  return `<IntReg Name="${name}"><Address>0x${address.toString(16)}</Address><Length>4</Length>` +
    `<AccessMode>${access}</AccessMode><pPort>Device</pPort>${extra}<Sign>Unsigned</Sign>` +
    `<Endianess>BigEndian</Endianess></IntReg>`;
}

/** The simulator's GenICam description. */
export const SIM_CAMERA_XML = `<?xml version="1.0" encoding="utf-8"?>
<RegisterDescription ModelName="DissSim" VendorName="diss" SchemaMajorVersion="1" SchemaMinorVersion="1" SchemaSubMinorVersion="0" xmlns="http://www.genicam.org/GenApi/Version_1_1">
<Category Name="Root"><pFeature>Width</pFeature></Category>
<Integer Name="Width"><pValue>WidthReg</pValue><Min>8</Min><Max>4096</Max><Inc>4</Inc></Integer>
${intReg("WidthReg", SimRegister.WIDTH)}
<Integer Name="Height"><pValue>HeightReg</pValue><Min>1</Min><Max>4096</Max></Integer>
${intReg("HeightReg", SimRegister.HEIGHT)}
<Enumeration Name="PixelFormat"><pIsLocked>TLParamsLocked</pIsLocked>
<EnumEntry Name="Mono8"><Value>${MONO8}</Value></EnumEntry>
<EnumEntry Name="Mono16"><Value>${MONO16}</Value></EnumEntry>
<EnumEntry Name="Mono12Packed"><Value>${MONO12_PACKED}</Value></EnumEntry>
<EnumEntry Name="RGB8"><Value>${0x02180014}</Value></EnumEntry>
<pValue>PixelFormatReg</pValue></Enumeration>
${intReg("PixelFormatReg", SimRegister.PIXEL_FORMAT)}
<IntSwissKnife Name="PayloadSize"><pVariable Name="W">Width</pVariable><pVariable Name="H">Height</pVariable><pVariable Name="PF">PixelFormatReg</pVariable><pVariable Name="CM">ChunkModeReg</pVariable><Formula>(W * H * ((PF &gt;&gt; 16) &amp; 0xFF) + 7) / 8 + CM * 24</Formula></IntSwissKnife>
<Boolean Name="ChunkModeActive"><pValue>ChunkModeReg</pValue></Boolean>
${intReg("ChunkModeReg", SimRegister.CHUNK_MODE)}
<Float Name="ExposureTime"><pValue>ExposureTimeReg</pValue><Min>10</Min><Max>10000000</Max><Unit>us</Unit></Float>
${floatReg("ExposureTime", SimRegister.EXPOSURE)}
<Float Name="Gain"><pValue>GainReg</pValue><Min>0</Min><Max>24</Max><Unit>dB</Unit></Float>
${floatReg("Gain", SimRegister.GAIN)}
<Float Name="DeviceTemperature"><pValue>DeviceTemperatureReg</pValue><Unit>C</Unit></Float>
${floatReg("DeviceTemperature", SimRegister.TEMPERATURE, "<Cachable>NoCache</Cachable>")}
<Enumeration Name="AcquisitionMode"><EnumEntry Name="Continuous"><Value>0</Value></EnumEntry><EnumEntry Name="SingleFrame"><Value>1</Value></EnumEntry><EnumEntry Name="MultiFrame"><Value>2</Value></EnumEntry><pValue>AcquisitionModeReg</pValue></Enumeration>
${intReg("AcquisitionModeReg", SimRegister.ACQUISITION_MODE)}
<Integer Name="AcquisitionFrameCount"><pValue>FrameCountReg</pValue><Min>1</Min><Max>1000000</Max></Integer>
${intReg("FrameCountReg", SimRegister.FRAME_COUNT)}
<Command Name="AcquisitionStart"><pValue>AcquisitionCommandReg</pValue><CommandValue>1</CommandValue></Command>
<Command Name="AcquisitionStop"><pValue>AcquisitionCommandReg</pValue><CommandValue>0</CommandValue></Command>
${
  intReg(
    "AcquisitionCommandReg",
    SimRegister.ACQUISITION_COMMAND,
    "RW",
    "<Cachable>NoCache</Cachable>",
  )
}
<Enumeration Name="TriggerSelector"><EnumEntry Name="FrameStart"><Value>0</Value></EnumEntry><Value>0</Value></Enumeration>
<Enumeration Name="TriggerMode"><EnumEntry Name="Off"><Value>0</Value></EnumEntry><EnumEntry Name="On"><Value>1</Value></EnumEntry><pValue>TriggerModeReg</pValue></Enumeration>
${intReg("TriggerModeReg", SimRegister.TRIGGER_MODE)}
<Enumeration Name="TriggerSource"><EnumEntry Name="Software"><Value>0</Value></EnumEntry><EnumEntry Name="Line1"><Value>1</Value></EnumEntry><Value>0</Value></Enumeration>
<Command Name="TriggerSoftware"><pValue>TriggerSoftwareReg</pValue><CommandValue>1</CommandValue></Command>
${intReg("TriggerSoftwareReg", SimRegister.TRIGGER_SOFTWARE, "WO", "<Cachable>NoCache</Cachable>")}
<Integer Name="TLParamsLocked"><Value>0</Value><Min>0</Min><Max>1</Max></Integer>
<Boolean Name="FanOn"><pValue>FanBit</pValue></Boolean>
<StructReg Name="StatusBits"><Address>0x${
  SimRegister.STATUS_BITS.toString(16)
}</Address><Length>4</Length><AccessMode>RW</AccessMode><pPort>Device</pPort><Endianess>BigEndian</Endianess>
<StructEntry Name="FanBit"><Bit>31</Bit></StructEntry><StructEntry Name="Mode"><LSB>23</LSB><MSB>16</MSB></StructEntry></StructReg>
<StringReg Name="DeviceUserID"><Address>0xe8</Address><Length>16</Length><AccessMode>RW</AccessMode><pPort>Device</pPort></StringReg>
<Port Name="Device"/>
</RegisterDescription>
`;

/** Pixel value the simulator puts at (x, y) of block `block` (before formatting). */
export function simPixel(x: number, y: number, block: number): number {
  return (x + 3 * y + block) & 0xffff;
}

/** The image bytes of one frame as the simulator sends them. */
export function simFrameBytes(
  width: number,
  height: number,
  format: number,
  block: number,
): Uint8Array {
  const n = width * height;
  if (format === MONO8) {
    const out = new Uint8Array(n);
    for (let y = 0, i = 0; y < height; y++) {
      for (let x = 0; x < width; x++) out[i++] = simPixel(x, y, block) & 0xff;
    }
    return out;
  }
  if (format === MONO16) {
    const out = new Uint8Array(2 * n);
    for (let y = 0, i = 0; y < height; y++) {
      for (let x = 0; x < width; x++, i += 2) {
        const v = simPixel(x, y, block);
        out[i] = v & 0xff;
        out[i + 1] = v >> 8;
      }
    }
    return out;
  }
  if (format === MONO12_PACKED) {
    const out = new Uint8Array(Math.ceil((n * 12) / 8));
    const px = (i: number) => simPixel(i % width, Math.floor(i / width), block) & 0xfff;
    for (let i = 0, s = 0; i < n; i += 2, s += 3) {
      const p0 = px(i);
      const p1 = i + 1 < n ? px(i + 1) : 0;
      out[s] = p0 >> 4;
      out[s + 1] = ((p1 & 0xf) << 4) | (p0 & 0xf);
      out[s + 2] = p1 >> 4;
    }
    return out;
  }
  throw new Error(`simulator cannot produce format 0x${format.toString(16)}`);
}

/** Options of {@link SimCamera}. */
export interface SimCameraOptions {
  /** Serve the description zipped. */
  zipped?: boolean;
  /** Frame period in free-run, ms (default 5). */
  periodMs?: number;
  /** Width/height at start (default 64×48). */
  width?: number;
  height?: number;
  /** Block id of the first frame (default 1; beyond 0xffff only in extended-id mode). */
  firstBlock?: number;
  /** GigE Vision version register (default 1.2; 2.0 and up offer extended ids). */
  version?: number;
}

/** A simulated GigE Vision camera on 127.0.0.1. */
export class SimCamera {
  /** Registers (address → 32-bit value). */
  readonly registers = new Map<number, number>();
  /** Memory beyond registers (description). */
  memory: Uint8Array = new Uint8Array(0);
  /** Ignore every GVCP command (a camera that stopped answering). */
  silent = false;
  /** Send PENDING_ACK (this many ms) before every acknowledge. */
  pendingAckMs = 0;
  /** Decides whether to drop a stream packet on its first transmission. */
  dropPacket: (block: number, packetId: number) => boolean = () => false;
  /** Answer PACKETRESEND with the kept packets. */
  honourResend = true;
  /** Overrides the leader of sent frames (wrong size or format). */
  leaderOverride: Partial<ImageLeader> | undefined;
  /** With ChunkModeActive: a damaged chunk layout (the last tag's length too large). */
  brokenChunks = false;
  /** Datagrams of junk sent before each frame. */
  junkPerFrame = 0;
  /** Send a test packet when SCPS is written with the fire bit (false: like the aravis fake). */
  fireTestPackets = true;
  /**
   * Largest IP datagram the path to the host carries (bytes incl. 28 of IP + UDP): larger stream
   * and test packets are dropped, as a hop with a smaller MTU drops do-not-fragment packets.
   */
  pathMtu = Infinity;
  /** Stream and test packets dropped for exceeding {@link pathMtu}. */
  mtuDrops = 0;
  /** Test packets sent (sizes, whole IP datagram). */
  testPacketsSent: number[] = [];
  /** Resend requests received. */
  resendRequests: { blockId: number; first: number; last: number }[] = [];
  /** Frames sent (block ids). */
  framesSent: number[] = [];
  /** Leader timestamps of the frames sent (ns, the tick frequency being 1 GHz). */
  timestampsSent: bigint[] = [];
  #gvcp: Deno.DatagramConn;
  #gvsp: Deno.DatagramConn;
  #controller: { host: string; port: number } | undefined;
  #lastControllerCommand = 0;
  #nextBlock = 1;
  #kept = new Map<number, Uint8Array[]>();
  #streamTimer: ReturnType<typeof setTimeout> | undefined;
  #framesLeft = 0;
  #closed = false;
  #loop: Promise<void>;
  #periodMs: number;

  private constructor(options: SimCameraOptions) {
    this.#gvcp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#gvsp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#periodMs = options.periodMs ?? 5;
    this.#nextBlock = options.firstBlock ?? 1;
    const r = this.registers;
    r.set(Bootstrap.VERSION, options.version ?? 0x00010002);
    r.set(Bootstrap.DEVICE_MODE, 0x80000000);
    r.set(Bootstrap.CURRENT_IP, 0x7f000001);
    r.set(Bootstrap.STREAM_CHANNELS, 1);
    r.set(Bootstrap.GVCP_CAPABILITY, Capability.PACKETRESEND | Capability.WRITEMEM);
    r.set(Bootstrap.HEARTBEAT_TIMEOUT, 3000);
    r.set(Bootstrap.TICK_FREQUENCY_HIGH, 0);
    r.set(Bootstrap.TICK_FREQUENCY_LOW, 1_000_000_000); // leader timestamps in ns
    r.set(Bootstrap.CCP, 0);
    r.set(Bootstrap.SCPS0, 1500);
    r.set(SimRegister.WIDTH, options.width ?? 64);
    r.set(SimRegister.HEIGHT, options.height ?? 48);
    r.set(SimRegister.PIXEL_FORMAT, MONO8);
    this.setFloat(SimRegister.EXPOSURE, 10000);
    this.setFloat(SimRegister.GAIN, 0);
    this.setFloat(SimRegister.TEMPERATURE, 41.5);
    r.set(SimRegister.FRAME_COUNT, 1);
    this.#loop = this.#serve();
  }

  /** Starts a simulator. */
  static async start(options: SimCameraOptions = {}): Promise<SimCamera> {
    const cam = new SimCamera(options);
    const xml = new TextEncoder().encode(SIM_CAMERA_XML);
    const blob = options.zipped ? await zipArchive("diss_sim.xml", xml) : xml;
    const name = options.zipped ? "diss_sim.zip" : "diss_sim.xml";
    cam.memory = blob;
    const url = `Local:${name};${XML_ADDRESS.toString(16)};${blob.length.toString(16)}`;
    cam.#writeBytes(Bootstrap.FIRST_URL, new TextEncoder().encode(url));
    cam.#writeBytes(0x48, new TextEncoder().encode("diss"));
    cam.#writeBytes(0x68, new TextEncoder().encode("SimCamera"));
    cam.#writeBytes(0x88, new TextEncoder().encode("1.0"));
    cam.#writeBytes(0xd8, new TextEncoder().encode("SIM001"));
    return cam;
  }

  /** GVCP port. */
  get port(): number {
    return (this.#gvcp.addr as Deno.NetAddr).port;
  }

  /** `GIGE_DEVICE_HOST` value for this camera. */
  get hostSpec(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Whether some application holds control. */
  get controlled(): boolean {
    return this.#controller !== undefined;
  }

  /** Stores a float register. */
  setFloat(address: number, value: number): void {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat32(0, value);
    this.registers.set(address, dv.getUint32(0));
  }

  /** Reads a float register. */
  getFloat(address: number): number {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setUint32(0, this.registers.get(address) ?? 0);
    return dv.getFloat32(0);
  }

  /** Makes another (fake) application the controller. */
  grabControl(): void {
    this.#controller = { host: "127.0.0.2", port: 1 };
    this.registers.set(Bootstrap.CCP, 2);
    this.#lastControllerCommand = performance.now();
  }

  /** Models a power cycle: control free, streaming stopped, answering again. */
  restart(): void {
    this.silent = false;
    this.#dropControl();
  }

  #writeBytes(address: number, bytes: Uint8Array): void {
    const padded = new Uint8Array((bytes.length + 3) & ~3);
    padded.set(bytes);
    const dv = new DataView(padded.buffer);
    for (let i = 0; i < padded.length; i += 4) this.registers.set(address + i, dv.getUint32(i));
  }

  #readBytes(address: number, count: number): Uint8Array {
    const out = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const a = address + i;
      if (a >= XML_ADDRESS) {
        out[i] = this.memory[a - XML_ADDRESS] ?? 0;
      } else {
        const word = this.registers.get(a & ~3) ?? 0;
        out[i] = (word >>> (8 * (3 - (a & 3)))) & 0xff;
      }
    }
    return out;
  }

  #heartbeatExpired(now: number): boolean {
    const timeout = this.registers.get(Bootstrap.HEARTBEAT_TIMEOUT) ?? 3000;
    return this.#controller !== undefined && now - this.#lastControllerCommand > timeout;
  }

  #dropControl(): void {
    this.#controller = undefined;
    this.registers.set(Bootstrap.CCP, 0);
    this.#stopStream();
  }

  async #serve(): Promise<void> {
    while (!this.#closed) {
      let data: Uint8Array;
      let from: Deno.NetAddr;
      try {
        const [d, a] = await this.#gvcp.receive();
        data = d;
        from = a as Deno.NetAddr;
      } catch {
        if (this.#closed) return;
        continue;
      }
      if (this.silent) continue;
      let cmd;
      try {
        cmd = decodeCommand(data);
      } catch (err) {
        if (err instanceof GvcpFormatError) continue;
        throw err;
      }
      const now = performance.now();
      if (this.#heartbeatExpired(now)) this.#dropControl();
      const isController = this.#controller !== undefined &&
        this.#controller.host === from.hostname && this.#controller.port === from.port;
      if (isController) this.#lastControllerCommand = now;
      const reply = (status: number, payload: Uint8Array = new Uint8Array(0)) => {
        const send = () => {
          if (this.#closed) return;
          this.#gvcp.send(encodeAck(status, cmd.command + 1, cmd.reqId, payload), from).catch(
            () => {},
          );
        };
        if (this.pendingAckMs > 0) {
          const p = new Uint8Array(4);
          new DataView(p.buffer).setUint16(2, this.pendingAckMs);
          this.#gvcp.send(encodeAck(0, PENDING_ACK, cmd.reqId, p), from).catch(() => {});
          setTimeout(send, Math.max(1, this.pendingAckMs / 2));
        } else send();
      };
      try {
        this.#handle(cmd, from, isController, reply);
      } catch {
        reply(0x8002); // a malformed command: INVALID_PARAMETER, never a crash
      }
    }
  }

  #handle(
    cmd: { command: number; flags: number; reqId: number; payload: Uint8Array },
    from: Deno.NetAddr,
    isController: boolean,
    reply: (status: number, payload?: Uint8Array) => void,
  ): void {
    {
      const dv = new DataView(cmd.payload.buffer, cmd.payload.byteOffset, cmd.payload.byteLength);
      switch (cmd.command) {
        case GvcpCommand.DISCOVERY:
          reply(0, this.#readBytes(0, 0xf8));
          break;
        case GvcpCommand.READREG: {
          if (cmd.payload.length < 4) {
            reply(0x8002);
            break;
          }
          const out = new Uint8Array(cmd.payload.length);
          const ov = new DataView(out.buffer);
          for (let i = 0; i + 4 <= cmd.payload.length; i += 4) {
            ov.setUint32(i, this.registers.get(dv.getUint32(i)) ?? 0);
          }
          reply(0, out);
          break;
        }
        case GvcpCommand.WRITEREG: {
          if (cmd.payload.length < 8) {
            reply(0x8002);
            break;
          }
          if (this.#controller !== undefined && !isController) {
            reply(0x8006, new Uint8Array(4));
            break;
          }
          let n = 0;
          for (let i = 0; i + 8 <= cmd.payload.length; i += 8) {
            this.#writeRegister(dv.getUint32(i), dv.getUint32(i + 4), from);
            n++;
          }
          const out = new Uint8Array(4);
          new DataView(out.buffer).setUint16(2, n);
          reply(0, out);
          break;
        }
        case GvcpCommand.READMEM: {
          const address = dv.getUint32(0);
          const count = dv.getUint16(6);
          if (count > 536 || count % 4 !== 0 || address % 4 !== 0) {
            reply(0x8005);
            break;
          }
          const out = new Uint8Array(4 + count);
          new DataView(out.buffer).setUint32(0, address);
          out.set(this.#readBytes(address, count), 4);
          reply(0, out);
          break;
        }
        case GvcpCommand.WRITEMEM: {
          if (this.#controller !== undefined && !isController) {
            reply(0x8006, new Uint8Array(4));
            break;
          }
          const address = dv.getUint32(0);
          this.#writeBytes(address, cmd.payload.subarray(4));
          reply(0, new Uint8Array(4));
          break;
        }
        case GvcpCommand.PACKETRESEND: {
          const r = decodePacketResend(cmd.payload, cmd.flags);
          this.resendRequests.push({
            blockId: r.blockId,
            first: r.firstPacket,
            last: r.lastPacket,
          });
          if (!this.honourResend) break;
          const packets = this.#kept.get(r.blockId);
          if (packets === undefined) break;
          for (let pid = r.firstPacket; pid <= r.lastPacket && pid < packets.length; pid++) {
            const p = packets[pid].slice();
            p[0] = STATUS_PACKET_RESEND >> 8;
            p[1] = STATUS_PACKET_RESEND & 0xff;
            if (this.#extendedIds) p[3] |= 0x01; // extended header flag: packet resent
            this.#sendStream(p);
          }
          break;
        }
        default:
          reply(0x8001);
      }
    }
  }

  #writeRegister(address: number, value: number, from: Deno.NetAddr): void {
    if (address === Bootstrap.CCP) {
      if (value === 0) {
        this.#dropControl();
      } else {
        this.#controller = { host: from.hostname, port: from.port };
        this.#lastControllerCommand = performance.now();
      }
      this.registers.set(address, value);
      return;
    }
    if (address === Bootstrap.SCPS0) {
      // The fire bit is self-clearing: one test packet of the size written, to SCDA:SCP.
      this.registers.set(address, (value & ~SCPS_FIRE_TEST_PACKET) >>> 0);
      if ((value & SCPS_FIRE_TEST_PACKET) !== 0 && this.fireTestPackets) {
        const size = value & 0xffff;
        const packet = new Uint8Array(Math.max(8, size - TEST_PACKET_OVERHEAD));
        packet[4] = 0x03; // block id 0 marks a test packet
        for (let i = 8; i < packet.length; i++) packet[i] = (i * 31) & 0xff;
        this.testPacketsSent.push(size);
        this.#sendStream(packet);
      }
      return;
    }
    this.registers.set(address, value);
    if (address === SimRegister.ACQUISITION_COMMAND) {
      if (value === 1) this.#startStream();
      else this.#stopStream();
    } else if (address === SimRegister.TRIGGER_SOFTWARE && value === 1) {
      this.registers.set(address, 0);
      if (this.#framesLeft > 0) this.#sendFrame();
    }
  }

  #startStream(): void {
    this.#stopStream();
    const mode = this.registers.get(SimRegister.ACQUISITION_MODE) ?? 0;
    this.#framesLeft = mode === 1
      ? 1
      : mode === 2
      ? (this.registers.get(SimRegister.FRAME_COUNT) ?? 1)
      : Infinity;
    if ((this.registers.get(SimRegister.TRIGGER_MODE) ?? 0) !== 0) return;
    const tick = () => {
      if (this.#framesLeft <= 0 || this.#controller === undefined) return;
      this.#sendFrame();
      this.#streamTimer = setTimeout(tick, this.#periodMs);
    };
    this.#streamTimer = setTimeout(tick, this.#periodMs);
  }

  #stopStream(): void {
    clearTimeout(this.#streamTimer);
    this.#streamTimer = undefined;
    this.#framesLeft = 0;
  }

  /** Extended-id mode: GVSP configuration bit set by the host. */
  get #extendedIds(): boolean {
    return ((this.registers.get(Bootstrap.GVSP_CONFIGURATION) ?? 0) & GVSP_CONFIG_EXTENDED_ID) !==
      0;
  }

  #sendStream(packet: Uint8Array): void {
    const port = this.registers.get(Bootstrap.SCP0) ?? 0;
    if (port === 0 || this.#closed) return;
    if (packet.length + TEST_PACKET_OVERHEAD > this.pathMtu) {
      this.mtuDrops++;
      return;
    }
    const ip = this.registers.get(Bootstrap.SCDA0) ?? 0;
    const hostname = [24, 16, 8, 0].map((s) => (ip >>> s) & 0xff).join(".");
    this.#gvsp.send(packet, { transport: "udp", hostname, port: port & 0xffff }).catch(() => {});
  }

  #sendFrame(): void {
    this.#framesLeft--;
    const block = this.#nextBlock;
    const extended = this.#extendedIds;
    this.#nextBlock = extended ? block + 1 : block >= 0xffff ? 1 : block + 1;
    const width = this.registers.get(SimRegister.WIDTH) ?? 0;
    const height = this.registers.get(SimRegister.HEIGHT) ?? 0;
    const format = this.registers.get(SimRegister.PIXEL_FORMAT) ?? MONO8;
    let data = simFrameBytes(width, height, format, block);
    const chunked = (this.registers.get(SimRegister.CHUNK_MODE) ?? 0) !== 0;
    const timestamp = BigInt(Date.now()) * 1_000_000n;
    if (chunked) {
      const ts = new Uint8Array(8);
      new DataView(ts.buffer).setBigUint64(0, timestamp);
      data = encodeChunks([{ id: SIM_CHUNK_IMAGE, data }, { id: SIM_CHUNK_TIMESTAMP, data: ts }]);
      if (this.brokenChunks) new DataView(data.buffer).setUint32(data.length - 4, data.length);
    }
    const leader = imageLeader({
      payloadType: chunked ? 0x4001 : 1,
      timestamp,
      pixelFormat: format,
      width,
      height,
      ...this.leaderOverride,
    });
    const packetSize = (this.registers.get(Bootstrap.SCPS0) ?? 1500) & 0xffff;
    const packets = packetizeImage(block, leader, data, packetSize, {
      extended,
      chunkLength: chunked ? data.length : undefined,
    });
    this.#kept.set(block, packets);
    for (const old of this.#kept.keys()) if (this.#kept.size > 8) this.#kept.delete(old);
    for (let i = 0; i < this.junkPerFrame; i++) this.#sendStream(new Uint8Array([1, 2, 3]));
    packets.forEach((p, pid) => {
      if (!this.dropPacket(block, pid)) this.#sendStream(p);
    });
    this.framesSent.push(block);
    this.timestampsSent.push(timestamp);
  }

  /** Stops everything. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopStream();
    this.#gvcp.close();
    this.#gvsp.close();
    await this.#loop;
  }
}
