/**
 * Channel Access message framing: command codes, the 16/24-byte header codec, padding helpers,
 * message builders and a streaming reader that splits a TCP byte stream into messages.
 *
 * Pure functions over bytes (no I/O); used by the server (`ca/server.ts`) and by clients.
 * All integers are big-endian. See `/work/shared/specs/channel-access.md` §2 and §5.
 *
 * @module
 */

/** CA command codes (`caProto.h`). */
export const CMD = {
  VERSION: 0,
  EVENT_ADD: 1,
  EVENT_CANCEL: 2,
  READ: 3,
  WRITE: 4,
  SNAPSHOT: 5,
  SEARCH: 6,
  BUILD: 7,
  EVENTS_OFF: 8,
  EVENTS_ON: 9,
  READ_SYNC: 10,
  ERROR: 11,
  CLEAR_CHANNEL: 12,
  RSRV_IS_UP: 13,
  NOT_FOUND: 14,
  READ_NOTIFY: 15,
  READ_BUILD: 16,
  REPEATER_CONFIRM: 17,
  CREATE_CHAN: 18,
  WRITE_NOTIFY: 19,
  CLIENT_NAME: 20,
  HOST_NAME: 21,
  ACCESS_RIGHTS: 22,
  ECHO: 23,
  REPEATER_REGISTER: 24,
  SIGNAL: 25,
  CREATE_CH_FAIL: 26,
  SERVER_DISCONN: 27,
} as const;

/** Protocol minor version this implementation speaks (4.13). */
export const CA_MINOR_VERSION = 13;

/** SEARCH `type` flag: the server must not answer unknown names. */
export const DONT_REPLY = 5;
/** SEARCH `type` flag: the server answers unknown names with NOT_FOUND (TCP only). */
export const DO_REPLY = 10;

/** Event mask bits of EVENT_ADD (`caeventmask.h`). */
export const DBE = { VALUE: 1, LOG: 2, ALARM: 4, PROPERTY: 8 } as const;

/** Access rights bits of ACCESS_RIGHTS. */
export const ACCESS = { READ: 1, WRITE: 2 } as const;

/** SEARCH reply / beacon `p1`: "use the datagram's source address". */
export const ADDRESS_FROM_SOURCE = 0xffffffff;

/** Header length of the standard form. */
export const SHORT_HEADER = 16;
/** Header length of the extended (large array) form. */
export const EXTENDED_HEADER = 24;

/** One decoded CA header. `size` is the payload length in bytes (padded, as on the wire). */
export interface CaHeader {
  /** Command code ({@link CMD}). */
  cmd: number;
  /** Payload size in bytes. */
  size: number;
  /** DBR type or command-specific field (u16). */
  type: number;
  /** Element count or command-specific field (u16, or u32 in the extended form). */
  count: number;
  /** Parameter 1 (u32). */
  p1: number;
  /** Parameter 2 (u32). */
  p2: number;
}

/** A complete message: header and payload (owned by the receiver; `size` bytes). */
export interface CaMessage {
  /** The header. */
  header: CaHeader;
  /** Length of the header on the wire (16 or 24). */
  headerLength: number;
  /** The payload bytes (exactly `header.size` bytes). */
  payload: Uint8Array;
}

/** Raised for input that violates the framing rules (the circuit should be closed). */
export class CaProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CaProtocolError";
  }
}

