/**
 * ZMTP 3.0/3.1 protocol core (no I/O): greeting, NULL-mechanism handshake, frames, multipart
 * messages and commands (READY, ERROR, PING/PONG), for PUSH/PULL peers.
 *
 * {@link ZmtpDecoder} turns received bytes into events; {@link ZmtpSession} adds the handshake and
 * the policy of one connection (validate the peer's greeting and socket type, answer PINGs,
 * refuse messages before READY). Sizes from the wire are checked against limits before a body is
 * allocated, so a hostile `2^63` length never allocates. Socket adapters live in `zmtp_socket.ts`.
 *
 * @module
 */

import { concatBytes } from "../../core/bytes.ts";

/** Thrown on any protocol violation; the connection must be closed. */
export class ZmtpError extends Error {
  /** Creates an error describing the violation. */
  constructor(message: string) {
    super(message);
    this.name = "ZmtpError";
  }
}

/** ZMTP socket types (RFC 23 names as sent in `Socket-Type`). */
export type SocketType =
  | "PUSH"
  | "PULL"
  | "REQ"
  | "REP"
  | "DEALER"
  | "ROUTER"
  | "PUB"
  | "SUB"
  | "XPUB"
  | "XSUB"
  | "PAIR";

/** Length of a ZMTP 3 greeting in bytes. */
export const GREETING_BYTES = 64;

/** Frame flag: more frames of this message follow. */
export const FLAG_MORE = 0x01;
/** Frame flag: 8-byte size field. */
export const FLAG_LONG = 0x02;
/** Frame flag: command frame. */
export const FLAG_COMMAND = 0x04;

const ascii = new TextEncoder();
const asciiDec = new TextDecoder();
const NULL_MECHANISM = (() => {
  const m = new Uint8Array(20);
  m.set(ascii.encode("NULL"));
  return m;
})();

/** Builds our 64-byte greeting: signature, version 3.`minor`, mechanism NULL, as-server 0. */
export function encodeGreeting(minor = 1): Uint8Array {
  const g = new Uint8Array(GREETING_BYTES);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = minor;
  g.set(NULL_MECHANISM, 12);
  return g;
}

/** What a peer's greeting announced. */
export interface Greeting {
  major: number;
  minor: number;
  mechanism: string;
  asServer: boolean;
}

/**
 * Validates a (possibly partial) greeting prefix as early as possible; throws {@link ZmtpError}
 * when the first `bytes.length` bytes already show a bad peer (ZMTP 1.0/2.0, not NULL).
 */
export function checkGreetingPrefix(bytes: Uint8Array): void {
  if (bytes.length > 0 && bytes[0] !== 0xff) throw new ZmtpError("not a ZMTP 3 peer (signature)");
  if (bytes.length > 9 && (bytes[9] & 1) === 0) {
    throw new ZmtpError("not a ZMTP 3 peer (ZMTP 1.0 signature)");
  }
  if (bytes.length > 10 && bytes[10] < 3) {
    throw new ZmtpError(`unsupported ZMTP version ${bytes[10]}`);
  }
  if (bytes.length >= 32) {
    for (let i = 0; i < 20; i++) {
      if (bytes[12 + i] !== NULL_MECHANISM[i]) {
        const name = asciiDec.decode(bytes.subarray(12, 32)).replace(/\0+$/, "");
        throw new ZmtpError(`unsupported security mechanism "${name}"`);
      }
    }
  }
}

/** Parses and validates a complete 64-byte greeting (NULL mechanism only). */
export function parseGreeting(bytes: Uint8Array): Greeting {
  if (bytes.length !== GREETING_BYTES) throw new ZmtpError("greeting must be 64 bytes");
  checkGreetingPrefix(bytes);
  return {
    major: bytes[10],
    minor: bytes[11],
    mechanism: "NULL",
    asServer: bytes[32] !== 0,
  };
}

/** Encodes a frame header for a body of `size` bytes (short form up to 255 bytes). */
export function encodeFrameHeader(size: number, more: boolean, command = false): Uint8Array {
  const flags = (more ? FLAG_MORE : 0) | (command ? FLAG_COMMAND : 0);
  if (size <= 255) return Uint8Array.of(flags, size);
  const h = new Uint8Array(9);
  h[0] = flags | FLAG_LONG;
  new DataView(h.buffer).setBigUint64(1, BigInt(size));
  return h;
}

