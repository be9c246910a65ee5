/**
 * pvAccess message framing (spec §1): the 8-byte header, command codes, control messages,
 * segment reassembly ({@link MessageFramer}) and builders for outgoing messages. No I/O.
 *
 * @module
 */

import { PvaProtocolError, WireReader, WireWriter } from "./wire.ts";

/** Header magic byte. */
export const PVA_MAGIC = 0xca;
/** Protocol version we send. */
export const PVA_VERSION = 2;
/** Header length. */
export const HEADER_SIZE = 8;

/** Header flag bits (§1.1). */
export const Flags = {
  CONTROL: 0x01,
  SEGMENT_MASK: 0x30,
  SEGMENT_FIRST: 0x10,
  SEGMENT_LAST: 0x20,
  SEGMENT_MIDDLE: 0x30,
  SERVER: 0x40,
  BIG_ENDIAN: 0x80,
} as const;

/** Application command codes (§1.2). */
export const Cmd = {
  BEACON: 0x00,
  CONNECTION_VALIDATION: 0x01,
  ECHO: 0x02,
  SEARCH: 0x03,
  SEARCH_RESPONSE: 0x04,
  AUTHNZ: 0x05,
  ACL_CHANGE: 0x06,
  CREATE_CHANNEL: 0x07,
  DESTROY_CHANNEL: 0x08,
  CONNECTION_VALIDATED: 0x09,
  GET: 0x0a,
  PUT: 0x0b,
  PUT_GET: 0x0c,
  MONITOR: 0x0d,
  ARRAY: 0x0e,
  DESTROY_REQUEST: 0x0f,
  PROCESS: 0x10,
  GET_FIELD: 0x11,
  MESSAGE: 0x12,
  RPC: 0x14,
  CANCEL_REQUEST: 0x15,
  ORIGIN_TAG: 0x16,
} as const;

/** Control command codes (§1.4). */
export const Ctrl = {
  SET_MARKER: 0x00,
  ACK_MARKER: 0x01,
  SET_BYTE_ORDER: 0x02,
  ECHO_REQUEST: 0x03,
  ECHO_RESPONSE: 0x04,
} as const;

/** Subcommand bits of GET/PUT/MONITOR/RPC (§6.5). */
export const Sub = {
  INIT: 0x08,
  DESTROY: 0x10,
  GET: 0x40,
  PROCESS: 0x04,
  PIPELINE: 0x80,
} as const;

/** A decoded header. */
export interface Header {
  flags: number;
  command: number;
  /** Payload length (application) or control value. */
  size: number;
}

/** Whether `flags` say big-endian. */
export function isBigEndian(flags: number): boolean {
  return (flags & Flags.BIG_ENDIAN) !== 0;
}

/** Decodes the 8-byte header at `at`; throws on bad magic or version 0. */
export function decodeHeader(bytes: Uint8Array, at = 0): Header {
  if (bytes.length - at < HEADER_SIZE) throw new PvaProtocolError("truncated header");
  if (bytes[at] !== PVA_MAGIC) {
    throw new PvaProtocolError(`bad magic 0x${bytes[at].toString(16)}`);
  }
  if (bytes[at + 1] === 0) throw new PvaProtocolError("protocol version 0");
  const flags = bytes[at + 2];
  const view = new DataView(bytes.buffer, bytes.byteOffset + at + 4, 4);
  return { flags, command: bytes[at + 3], size: view.getUint32(0, !isBigEndian(flags)) };
}

/** A complete application message (segments joined). */
export interface Message {
  command: number;
  flags: number;
  /** Payload (a view; valid until the next call into the framer). */
  payload: Uint8Array;
  /** The payload is a large message's own buffer (from the framer's allocator). */
  owned: boolean;
  /** A reader over the payload in the message's own byte order. */
  reader(): WireReader;
}

function makeMessage(
  command: number,
  flags: number,
  payload: Uint8Array,
  owned = false,
): Message {
  return {
    command,
    flags,
    payload,
    owned,
    reader: () => new WireReader(payload, !isBigEndian(flags), owned),
  };
}

/** Payloads at least this long are received into a buffer of their own (no second copy). */
const LARGE_MESSAGE = 64 * 1024;

/** A control message (header only). */
export interface ControlMessage {
  command: number;
  flags: number;
  value: number;
}

/** Options of {@link MessageFramer}. */
export interface FramerOptions {
  /** True on the server side: received messages must not have the server bit. */
  server: boolean;
  /** Largest accepted message payload (segments joined), bytes. */
  maxMessage: number;
  /**
   * Provides the buffer a large message (≥ 64 KiB, unsegmented) is received into; default a new
   * `Uint8Array(size)`. A recycling allocator (see {@link LargeMessagePool}) may hand out a buffer
   * again once the previous message from it was handled.
   */
  allocate?: (size: number) => Uint8Array;
}