/** Rounds `n` up to the next multiple of 8. */
export function padded(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** Whether a header with these size/count values needs the 24-byte extended form. */
export function needsExtended(size: number, count: number): boolean {
  return size >= 0xffff || count >= 0xffff;
}

/** Header length (16 or 24) that {@link encodeHeader} uses for `h`. */
export function headerLength(h: Pick<CaHeader, "size" | "count">): number {
  return needsExtended(h.size, h.count) ? EXTENDED_HEADER : SHORT_HEADER;
}

/**
 * Writes `h` into `out` at `offset` (a new array of {@link headerLength} bytes if `out` is not
 * given) and returns `out`. Uses the extended form exactly when size or count is ≥ 0xFFFF.
 */
export function encodeHeader(h: CaHeader, out?: Uint8Array, offset = 0): Uint8Array {
  const length = headerLength(h);
  const target = out ?? new Uint8Array(length);
  const view = new DataView(target.buffer, target.byteOffset + offset, length);
  view.setUint16(0, h.cmd);
  view.setUint16(4, h.type);
  view.setUint32(8, h.p1 >>> 0);
  view.setUint32(12, h.p2 >>> 0);
  if (length === EXTENDED_HEADER) {
    view.setUint16(2, 0xffff);
    view.setUint16(6, 0);
    view.setUint32(16, h.size >>> 0);
    view.setUint32(20, h.count >>> 0);
  } else {
    view.setUint16(2, h.size);
    view.setUint16(6, h.count);
  }
  return target;
}

/**
 * Decodes the header at `offset`. Returns `undefined` when fewer bytes than the header needs are
 * available (16, or 24 when the size field is 0xFFFF).
 */
export function decodeHeader(
  bytes: Uint8Array,
  offset = 0,
): { header: CaHeader; headerLength: number } | undefined {
  if (bytes.length - offset < SHORT_HEADER) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset);
  const size16 = view.getUint16(2);
  const header: CaHeader = {
    cmd: view.getUint16(0),
    size: size16,
    type: view.getUint16(4),
    count: view.getUint16(6),
    p1: view.getUint32(8),
    p2: view.getUint32(12),
  };
  if (size16 !== 0xffff) return { header, headerLength: SHORT_HEADER };
  if (bytes.length - offset < EXTENDED_HEADER) return undefined;
  header.size = view.getUint32(16);
  header.count = view.getUint32(20);
  return { header, headerLength: EXTENDED_HEADER };
}

/**
 * Builds one complete message: header plus `payload` zero-padded to a multiple of 8. `size` is
 * computed from the payload; `count` defaults to 0.
 */
export function encodeMessage(
  fields: Omit<CaHeader, "size" | "count"> & { count?: number },
  payload?: Uint8Array,
): Uint8Array {
  const size = payload ? padded(payload.length) : 0;
  const header: CaHeader = { ...fields, count: fields.count ?? 0, size };
  const hl = headerLength(header);
  const out = new Uint8Array(hl + size);
  encodeHeader(header, out, 0);
  if (payload) out.set(payload, hl);
  return out;
}

const latin1 = new TextDecoder("latin1");

/** Encodes text as Latin-1 bytes with a NUL terminator, zero-padded to a multiple of 8. */
export function encodeCString(text: string): Uint8Array {
  const out = new Uint8Array(padded(text.length + 1));
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out[i] = c > 255 ? 0x3f : c;
  }
  return out;
}

/** Decodes Latin-1 text up to the first NUL (or the end of `bytes`). */
export function decodeCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return latin1.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

// ---- message builders -------------------------------------------------------------------------

/** VERSION message. TCP: `type` = priority (client) or 0 (server); UDP: `type=1`, `p1=seq`. */
export function versionMessage(type = 0, sequence = 0, minor = CA_MINOR_VERSION): Uint8Array {
  return encodeMessage({ cmd: CMD.VERSION, type, count: minor, p1: sequence, p2: 0 });
}

/** SEARCH request (client side): name search for `cid`. */
export function searchRequest(name: string, cid: number, reply = DONT_REPLY): Uint8Array {
  return encodeMessage(
    { cmd: CMD.SEARCH, type: reply, count: CA_MINOR_VERSION, p1: cid, p2: cid },
    encodeCString(name),
  );
}

/** UDP SEARCH reply: server TCP port, `p1`=address (default: use source), 8-byte minor payload. */
export function searchReplyUdp(
  tcpPort: number,
  cid: number,
  address = ADDRESS_FROM_SOURCE,
): Uint8Array {
  const payload = new Uint8Array(8);
  payload[1] = CA_MINOR_VERSION;
  return encodeMessage(
    { cmd: CMD.SEARCH, type: tcpPort, count: 0, p1: address, p2: cid },
    payload,
  );
}

/** TCP SEARCH reply (no payload). */
export function searchReplyTcp(tcpPort: number, cid: number): Uint8Array {
  return encodeMessage({ cmd: CMD.SEARCH, type: tcpPort, p1: ADDRESS_FROM_SOURCE, p2: cid });
}

/** NOT_FOUND reply to a TCP SEARCH with DO_REPLY (echoes the request's fields). */
export function notFoundMessage(request: CaHeader): Uint8Array {
  return encodeMessage({
    cmd: CMD.NOT_FOUND,
    type: request.type,
    count: request.count,
    p1: request.p1,
    p2: request.p2,
  });
}

/** RSRV_IS_UP beacon. */
export function beaconMessage(tcpPort: number, sequence: number, address = 0): Uint8Array {
  return encodeMessage({
    cmd: CMD.RSRV_IS_UP,
    type: CA_MINOR_VERSION,
    count: tcpPort,
    p1: sequence,
    p2: address,
  });
}

