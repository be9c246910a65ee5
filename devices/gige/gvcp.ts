/**
 * GVCP (GigE Vision Control Protocol) codec: command and acknowledge headers, the payloads of
 * DISCOVERY, READREG, WRITEREG, READMEM, WRITEMEM and PACKETRESEND, status names and the bootstrap
 * register addresses. Bytes in, bytes out; no I/O. All integers are big-endian.
 *
 * @module
 */

/** UDP port of GVCP on a device. */
export const GVCP_PORT = 3956;
/** First byte of every GVCP command. */
export const GVCP_KEY = 0x42;
/** Largest GVCP UDP payload (576-byte IP datagram). */
export const GVCP_MAX_PACKET = 548;
/** Largest READMEM/WRITEMEM chunk we use. */
export const GVCP_MEM_CHUNK = 512;

/** Command codes (the acknowledge is the code + 1). */
export const GvcpCommand = {
  DISCOVERY: 0x0002,
  FORCEIP: 0x0004,
  PACKETRESEND: 0x0040,
  READREG: 0x0080,
  WRITEREG: 0x0082,
  READMEM: 0x0084,
  WRITEMEM: 0x0086,
  EVENT: 0x00c0,
} as const;

/** Acknowledge code a device sends while it needs more time. */
export const PENDING_ACK = 0x0089;

/** Flag bit of a command: acknowledge required. */
export const FLAG_ACK_REQUIRED = 0x01;
/** Flag bit of DISCOVERY: allow broadcast acknowledge. */
export const FLAG_ALLOW_BROADCAST_ACK = 0x10;
/** Flag bit of PACKETRESEND (and events): 64-bit block id, 32-bit packet ids (20-byte payload). */
export const FLAG_EXTENDED_ID = 0x10;
/** GVSP configuration bit (register 0x0960): 64-bit block ids / extended-id headers on. */
export const GVSP_CONFIG_EXTENDED_ID = 0x40000000;

/** Bootstrap register addresses (channel 0 for stream channel registers). */
export const Bootstrap = {
  VERSION: 0x0000,
  DEVICE_MODE: 0x0004,
  CURRENT_IP: 0x0024,
  FIRST_URL: 0x0200,
  SECOND_URL: 0x0400,
  STREAM_CHANNELS: 0x0904,
  GVCP_CAPABILITY: 0x0934,
  HEARTBEAT_TIMEOUT: 0x0938,
  TICK_FREQUENCY_HIGH: 0x093c,
  TICK_FREQUENCY_LOW: 0x0940,
  GVCP_CONFIGURATION: 0x0954,
  GVSP_CONFIGURATION: 0x0960,
  CCP: 0x0a00,
  SCP0: 0x0d00,
  SCPS0: 0x0d04,
  SCPD0: 0x0d08,
  SCDA0: 0x0d18,
  SCSP0: 0x0d1c,
} as const;

/** CCP values: control access (others may read) and exclusive access. */
export const CCP_CONTROL = 0x2;
/** Exclusive access bit of CCP. */
export const CCP_EXCLUSIVE = 0x1;

/** GVCP capability bits (register 0x0934). */
export const Capability = {
  CONCATENATION: 0x01,
  WRITEMEM: 0x02,
  PACKETRESEND: 0x04,
  PENDING_ACK: 0x20,
} as const;

/** Status code names (GVCP acknowledges and GVSP packets). */
export const STATUS_NAMES: Readonly<Record<number, string>> = {
  0x0000: "SUCCESS",
  0x0100: "PACKET_RESEND",
  0x8001: "NOT_IMPLEMENTED",
  0x8002: "INVALID_PARAMETER",
  0x8003: "INVALID_ADDRESS",
  0x8004: "WRITE_PROTECT",
  0x8005: "BAD_ALIGNMENT",
  0x8006: "ACCESS_DENIED",
  0x8007: "BUSY",
  0x800c: "PACKET_UNAVAILABLE",
  0x800d: "DATA_OVERRUN",
  0x800e: "INVALID_HEADER",
  0x8010: "PACKET_NOT_YET_AVAILABLE",
  0x8011: "PACKET_AND_PREV_REMOVED_FROM_MEMORY",
  0x8012: "PACKET_REMOVED_FROM_MEMORY",
  0x8fff: "ERROR",
};

/** `NAME (0x8006)` for a status code. */
export function statusText(status: number): string {
  const hex = "0x" + status.toString(16).padStart(4, "0");
  const name = STATUS_NAMES[status];
  return name === undefined ? hex : `${name} (${hex})`;
}

/** A decoded acknowledge. */
export interface GvcpAck {
  status: number;
  ack: number;
  ackId: number;
  /** Payload bytes (a view into the packet). */
  payload: Uint8Array;
}