/** Encodes one whole frame (header + body) into a new buffer. */
export function encodeFrame(body: Uint8Array, more: boolean, command = false): Uint8Array {
  const h = encodeFrameHeader(body.length, more, command);
  const out = new Uint8Array(h.length + body.length);
  out.set(h);
  out.set(body, h.length);
  return out;
}

/** A frame body to send: one array, or pieces written one after the other (not copied). */
export type FrameBody = Uint8Array | readonly Uint8Array[];

/** Length of a frame body in bytes. */
export function frameBodyLength(body: FrameBody): number {
  if (body instanceof Uint8Array) return body.length;
  let n = 0;
  for (const piece of body) n += piece.length;
  return n;
}

/**
 * Encodes a multipart message as a list of buffers to write in order. Small messages become one
 * buffer; large frame bodies (and the pieces of a body given in pieces) are passed through
 * without copying.
 */
export function encodeMessage(frames: readonly FrameBody[]): Uint8Array[] {
  if (frames.length === 0) throw new ZmtpError("a message needs at least one frame");
  let total = 0;
  for (const f of frames) total += frameBodyLength(f) + 9;
  const pieces = (f: FrameBody) => f instanceof Uint8Array ? [f] : f;
  if (total <= 65536) {
    const out = new Uint8Array(total);
    let o = 0;
    frames.forEach((f, i) => {
      const h = encodeFrameHeader(frameBodyLength(f), i < frames.length - 1);
      out.set(h, o);
      o += h.length;
      for (const piece of pieces(f)) {
        out.set(piece, o);
        o += piece.length;
      }
    });
    return [out.subarray(0, o)];
  }
  const parts: Uint8Array[] = [];
  frames.forEach((f, i) => {
    parts.push(encodeFrameHeader(frameBodyLength(f), i < frames.length - 1));
    for (const piece of pieces(f)) if (piece.length > 0) parts.push(piece);
  });
  return parts;
}

/** Encodes a command frame `name` + `data`. */
export function encodeCommand(name: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const n = ascii.encode(name);
  if (n.length === 0 || n.length > 255) throw new ZmtpError("invalid command name");
  const body = new Uint8Array(1 + n.length + data.length);
  body[0] = n.length;
  body.set(n, 1);
  body.set(data, 1 + n.length);
  return encodeFrame(body, false, true);
}

/** Encodes a READY command carrying metadata properties (e.g. `Socket-Type`). */
export function encodeReady(props: Record<string, string | Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, value] of Object.entries(props)) {
    const n = ascii.encode(name);
    const v = typeof value === "string" ? ascii.encode(value) : value;
    if (n.length === 0 || n.length > 255) throw new ZmtpError("invalid property name");
    const p = new Uint8Array(1 + n.length + 4 + v.length);
    p[0] = n.length;
    p.set(n, 1);
    new DataView(p.buffer).setUint32(1 + n.length, v.length);
    p.set(v, 5 + n.length);
    parts.push(p);
  }
  return encodeCommand("READY", concatBytes(parts));
}

/** Encodes a PING command (`ttl` in deciseconds, context up to 16 bytes). */
export function encodePing(
  ttlDeciseconds = 0,
  context: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const d = new Uint8Array(2 + context.length);
  d[0] = ttlDeciseconds >>> 8;
  d[1] = ttlDeciseconds;
  d.set(context, 2);
  return encodeCommand("PING", d);
}

/** Encodes a PONG command echoing a PING's context. */
export function encodePong(context: Uint8Array): Uint8Array {
  return encodeCommand("PONG", context);
}

/** Encodes an ERROR command with a printable reason (≤ 255 bytes). */
export function encodeError(reason: string): Uint8Array {
  const r = ascii.encode(reason).subarray(0, 255);
  const d = new Uint8Array(1 + r.length);
  d[0] = r.length;
  d.set(r, 1);
  return encodeCommand("ERROR", d);
}

/** A parsed command frame. */
export interface Command {
  name: string;
  data: Uint8Array;
}