/** ACCESS_RIGHTS for channel `cid` (bit 0 read, bit 1 write). */
export function accessRightsMessage(cid: number, rights: number): Uint8Array {
  return encodeMessage({ cmd: CMD.ACCESS_RIGHTS, type: 0, p1: cid, p2: rights });
}

/** CREATE_CHAN request (client side). */
export function createChanRequest(name: string, cid: number): Uint8Array {
  return encodeMessage(
    { cmd: CMD.CREATE_CHAN, type: 0, p1: cid, p2: CA_MINOR_VERSION },
    encodeCString(name),
  );
}

/** CREATE_CHAN reply: native DBF type and count, CID, SID. Uses the extended form if needed. */
export function createChanReply(
  nativeType: number,
  nativeCount: number,
  cid: number,
  sid: number,
): Uint8Array {
  return encodeMessage({
    cmd: CMD.CREATE_CHAN,
    type: nativeType,
    count: nativeCount,
    p1: cid,
    p2: sid,
  });
}

/** CREATE_CH_FAIL for an unknown name. */
export function createChFailMessage(cid: number): Uint8Array {
  return encodeMessage({ cmd: CMD.CREATE_CH_FAIL, type: 0, p1: cid, p2: 0 });
}

/** SERVER_DISCONN: the channel `cid` vanished. */
export function serverDisconnMessage(cid: number): Uint8Array {
  return encodeMessage({ cmd: CMD.SERVER_DISCONN, type: 0, p1: cid, p2: 0 });
}

/** CLEAR_CHANNEL request or echo (`p1`=SID, `p2`=CID). */
export function clearChannelMessage(sid: number, cid: number): Uint8Array {
  return encodeMessage({ cmd: CMD.CLEAR_CHANNEL, type: 0, p1: sid, p2: cid });
}

/** CLIENT_NAME (user) or HOST_NAME message (client side). */
export function nameMessage(cmd: typeof CMD.CLIENT_NAME | typeof CMD.HOST_NAME, text: string) {
  return encodeMessage({ cmd, type: 0, p1: 0, p2: 0 }, encodeCString(text));
}

/** READ_NOTIFY request (client side). */
export function readNotifyRequest(type: number, count: number, sid: number, ioid: number) {
  return encodeMessage({ cmd: CMD.READ_NOTIFY, type, count, p1: sid, p2: ioid });
}

/** EVENT_ADD request (client side) with the 16-byte mask payload. */
export function eventAddRequest(
  type: number,
  count: number,
  sid: number,
  subid: number,
  mask: number,
): Uint8Array {
  const payload = new Uint8Array(16);
  new DataView(payload.buffer).setUint16(12, mask);
  return encodeMessage({ cmd: CMD.EVENT_ADD, type, count, p1: sid, p2: subid }, payload);
}

/** EVENT_CANCEL request (client side). */
export function eventCancelRequest(type: number, count: number, sid: number, subid: number) {
  return encodeMessage({ cmd: CMD.EVENT_CANCEL, type, count, p1: sid, p2: subid });
}

/** WRITE (`p2`=CID) or WRITE_NOTIFY (`p2`=IOID) request with an encoded DBR payload. */
export function writeRequest(
  cmd: typeof CMD.WRITE | typeof CMD.WRITE_NOTIFY,
  type: number,
  count: number,
  sid: number,
  p2: number,
  payload: Uint8Array,
): Uint8Array {
  return encodeMessage({ cmd, type, count, p1: sid, p2 }, payload);
}

/** ECHO message. */
export function echoMessage(): Uint8Array {
  return encodeMessage({ cmd: CMD.ECHO, type: 0, p1: 0, p2: 0 });
}

/**
 * ERROR message: `p1` = CID (or 0xFFFFFFFF), `p2` = ECA status; payload = the original request
 * header followed by a NUL-terminated text.
 */
export function caErrorMessage(
  request: CaHeader,
  cid: number,
  status: number,
  text: string,
): Uint8Array {
  const original = encodeHeader(request);
  const body = encodeCString(text);
  const payload = new Uint8Array(original.length + body.length);
  payload.set(original, 0);
  payload.set(body, original.length);
  return encodeMessage({ cmd: CMD.ERROR, type: 0, p1: cid, p2: status }, payload);
}

/** Header of a reply that echoes a request header (ECHO, READ_SYNC, CLEAR_CHANNEL). */
export function echoHeader(request: CaHeader, payload?: Uint8Array): Uint8Array {
  const header: CaHeader = { ...request, size: payload ? padded(payload.length) : 0 };
  const hl = headerLength(header);
  const out = new Uint8Array(hl + header.size);
  encodeHeader(header, out);
  if (payload) out.set(payload, hl);
  return out;
}