/** A decoded command (what a device sees). */
export interface GvcpCmd {
  flags: number;
  command: number;
  reqId: number;
  payload: Uint8Array;
}

/** A packet that is not a valid GVCP message. */
export class GvcpFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GvcpFormatError";
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodes a command: 8-byte header then `payload`. */
export function encodeCommand(
  command: number,
  reqId: number,
  payload: Uint8Array = new Uint8Array(0),
  flags = FLAG_ACK_REQUIRED,
): Uint8Array {
  if (payload.length > GVCP_MAX_PACKET - 8) {
    throw new RangeError(`GVCP payload of ${payload.length} bytes exceeds ${GVCP_MAX_PACKET - 8}`);
  }
  const out = new Uint8Array(8 + payload.length);
  const dv = view(out);
  dv.setUint8(0, GVCP_KEY);
  dv.setUint8(1, flags);
  dv.setUint16(2, command);
  dv.setUint16(4, payload.length);
  dv.setUint16(6, reqId);
  out.set(payload, 8);
  return out;
}

/** Encodes an acknowledge (used by simulators and tests). */
export function encodeAck(
  status: number,
  ack: number,
  ackId: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  const dv = view(out);
  dv.setUint16(0, status);
  dv.setUint16(2, ack);
  dv.setUint16(4, payload.length);
  dv.setUint16(6, ackId);
  out.set(payload, 8);
  return out;
}

/** Decodes an acknowledge; throws {@link GvcpFormatError} when short or inconsistent. */
export function decodeAck(packet: Uint8Array): GvcpAck {
  if (packet.length < 8) throw new GvcpFormatError(`ack of ${packet.length} bytes < 8`);
  const dv = view(packet);
  const length = dv.getUint16(4);
  if (8 + length > packet.length) {
    throw new GvcpFormatError(`ack announces ${length} payload bytes, has ${packet.length - 8}`);
  }
  return {
    status: dv.getUint16(0),
    ack: dv.getUint16(2),
    ackId: dv.getUint16(6),
    payload: packet.subarray(8, 8 + length),
  };
}

/** Decodes a command; throws {@link GvcpFormatError} when it is not one. */
export function decodeCommand(packet: Uint8Array): GvcpCmd {
  if (packet.length < 8) throw new GvcpFormatError(`command of ${packet.length} bytes < 8`);
  const dv = view(packet);
  if (dv.getUint8(0) !== GVCP_KEY) throw new GvcpFormatError("command key is not 0x42");
  const length = dv.getUint16(4);
  if (8 + length > packet.length) {
    throw new GvcpFormatError(`command announces ${length} bytes, has ${packet.length - 8}`);
  }
  return {
    flags: dv.getUint8(1),
    command: dv.getUint16(2),
    reqId: dv.getUint16(6),
    payload: packet.subarray(8, 8 + length),
  };
}

/** Payload of READREG: the addresses. */
export function readRegPayload(addresses: readonly number[]): Uint8Array {
  const out = new Uint8Array(4 * addresses.length);
  const dv = view(out);
  addresses.forEach((a, i) => dv.setUint32(4 * i, a));
  return out;
}

/** Payload of WRITEREG: (address, value) pairs. */
export function writeRegPayload(pairs: readonly (readonly [number, number])[]): Uint8Array {
  const out = new Uint8Array(8 * pairs.length);
  const dv = view(out);
  pairs.forEach(([a, v], i) => {
    dv.setUint32(8 * i, a);
    dv.setUint32(8 * i + 4, v >>> 0);
  });
  return out;
}

/** Payload of READMEM: address, reserved, count. */
export function readMemPayload(address: number, count: number): Uint8Array {
  const out = new Uint8Array(8);
  const dv = view(out);
  dv.setUint32(0, address);
  dv.setUint16(6, count);
  return out;
}

/** Payload of WRITEMEM: address then data. */
export function writeMemPayload(address: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + data.length);
  view(out).setUint32(0, address);
  out.set(data, 4);
  return out;
}

/**
 * Payload of PACKETRESEND for stream channel `channel`: standard ids (12 bytes: 16-bit block id,
 * 24-bit packet ids), or with `extended` (send with {@link FLAG_EXTENDED_ID}) 20 bytes: channel,
 * reserved, 32-bit first and last packet id, 64-bit block id.
 */