/**
 * Recycles the buffers of large received messages: {@link allocate} hands out the spare buffer
 * (grown when too small) and {@link recycle} takes a handled message's buffer back. Whatever was
 * decoded as a view of a recycled buffer is overwritten by the next large message, so the owner
 * recycles only once nothing refers to the message any more.
 *
 * It also keeps the pixels aligned: a numeric array must start at a multiple of its element size
 * to be viewed in place, and in an NTNDArray update it does not (its offset in the message
 * follows the variable-length fields before it). {@link recycle} learns from the decoder by how
 * much the largest array was off, and later messages start that many bytes earlier in their
 * buffer (0–7 bytes of padding), so updates of the same layout decode with no move at all.
 */
export class LargeMessagePool {
  #spare: ArrayBuffer | undefined;
  #pad = 0;

  /** Offset (0–7) at which the next message starts in its buffer. */
  get pad(): number {
    return this.#pad;
  }

  /** A buffer of exactly `size` bytes: a view at the learned padding offset of a spare buffer. */
  allocate(size: number): Uint8Array {
    const spare = this.#spare;
    if (spare !== undefined && spare.byteLength >= size + this.#pad) {
      this.#spare = undefined;
      return new Uint8Array(spare, this.#pad, size);
    }
    // Room for the padding and a few more bytes (later updates differ slightly in size).
    const capacity = Math.ceil((size + 8 + 1) / LARGE_MESSAGE) * LARGE_MESSAGE;
    return new Uint8Array(new ArrayBuffer(capacity), this.#pad, size);
  }

  /**
   * Takes back the buffer under `payload` (keeps the larger of it and the current spare).
   * `misalignment` is the decoder's {@link WireReader.misalignment} for this message: when not 0,
   * later messages start that much earlier (mod 8) so that the same array lands aligned.
   */
  recycle(payload: Uint8Array, misalignment = 0): void {
    const buffer = payload.buffer as ArrayBuffer;
    if (misalignment > 0) this.#pad = (((payload.byteOffset - misalignment) % 8) + 8) % 8;
    if (this.#spare === undefined || buffer.byteLength > this.#spare.byteLength) {
      this.#spare = buffer;
    }
  }
}

/**
 * Splits a TCP byte stream into messages: skips and reports control messages, reassembles
 * segments, enforces direction bit and size limit. Throws {@link PvaProtocolError} on violation.
 */
export class MessageFramer {
  #opts: FramerOptions;
  #buf = new Uint8Array(0);
  #start = 0;
  #end = 0;
  #segments: Uint8Array[] | undefined;
  #segmentCommand = -1;
  #segmentBytes = 0;
  /** A large unsegmented message being received into its own buffer. */
  #large: { command: number; flags: number; payload: Uint8Array; filled: number } | undefined;

  constructor(options: FramerOptions) {
    this.#opts = options;
  }

  /** Bytes buffered but not yet parsed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * The not yet received part of a large message's own buffer, or undefined when none is pending:
   * a reader may read straight into it (then call {@link received}) instead of {@link push}ing.
   */
  receiveWindow(): Uint8Array | undefined {
    const large = this.#large;
    if (large === undefined || large.filled === large.payload.length) return undefined;
    return large.payload.subarray(large.filled);
  }

  /** `n` bytes were read straight into the {@link receiveWindow}. */
  received(n: number): void {
    const large = this.#large;
    if (large === undefined || large.filled + n > large.payload.length) {
      throw new RangeError("received() beyond the receive window");
    }
    large.filled += n;
  }

  /** Appends received bytes. */
  push(bytes: Uint8Array): void {
    const large = this.#large;
    if (large !== undefined && large.filled < large.payload.length) {
      const n = Math.min(bytes.length, large.payload.length - large.filled);
      large.payload.set(bytes.subarray(0, n), large.filled);
      large.filled += n;
      bytes = bytes.subarray(n);
      if (bytes.length === 0) return;
    }
    if (this.#end + bytes.length > this.#buf.length) {
      const have = this.#end - this.#start;
      const need = have + bytes.length;
      if (need <= this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const next = new Uint8Array(Math.max(need, this.#buf.length * 2, 65536));
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      }
      this.#start = 0;
      this.#end = have;
    }
    this.#buf.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /**
   * Next complete message or control message, or undefined when more bytes are needed.
   * Returned payloads are views valid until the next {@link push}.
   */
  next(): Message | ControlMessage | undefined {
    for (;;) {
      const large = this.#large;
      if (large !== undefined) {
        if (large.filled < large.payload.length) return undefined;
        this.#large = undefined;
        return makeMessage(large.command, large.flags, large.payload, true);
      }
      if (this.#end - this.#start < HEADER_SIZE) return undefined;
      const h = decodeHeader(this.#buf, this.#start);
      const fromServer = (h.flags & Flags.SERVER) !== 0;
      if (fromServer === this.#opts.server) {
        throw new PvaProtocolError("wrong direction bit");
      }
      if (h.flags & Flags.CONTROL) {
        this.#start += HEADER_SIZE;
        return { command: h.command, flags: h.flags, value: h.size };
      }
      const seg = h.flags & Flags.SEGMENT_MASK;
      const total = seg === 0 ? h.size : this.#segmentBytes + h.size;
      if (h.size > this.#opts.maxMessage || total > this.#opts.maxMessage) {
        throw new PvaProtocolError(
          `message of ${total} bytes exceeds the limit of ${this.#opts.maxMessage}`,
        );
      }
      if (this.#end - this.#start < HEADER_SIZE + h.size) {
        if (seg !== 0 || h.size < LARGE_MESSAGE) return undefined;
        // Large message: receive the rest straight into its own buffer.
        const payload = this.#opts.allocate?.(h.size) ?? new Uint8Array(h.size);
        const have = this.#buf.subarray(this.#start + HEADER_SIZE, this.#end);
        payload.set(have);
        this.#large = { command: h.command, flags: h.flags, payload, filled: have.length };
        this.#start = this.#end = 0;
        return undefined;
      }
      const payload = this.#buf.subarray(
        this.#start + HEADER_SIZE,
        this.#start + HEADER_SIZE + h.size,
      );
      this.#start += HEADER_SIZE + h.size;
      if (this.#start === this.#end) this.#start = this.#end = 0;
      if (seg === 0) {
        if (this.#segments) throw new PvaProtocolError("unsegmented message inside a segment");
        if (h.size >= LARGE_MESSAGE && this.#opts.allocate !== undefined) {
          // Already buffered whole: still handed over in an allocator buffer (the one copy
          // the decoder would otherwise make into a fresh array).
          const own = this.#opts.allocate(h.size);
          own.set(payload);
          return makeMessage(h.command, h.flags, own, true);
        }
        return makeMessage(h.command, h.flags, payload);
      }
      if (seg === Flags.SEGMENT_FIRST) {
        if (this.#segments) throw new PvaProtocolError("first segment while one is open");
        this.#segments = [payload.slice()];
        this.#segmentCommand = h.command;
        this.#segmentBytes = h.size;
        continue;
      }
      if (!this.#segments) throw new PvaProtocolError("continuation without a first segment");
      if (h.command !== this.#segmentCommand) {
        throw new PvaProtocolError("segment command changed");
      }
      this.#segments.push(payload.slice());
      this.#segmentBytes += h.size;
      if (seg === Flags.SEGMENT_MIDDLE) continue;
      const joined = new Uint8Array(this.#segmentBytes);
      let at = 0;
      for (const s of this.#segments) {
        joined.set(s, at);
        at += s.length;
      }
      this.#segments = undefined;
      this.#segmentBytes = 0;
      return makeMessage(h.command, h.flags & ~Flags.SEGMENT_MASK, joined);
    }
  }
}

/** Whether a framer result is a control message. */
export function isControl(m: Message | ControlMessage): m is ControlMessage {
  return !("payload" in m);
}

/**
 * Starts an application message: returns a writer with the header reserved. Call
 * {@link endMessage} to fill in the size.
 */
export function beginMessage(
  w: WireWriter,
  command: number,
  server: boolean,
): number {
  const at = w.length;
  w.u8(PVA_MAGIC).u8(PVA_VERSION)
    .u8((server ? Flags.SERVER : 0) | (w.littleEndian ? 0 : Flags.BIG_ENDIAN))
    .u8(command).u32(0);
  return at;
}

/** Fills in the payload size of the message started at `at`. */
export function endMessage(w: WireWriter, at: number): void {
  w.patchU32(at + 4, w.length - at - HEADER_SIZE);
}

/** One complete application message as bytes. */
export function buildMessage(
  command: number,
  server: boolean,
  littleEndian: boolean,
  body: (w: WireWriter) => void,
): Uint8Array {
  const w = new WireWriter(littleEndian);
  const at = beginMessage(w, command, server);
  body(w);
  endMessage(w, at);
  return w.toBytes();
}

/** A control message (8 bytes). */
export function controlMessage(
  command: number,
  server: boolean,
  littleEndian: boolean,
  value = 0,
): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  out[0] = PVA_MAGIC;
  out[1] = PVA_VERSION;
  out[2] = Flags.CONTROL | (server ? Flags.SERVER : 0) | (littleEndian ? 0 : Flags.BIG_ENDIAN);
  out[3] = command;
  new DataView(out.buffer).setUint32(4, value, littleEndian);
  return out;
}