// ---- streaming reader -------------------------------------------------------------------------

/** Options of {@link MessageReader}. */
export interface MessageReaderOptions {
  /**
   * Largest payload accepted, as a number or per header (checked before any allocation).
   * Default 16384.
   */
  maxPayload?: number | ((header: CaHeader) => number);
  /** Reject payload sizes that are not a multiple of 8 (rsrv and libca do). Default true. */
  requireAligned?: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * Splits a byte stream into {@link CaMessage}s. Feed chunks with {@link MessageReader.push}; it
 * returns every message completed by the chunk. Payloads are owned copies (a big payload is
 * assembled in one buffer of exactly its size, allocated after the size check).
 * Throws {@link CaProtocolError} on an oversized or misaligned payload; the stream is then unusable.
 */
export class MessageReader {
  /** Header bytes split across chunks (allocated on the first split header). */
  #head: Uint8Array | undefined;
  #headFill = 0;
  #current: CaMessage | undefined;
  #filled = 0;
  #maxPayload: number | ((header: CaHeader) => number);
  #requireAligned: boolean;

  constructor(options: MessageReaderOptions = {}) {
    this.#maxPayload = options.maxPayload ?? 16384;
    this.#requireAligned = options.requireAligned ?? true;
  }

  /** Bytes of an incomplete message currently buffered (header and payload). */
  get buffered(): number {
    return this.#headFill + this.#filled;
  }

  /** Whether the reader sits between messages (no partial message buffered). */
  get idle(): boolean {
    return this.#headFill === 0 && this.#current === undefined;
  }

  /** Consumes `chunk` and returns the messages it completed, in order. */
  push(chunk: Uint8Array): CaMessage[] {
    const out: CaMessage[] = [];
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      const current = this.#current;
      if (current) {
        const take = Math.min(current.header.size - this.#filled, n - pos);
        current.payload.set(chunk.subarray(pos, pos + take), this.#filled);
        this.#filled += take;
        pos += take;
        if (this.#filled === current.header.size) {
          out.push(current);
          this.#current = undefined;
          this.#filled = 0;
        }
        continue;
      }
      let decoded: { header: CaHeader; headerLength: number } | undefined;
      if (this.#headFill === 0) {
        decoded = decodeHeader(chunk, pos);
        if (decoded) pos += decoded.headerLength;
      }
      if (!decoded) {
        // Slow path: accumulate header bytes across chunks.
        const need = this.#headFill < SHORT_HEADER ? SHORT_HEADER : EXTENDED_HEADER;
        const take = Math.min(need - this.#headFill, n - pos);
        const head = this.#head ??= new Uint8Array(EXTENDED_HEADER);
        head.set(chunk.subarray(pos, pos + take), this.#headFill);
        this.#headFill += take;
        pos += take;
        decoded = decodeHeader(head.subarray(0, this.#headFill));
        if (!decoded) continue;
        this.#headFill = 0;
      }
      const { header, headerLength } = decoded;
      this.#check(header);
      if (header.size === 0) {
        out.push({ header, headerLength, payload: EMPTY });
        continue;
      }
      if (n - pos >= header.size) {
        out.push({ header, headerLength, payload: chunk.slice(pos, pos + header.size) });
        pos += header.size;
        continue;
      }
      this.#current = { header, headerLength, payload: new Uint8Array(header.size) };
      this.#filled = 0;
    }
    return out;
  }

  #check(header: CaHeader): void {
    const max = typeof this.#maxPayload === "number" ? this.#maxPayload : this.#maxPayload(header);
    if (header.size > max) {
      throw new CaProtocolError(
        `payload of ${header.size} bytes exceeds limit ${max} (cmd ${header.cmd})`,
      );
    }
    if (this.#requireAligned && header.size % 8 !== 0) {
      throw new CaProtocolError(`misaligned payload size ${header.size} (cmd ${header.cmd})`);
    }
  }
}

/** Iterates the messages of one UDP datagram; stops at a truncated or oversized message. */
export function* datagramMessages(datagram: Uint8Array): Generator<CaMessage> {
  let pos = 0;
  while (pos < datagram.length) {
    const decoded = decodeHeader(datagram, pos);
    if (!decoded) return;
    const start = pos + decoded.headerLength;
    const end = start + decoded.header.size;
    if (end > datagram.length) return;
    yield { ...decoded, payload: datagram.subarray(start, end) };
    pos = end;
  }
}
