/**
 * GVSP (GigE Vision Streaming Protocol) codec: packet headers with standard (16-bit block, 24-bit
 * packet) and extended (64-bit block, 32-bit packet) ids, image leaders and trailers. Decoders
 * throw {@link GvspFormatError} on anything short or inconsistent. Encoders serve simulators,
 * benchmarks and tests. Big-endian throughout.
 *
 * @module
 */

/** Packet formats (low 4 bits of byte 4). */
export const GvspFormat = { LEADER: 1, TRAILER: 2, PAYLOAD: 3, ALL_IN: 4 } as const;

/** Status of a retransmitted packet. */
export const STATUS_PACKET_RESEND = 0x0100;

/** Bytes of IP + UDP + standard GVSP header subtracted from SCPS to get data per packet. */
export const STANDARD_OVERHEAD = 36;
/** Same with the 20-byte extended-id header. */
export const EXTENDED_OVERHEAD = 48;

/** A packet that is not valid GVSP. */
export class GvspFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GvspFormatError";
  }
}

/** A decoded GVSP header (reused by the hot path: fields are overwritten per packet). */
export interface GvspHeader {
  /** Status (standard: 0x0100 marks a resent packet; 0x8xxx an error packet). */
  status: number;
  /** Block id (frame number); 16-bit for standard ids. */
  blockId: number;
  /** Packet format ({@link GvspFormat}). */
  format: number;
  packetId: number;
  /** Extended-id header (20 bytes) instead of 8. */
  extended: boolean;
  /** Offset of the body in the packet (8 or 20). */
  headerLength: number;
  /** A retransmission: status 0x0100, or flag 0x0001 of an extended header. */
  resent: boolean;
}

/** A fresh header object to decode into. */
export function newGvspHeader(): GvspHeader {
  return {
    status: 0,
    blockId: 0,
    format: 0,
    packetId: 0,
    extended: false,
    headerLength: 8,
    resent: false,
  };
}

/**
 * Decodes the header of `packet` into `out` (no allocation) and returns it. Extended 64-bit block
 * ids above 2^53 are rejected.
 */
export function decodeGvspHeader(
  packet: Uint8Array,
  out: GvspHeader = newGvspHeader(),
): GvspHeader {
  return decodeGvspHeaderAt(packet, 0, packet.length, out);
}

/**
 * Decodes the header of the `length`-byte packet at `start` of `bytes` into `out` (no
 * allocation, no view): the receive path decodes packets where they landed in a frame buffer.
 */
export function decodeGvspHeaderAt(
  bytes: Uint8Array,
  start: number,
  length: number,
  out: GvspHeader,
): GvspHeader {
  if (length < 8) throw new GvspFormatError(`GVSP packet of ${length} bytes < 8`);
  const b4 = bytes[start + 4];
  out.status = (bytes[start] << 8) | bytes[start + 1];
  out.format = b4 & 0x0f;
  if ((b4 & 0x80) === 0) {
    out.extended = false;
    out.headerLength = 8;
    out.blockId = (bytes[start + 2] << 8) | bytes[start + 3];
    out.packetId = (bytes[start + 5] << 16) | (bytes[start + 6] << 8) | bytes[start + 7];
    out.resent = out.status === STATUS_PACKET_RESEND;
  } else {
    if (length < 20) throw new GvspFormatError(`extended GVSP packet of ${length} bytes < 20`);
    const high = readUint32(bytes, start + 8);
    if (high > 0x1fffff) throw new GvspFormatError("64-bit block id beyond 2^53");
    out.extended = true;
    out.headerLength = 20;
    out.blockId = high * 0x100000000 + readUint32(bytes, start + 12);
    out.packetId = readUint32(bytes, start + 16);
    out.resent = (bytes[start + 3] & 0x01) !== 0 || out.status === STATUS_PACKET_RESEND;
  }
  if (out.format < GvspFormat.LEADER || out.format > 8) {
    throw new GvspFormatError(`GVSP packet format ${out.format} unknown`);
  }
  return out;
}