export function packetResendPayload(
  blockId: number,
  firstPacket: number,
  lastPacket: number,
  channel = 0,
  extended = false,
): Uint8Array {
  const out = new Uint8Array(extended ? 20 : 12);
  const dv = view(out);
  dv.setUint16(0, channel);
  if (extended) {
    dv.setUint32(4, firstPacket >>> 0);
    dv.setUint32(8, lastPacket >>> 0);
    dv.setUint32(12, Math.floor(blockId / 0x100000000));
    dv.setUint32(16, blockId >>> 0);
    return out;
  }
  dv.setUint16(2, blockId & 0xffff);
  dv.setUint32(4, firstPacket & 0xffffff);
  dv.setUint32(8, lastPacket & 0xffffff);
  return out;
}

/** Decoded PACKETRESEND payload. */
export interface PacketResend {
  channel: number;
  blockId: number;
  firstPacket: number;
  lastPacket: number;
  /** The 20-byte extended-id form. */
  extended: boolean;
}

/**
 * Decodes a PACKETRESEND payload; `flags` of the command tell the extended-id form
 * ({@link FLAG_EXTENDED_ID}). 64-bit block ids beyond 2^53 are refused.
 */
export function decodePacketResend(payload: Uint8Array, flags = 0): PacketResend {
  const extended = (flags & FLAG_EXTENDED_ID) !== 0;
  const need = extended ? 20 : 12;
  if (payload.length < need) {
    throw new GvcpFormatError(`PACKETRESEND of ${payload.length} bytes < ${need}`);
  }
  const dv = view(payload);
  if (extended) {
    const high = dv.getUint32(12);
    if (high > 0x1fffff) throw new GvcpFormatError("PACKETRESEND block id beyond 2^53");
    return {
      channel: dv.getUint16(0),
      blockId: high * 0x100000000 + dv.getUint32(16),
      firstPacket: dv.getUint32(4),
      lastPacket: dv.getUint32(8),
      extended,
    };
  }
  return {
    channel: dv.getUint16(0),
    blockId: dv.getUint16(2),
    firstPacket: dv.getUint32(4) & 0xffffff,
    lastPacket: dv.getUint32(8) & 0xffffff,
    extended,
  };
}

/** Values of a READREG acknowledge. */
export function decodeReadRegAck(payload: Uint8Array): number[] {
  if (payload.length % 4 !== 0) throw new GvcpFormatError("READREG ack not a multiple of 4");
  const dv = view(payload);
  const out: number[] = [];
  for (let i = 0; i < payload.length; i += 4) out.push(dv.getUint32(i));
  return out;
}

/** Data of a READMEM acknowledge (after checking the echoed address). */
export function decodeReadMemAck(payload: Uint8Array, address: number): Uint8Array {
  if (payload.length < 4) throw new GvcpFormatError("READMEM ack shorter than its address");
  const echoed = view(payload).getUint32(0);
  if (echoed !== address >>> 0) {
    throw new GvcpFormatError(
      `READMEM ack for 0x${echoed.toString(16)}, asked 0x${address.toString(16)}`,
    );
  }
  return payload.subarray(4);
}

/** Device identity from a DISCOVERY acknowledge (a copy of bootstrap 0x0000–0x00F7). */
export interface DiscoveryInfo {
  versionMajor: number;
  versionMinor: number;
  deviceMode: number;
  mac: string;
  ip: string;
  manufacturer: string;
  model: string;
  deviceVersion: string;
  manufacturerInfo: string;
  serial: string;
  userName: string;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end)).trim();
}

/** Formats a big-endian IPv4 integer as dotted text. */
export function ipv4Text(value: number): string {
  return [24, 16, 8, 0].map((s) => (value >>> s) & 0xff).join(".");
}

/** Parses dotted IPv4 text into a big-endian integer; throws when it is not one. */
export function ipv4Value(text: string): number {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new RangeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0) >>> 0;
}

/** Decodes a DISCOVERY acknowledge payload (248 bytes). */
export function decodeDiscoveryAck(payload: Uint8Array): DiscoveryInfo {
  if (payload.length < 0xf8) {
    throw new GvcpFormatError(`DISCOVERY ack payload of ${payload.length} bytes < 248`);
  }
  const dv = view(payload);
  const mac = Array.from(payload.subarray(0x0a, 0x10), (b) => b.toString(16).padStart(2, "0"))
    .join(":");
  return {
    versionMajor: dv.getUint16(0),
    versionMinor: dv.getUint16(2),
    deviceMode: dv.getUint32(4),
    mac,
    ip: ipv4Text(dv.getUint32(0x24)),
    manufacturer: cString(payload.subarray(0x48, 0x68)),
    model: cString(payload.subarray(0x68, 0x88)),
    deviceVersion: cString(payload.subarray(0x88, 0xa8)),
    manufacturerInfo: cString(payload.subarray(0xa8, 0xd8)),
    serial: cString(payload.subarray(0xd8, 0xe8)),
    userName: cString(payload.subarray(0xe8, 0xf8)),
  };
}