/** Splits a command frame body into name and data. */
export function parseCommand(body: Uint8Array): Command {
  if (body.length < 1) throw new ZmtpError("empty command frame");
  const n = body[0];
  if (n === 0 || 1 + n > body.length) throw new ZmtpError("bad command name length");
  return { name: asciiDec.decode(body.subarray(1, 1 + n)), data: body.subarray(1 + n) };
}

/** Parses READY metadata into a map keyed by lower-case property name. */
export function parseMetadata(data: Uint8Array): Map<string, Uint8Array> {
  const props = new Map<string, Uint8Array>();
  let i = 0;
  while (i < data.length) {
    const n = data[i];
    if (n === 0 || i + 1 + n + 4 > data.length) throw new ZmtpError("malformed READY metadata");
    const name = asciiDec.decode(data.subarray(i + 1, i + 1 + n)).toLowerCase();
    i += 1 + n;
    const vlen = ((data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]) >>> 0;
    i += 4;
    if (vlen > data.length - i) throw new ZmtpError("malformed READY metadata value");
    props.set(name, data.subarray(i, i + vlen));
    i += vlen;
  }
  return props;
}

/** Events produced by {@link ZmtpDecoder}. */
export type ZmtpEvent =
  | { type: "greeting"; greeting: Greeting }
  | { type: "command"; command: Command }
  | { type: "message"; frames: Uint8Array[] };

/** Limits of a {@link ZmtpDecoder}. */
export interface DecoderLimits {
  /** Largest message (sum of frame bodies) accepted; default 256 MiB. */
  maxMessageBytes?: number;
  /** Most frames in one message; default 10 000. */
  maxFrames?: number;
  /** Largest command frame body; default 64 KiB. */
  maxCommandBytes?: number;
  /**
   * Where frame bodies are received: a view of exactly `size` bytes that the decoder fills and
   * hands on in its message (e.g. from a pool of recycled receive buffers). Default: a new array.
   */
  allocate?: (size: number) => Uint8Array;
}

const DIRECT_READ_MIN = 16384;

/**
 * Incremental ZMTP 3 byte decoder: greeting, then frames. Feed received bytes with
 * {@link ZmtpDecoder.push}; for large bodies, read straight into {@link ZmtpDecoder.directTarget}
 * and report with {@link ZmtpDecoder.directFilled} (saves one copy of image data).
 */
export class ZmtpDecoder {
  readonly #maxMessage: number;
  readonly #maxFrames: number;
  readonly #maxCommand: number;
  readonly #allocate: (size: number) => Uint8Array;
  #greeting: Uint8Array | null = new Uint8Array(GREETING_BYTES);
  #greetingLen = 0;
  readonly #header = new Uint8Array(9);
  #headerLen = 0;
  #body: Uint8Array | null = null;
  #bodyLen = 0;
  #flags = 0;
  #frames: Uint8Array[] = [];
  #messageBytes = 0;

  /** Creates a decoder that expects the peer's greeting first. */
  constructor(limits: DecoderLimits = {}) {
    this.#maxMessage = limits.maxMessageBytes ?? 256 * 1024 * 1024;
    this.#maxFrames = limits.maxFrames ?? 10000;
    this.#maxCommand = limits.maxCommandBytes ?? 65536;
    this.#allocate = limits.allocate ?? ((size) => new Uint8Array(size));
  }