/** Big-endian u32 at `at` of `bytes`, as a non-negative number. */
function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) >>> 0) + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
}

/** An image leader. */
export interface ImageLeader {
  payloadType: number;
  timestamp: bigint;
  pixelFormat: number;
  width: number;
  height: number;
  offsetX: number;
  offsetY: number;
  paddingX: number;
  paddingY: number;
}

/** An image leader with `fields` over the defaults: Mono8, 0×0, no offsets or padding. */
export function imageLeader(fields: Partial<ImageLeader>): ImageLeader {
  return {
    payloadType: PAYLOAD_IMAGE,
    timestamp: 0n,
    pixelFormat: 0x01080001,
    width: 0,
    height: 0,
    offsetX: 0,
    offsetY: 0,
    paddingX: 0,
    paddingY: 0,
    ...fields,
  };
}

/** Payload type "image" (after masking the chunk flag 0x4000). */
export const PAYLOAD_IMAGE = 0x0001;
/** Payload type "extended chunk" (GEV 1.x, deprecated): an image leader, chunks in the payload. */
export const PAYLOAD_EXTENDED_CHUNK = 0x0005;
/** Payload type flag "with chunks" (GEV 2.0): e.g. 0x4001 = image with chunks. */
export const PAYLOAD_CHUNK_FLAG = 0x4000;

/** Whether a payload of this leader type carries chunks (the image being the first one). */
export function payloadHasChunks(payloadType: number): boolean {
  return (payloadType & PAYLOAD_CHUNK_FLAG) !== 0 ||
    (payloadType & 0x3fff) === PAYLOAD_EXTENDED_CHUNK;
}

/**
 * Decodes a leader body (after the header): image (0x0001, 0x4001 with chunks) or extended chunk
 * (0x0005), which share the image layout. Other payload types throw, naming the type.
 */
export function decodeImageLeader(body: Uint8Array): ImageLeader {
  if (body.length < 12) throw new GvspFormatError(`leader of ${body.length} bytes < 12`);
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const payloadType = dv.getUint16(2);
  const base = payloadType & 0x3fff;
  if (base !== PAYLOAD_IMAGE && base !== PAYLOAD_EXTENDED_CHUNK) {
    throw new GvspFormatError(`leader payload type 0x${payloadType.toString(16)} is not an image`);
  }
  if (body.length < 36) throw new GvspFormatError(`image leader of ${body.length} bytes < 36`);
  return {
    payloadType,
    timestamp: dv.getBigUint64(4),
    pixelFormat: dv.getUint32(12),
    width: dv.getUint32(16),
    height: dv.getUint32(20),
    offsetX: dv.getUint32(24),
    offsetY: dv.getUint32(28),
    paddingX: dv.getUint16(32),
    paddingY: dv.getUint16(34),
  };
}

/** A decoded trailer. */
export interface Trailer {
  payloadType: number;
  /** Effective lines (0 when the device does not say; the aravis fake sends 0). */
  sizeY: number;
  /** Chunk data payload length (types with the chunk flag; undefined when not given). */
  chunkLength?: number;
}

/** Decodes a trailer body. */
export function decodeTrailer(body: Uint8Array): Trailer {
  if (body.length < 4) throw new GvspFormatError(`trailer of ${body.length} bytes < 4`);
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const payloadType = dv.getUint16(2);
  const trailer: Trailer = { payloadType, sizeY: body.length >= 8 ? dv.getUint32(4) : 0 };
  if ((payloadType & PAYLOAD_CHUNK_FLAG) !== 0 && body.length >= 12) {
    trailer.chunkLength = dv.getUint32(8);
  }
  return trailer;
}

/** Options of the encoders. */
export interface GvspEncodeOptions {
  /** Status word (default 0; 0x0100 marks a resent packet). */
  status?: number;
  /** 20-byte extended-id header (64-bit block id, 32-bit packet id). */
  extended?: boolean;
  /** Trailer of an image with chunks: its chunk data payload length (payload type 0x4001). */
  chunkLength?: number;
}

function header(
  blockId: number,
  format: number,
  packetId: number,
  length: number,
  options: GvspEncodeOptions,
): Uint8Array {
  const status = options.status ?? 0;
  const hl = options.extended ? 20 : 8;
  const out = new Uint8Array(hl + length);
  out[0] = status >> 8;
  out[1] = status & 0xff;
  if (!options.extended) {
    out[2] = (blockId >> 8) & 0xff;
    out[3] = blockId & 0xff;
    out[4] = format;
    out[5] = (packetId >> 16) & 0xff;
    out[6] = (packetId >> 8) & 0xff;
    out[7] = packetId & 0xff;
    return out;
  }
  const dv = new DataView(out.buffer);
  if (status === STATUS_PACKET_RESEND) dv.setUint16(2, 0x0001);
  out[4] = 0x80 | format;
  dv.setUint32(8, Math.floor(blockId / 0x100000000));
  dv.setUint32(12, blockId >>> 0);
  dv.setUint32(16, packetId);
  return out;
}

/** Encodes an image leader (packet id 0). */
export function encodeImageLeader(
  blockId: number,
  leader: ImageLeader,
  options: GvspEncodeOptions = {},
): Uint8Array {
  const out = header(blockId, GvspFormat.LEADER, 0, 36, options);
  const dv = new DataView(out.buffer, out.length - 36);
  dv.setUint16(2, leader.payloadType);
  dv.setBigUint64(4, leader.timestamp);
  dv.setUint32(12, leader.pixelFormat);
  dv.setUint32(16, leader.width);
  dv.setUint32(20, leader.height);
  dv.setUint32(24, leader.offsetX);
  dv.setUint32(28, leader.offsetY);
  dv.setUint16(32, leader.paddingX);
  dv.setUint16(34, leader.paddingY);
  return out;
}

/** Encodes a payload packet carrying `data`. */
export function encodePayload(
  blockId: number,
  packetId: number,
  data: Uint8Array,
  options: GvspEncodeOptions = {},
): Uint8Array {
  const out = header(blockId, GvspFormat.PAYLOAD, packetId, data.length, options);
  out.set(data, out.length - data.length);
  return out;
}

/** Encodes an image trailer. */
export function encodeTrailer(
  blockId: number,
  packetId: number,
  sizeY: number,
  options: GvspEncodeOptions = {},
): Uint8Array {
  const chunks = options.chunkLength !== undefined;
  const out = header(blockId, GvspFormat.TRAILER, packetId, chunks ? 16 : 8, options);
  const dv = new DataView(out.buffer, out.length - (chunks ? 16 : 8));
  dv.setUint16(2, chunks ? PAYLOAD_IMAGE | PAYLOAD_CHUNK_FLAG : PAYLOAD_IMAGE);
  dv.setUint32(4, sizeY);
  if (chunks) dv.setUint32(8, options.chunkLength!);
  return out;
}

/**
 * Splits one image into GVSP packets (leader, payloads of `packetSize − 36` bytes — `− 48` with
 * extended ids —, trailer) the way a camera sends it.
 */
export function packetizeImage(
  blockId: number,
  leader: ImageLeader,
  data: Uint8Array,
  packetSize: number,
  options: GvspEncodeOptions = {},
): Uint8Array[] {
  const per = packetSize - (options.extended ? EXTENDED_OVERHEAD : STANDARD_OVERHEAD);
  if (per <= 0) throw new RangeError(`packet size ${packetSize} leaves no room for data`);
  const packets = [encodeImageLeader(blockId, leader, options)];
  let pid = 1;
  for (let at = 0; at < data.length; at += per) {
    packets.push(
      encodePayload(blockId, pid++, data.subarray(at, Math.min(data.length, at + per)), options),
    );
  }
  packets.push(encodeTrailer(blockId, pid, leader.height, options));
  return packets;
}