  /** Decodes `chunk` (copied as needed; the caller may reuse it afterwards). */
  push(chunk: Uint8Array): ZmtpEvent[] {
    const events: ZmtpEvent[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.#greeting) {
        const n = Math.min(GREETING_BYTES - this.#greetingLen, chunk.length - i);
        this.#greeting.set(chunk.subarray(i, i + n), this.#greetingLen);
        this.#greetingLen += n;
        i += n;
        checkGreetingPrefix(this.#greeting.subarray(0, this.#greetingLen));
        if (this.#greetingLen === GREETING_BYTES) {
          events.push({ type: "greeting", greeting: parseGreeting(this.#greeting) });
          this.#greeting = null;
        }
      } else if (this.#body) {
        const n = Math.min(this.#body.length - this.#bodyLen, chunk.length - i);
        this.#body.set(chunk.subarray(i, i + n), this.#bodyLen);
        this.#bodyLen += n;
        i += n;
        if (this.#bodyLen === this.#body.length) this.#finishFrame(events);
      } else {
        this.#header[this.#headerLen++] = chunk[i++];
        const flags = this.#header[0];
        if (this.#headerLen === 1 && (flags & 0xf8) !== 0) {
          throw new ZmtpError(`reserved frame flag bits set (0x${flags.toString(16)})`);
        }
        const need = flags & FLAG_LONG ? 9 : 2;
        if (this.#headerLen === need) {
          this.#headerLen = 0;
          this.#startFrame(flags, events);
        }
      }
    }
    return events;
  }

  /** Where to read the rest of a large frame body directly, or `undefined`. */
  directTarget(): Uint8Array | undefined {
    if (!this.#body) return undefined;
    const rest = this.#body.length - this.#bodyLen;
    return rest >= DIRECT_READ_MIN ? this.#body.subarray(this.#bodyLen) : undefined;
  }

  /** Reports that `n` bytes were read into {@link ZmtpDecoder.directTarget}. */
  directFilled(n: number): ZmtpEvent[] {
    const events: ZmtpEvent[] = [];
    if (!this.#body || n > this.#body.length - this.#bodyLen) {
      throw new ZmtpError("directFilled without a matching direct target");
    }
    this.#bodyLen += n;
    if (this.#bodyLen === this.#body.length) this.#finishFrame(events);
    return events;
  }

  #startFrame(flags: number, events: ZmtpEvent[]): void {
    let size: number;
    if (flags & FLAG_LONG) {
      const v = new DataView(this.#header.buffer, 1, 8).getBigUint64(0);
      size = v > 0x7fffffffn ? Number.POSITIVE_INFINITY : Number(v);
    } else {
      size = this.#header[1];
    }
    const command = (flags & FLAG_COMMAND) !== 0;
    if (command) {
      if (flags & FLAG_MORE) throw new ZmtpError("command frame with MORE flag");
      if (this.#frames.length > 0) throw new ZmtpError("command inside a multipart message");
      if (size > this.#maxCommand) throw new ZmtpError(`command frame of ${size} bytes too large`);
    } else if (size > this.#maxMessage - this.#messageBytes) {
      throw new ZmtpError(`message larger than the limit of ${this.#maxMessage} bytes`);
    }
    this.#flags = flags;
    this.#body = this.#allocate(size);
    if (this.#body.length !== size) throw new ZmtpError("frame buffer of the wrong size");
    this.#bodyLen = 0;
    if (size === 0) this.#finishFrame(events);
  }

  #finishFrame(events: ZmtpEvent[]): void {
    const body = this.#body!;
    this.#body = null;
    if (this.#flags & FLAG_COMMAND) {
      events.push({ type: "command", command: parseCommand(body) });
      return;
    }
    this.#frames.push(body);
    this.#messageBytes += body.length;
    if (this.#flags & FLAG_MORE) {
      if (this.#frames.length >= this.#maxFrames) throw new ZmtpError("too many frames in message");
      return;
    }
    events.push({ type: "message", frames: this.#frames });
    this.#frames = [];
    this.#messageBytes = 0;
  }
}

/** Options of a {@link ZmtpSession}. */
export interface SessionOptions extends DecoderLimits {
  /** Our socket type, sent in READY. */
  socketType: SocketType;
  /** Peer socket types accepted (default: the matching pipeline peer, PUSH↔PULL). */
  accept?: SocketType[];
  /** Minor version we announce (default 1 = ZMTP 3.1). */
  minor?: number;
}

/** What a session wants done after receiving bytes. */
export interface SessionOutput {
  /** Bytes to write to the peer (PONG replies), in order. */
  send: Uint8Array[];
  /** Complete messages received. */
  messages: Uint8Array[][];
  /** True once, when the handshake completed with this input. */
  readyNow: boolean;
}

/**
 * One ZMTP connection's protocol state with NULL security. Write {@link ZmtpSession.start}'s bytes
 * first (greeting + READY at once, as libzmq tolerates); feed received bytes to
 * {@link ZmtpSession.receive}. Messages may be sent only once {@link ZmtpSession.ready} is true.
 */
export class ZmtpSession {
  readonly #decoder: ZmtpDecoder;
  readonly #opts: SessionOptions;
  #greeting: Greeting | undefined;
  #ready = false;
  #peerProps = new Map<string, Uint8Array>();

  /** Creates a session for one freshly opened connection. */
  constructor(opts: SessionOptions) {
    this.#opts = opts;
    this.#decoder = new ZmtpDecoder(opts);
  }

  /** Our greeting followed by our READY command. */
  start(): Uint8Array {
    const g = encodeGreeting(this.#opts.minor ?? 1);
    const r = encodeReady({ "Socket-Type": this.#opts.socketType });
    const out = new Uint8Array(g.length + r.length);
    out.set(g);
    out.set(r, g.length);
    return out;
  }

  /** Whether both READY commands have been exchanged. */
  get ready(): boolean {
    return this.#ready;
  }

  /** The peer's greeting, once received. */
  get peerGreeting(): Greeting | undefined {
    return this.#greeting;
  }

  /** The peer's READY metadata (lower-case names). */
  get peerMetadata(): ReadonlyMap<string, Uint8Array> {
    return this.#peerProps;
  }

  /** Processes received bytes; throws {@link ZmtpError} on any violation. */
  receive(chunk: Uint8Array): SessionOutput {
    return this.#handle(this.#decoder.push(chunk));
  }

  /** Where to read large frame bodies directly (see {@link ZmtpDecoder.directTarget}). */
  directTarget(): Uint8Array | undefined {
    return this.#decoder.directTarget();
  }

  /** Processes `n` bytes read into {@link ZmtpSession.directTarget}. */
  receiveDirect(n: number): SessionOutput {
    return this.#handle(this.#decoder.directFilled(n));
  }

  #handle(events: ZmtpEvent[]): SessionOutput {
    const out: SessionOutput = { send: [], messages: [], readyNow: false };
    for (const ev of events) {
      if (ev.type === "greeting") {
        this.#greeting = ev.greeting;
      } else if (ev.type === "command") {
        this.#command(ev.command, out);
      } else {
        if (!this.#ready) throw new ZmtpError("message before the handshake completed");
        out.messages.push(ev.frames);
      }
    }
    return out;
  }

  #command(cmd: Command, out: SessionOutput): void {
    if (!this.#ready) {
      if (cmd.name === "ERROR") {
        throw new ZmtpError(`peer refused the handshake: ${errorReason(cmd.data)}`);
      }
      if (cmd.name !== "READY") throw new ZmtpError(`expected READY, got ${cmd.name}`);
      const props = parseMetadata(cmd.data);
      const type = props.get("socket-type");
      if (type !== undefined) {
        const name = asciiDec.decode(type);
        const accept = this.#opts.accept ?? [peerTypeOf(this.#opts.socketType)];
        if (!accept.includes(name as SocketType)) {
          throw new ZmtpError(`incompatible peer socket type "${name}"`);
        }
      }
      this.#peerProps = props;
      this.#ready = true;
      out.readyNow = true;
      return;
    }
    switch (cmd.name) {
      case "PING": {
        if (cmd.data.length < 2 || cmd.data.length > 18) throw new ZmtpError("malformed PING");
        out.send.push(encodePong(cmd.data.slice(2)));
        break;
      }
      case "ERROR":
        throw new ZmtpError(`peer sent ERROR: ${errorReason(cmd.data)}`);
      case "READY":
        throw new ZmtpError("duplicate READY");
      default:
        break; // PONG, SUBSCRIBE, CANCEL, unknown: ignore
    }
  }
}

function errorReason(data: Uint8Array): string {
  if (data.length === 0) return "";
  return asciiDec.decode(data.subarray(1, 1 + Math.min(data[0], data.length - 1)));
}

function peerTypeOf(t: SocketType): SocketType {
  switch (t) {
    case "PUSH":
      return "PULL";
    case "PULL":
      return "PUSH";
    case "PUB":
      return "SUB";
    case "SUB":
      return "PUB";
    case "REQ":
      return "REP";
    case "REP":
      return "REQ";
    default:
      return t;
  }
}
