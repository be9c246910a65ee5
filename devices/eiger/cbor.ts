/**
 * A small, strict CBOR (RFC 8949) decoder and encoder for stream v2 messages.
 *
 * Decoding works over a `Uint8Array` with every length checked against the remaining input before
 * anything is allocated: byte strings are returned as zero-copy views, arrays and maps grow item by
 * item (each item needs at least one input byte, so a hostile count cannot allocate), nesting depth
 * is bounded. Maps decode to `Map` (keys of any type, no prototype pitfalls), tags to
 * {@link CborTag} — interpreting tags (typed arrays, 56500, dates) is the caller's job.
 *
 * @module
 */

import { concatBytes } from "../../core/bytes.ts";

/** Thrown on malformed, truncated or unsupported CBOR input. */
export class CborError extends Error {
  /** Creates an error; `offset` is the input position where decoding failed. */
  constructor(message: string, readonly offset = -1) {
    super(offset >= 0 ? `${message} at byte ${offset}` : message);
    this.name = "CborError";
  }
}

/** A tagged CBOR item: tag number and the single item it wraps. */
export class CborTag {
  /** Wraps `value` in tag `tag`. */
  constructor(readonly tag: number, readonly value: CborValue) {}
}

/** CBOR simple value `undefined` is mapped to JS `undefined`; other unassigned simples to this. */
export class CborSimple {
  /** Simple value number (0–255). */
  constructor(readonly value: number) {}
}

/** Any decoded CBOR item. Integers beyond 2^53 decode as `bigint`. */
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | CborValue[]
  | Map<CborValue, CborValue>
  | CborTag
  | CborSimple;

/** Options for {@link decodeCbor}. */
export interface CborDecodeOptions {
  /** Maximum nesting depth of arrays, maps and tags (default 64). */
  maxDepth?: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const BREAK = Symbol("break");

/** Decodes exactly one CBOR item filling all of `bytes`; trailing bytes are an error. */
export function decodeCbor(bytes: Uint8Array, opts: CborDecodeOptions = {}): CborValue {
  const r = new CborReader(bytes, opts.maxDepth ?? 64);
  const v = r.item(0);
  if (v === BREAK) throw new CborError("unexpected break", r.pos - 1);
  if (r.pos !== bytes.length) {
    throw new CborError(`${bytes.length - r.pos} trailing bytes after the item`, r.pos);
  }
  return v;
}

class CborReader {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly maxDepth: number) {}

  need(n: number): void {
    if (n > this.buf.length - this.pos) {
      throw new CborError(`truncated input (need ${n} more bytes)`, this.pos);
    }
  }

  /** Reads the argument of an initial byte with additional info `ai`; -1 = indefinite. */
  arg(ai: number): number | bigint {
    const b = this.buf;
    if (ai < 24) return ai;
    switch (ai) {
      case 24:
        this.need(1);
        return b[this.pos++];
      case 25: {
        this.need(2);
        const v = (b[this.pos] << 8) | b[this.pos + 1];
        this.pos += 2;
        return v;
      }
      case 26: {
        this.need(4);
        const v = ((b[this.pos] << 24) | (b[this.pos + 1] << 16) | (b[this.pos + 2] << 8) |
          b[this.pos + 3]) >>> 0;
        this.pos += 4;
        return v;
      }
      case 27: {
        this.need(8);
        const hi = ((b[this.pos] << 24) | (b[this.pos + 1] << 16) | (b[this.pos + 2] << 8) |
          b[this.pos + 3]) >>> 0;
        const lo = ((b[this.pos + 4] << 24) | (b[this.pos + 5] << 16) | (b[this.pos + 6] << 8) |
          b[this.pos + 7]) >>> 0;
        this.pos += 8;
        if (hi < 0x200000) return hi * 0x100000000 + lo;
        return (BigInt(hi) << 32n) | BigInt(lo);
      }
      case 31:
        return -1;
      default:
        throw new CborError(`reserved additional info ${ai}`, this.pos - 1);
    }
  }

  /** A length argument as a safe number (bigints are never valid lengths). */
  len(ai: number): number {
    const v = this.arg(ai);
    if (typeof v === "bigint") throw new CborError("length too large", this.pos);
    return v;
  }

  item(depth: number): CborValue | typeof BREAK {
    if (depth > this.maxDepth) throw new CborError("nesting too deep", this.pos);
    this.need(1);
    const ib = this.buf[this.pos++];
    const major = ib >>> 5;
    const ai = ib & 31;
    switch (major) {
      case 0: {
        const v = this.arg(ai);
        if (v === -1) throw new CborError("indefinite integer", this.pos - 1);
        return v;
      }
      case 1: {
        const v = this.arg(ai);
        if (v === -1) throw new CborError("indefinite integer", this.pos - 1);
        if (typeof v === "bigint") return -1n - v;
        return v < 0x1fffffffffffff ? -1 - v : -1n - BigInt(v);
      }
      case 2:
      case 3: {
        const n = this.len(ai);
        let bytes: Uint8Array;
        if (n === -1) {
          const parts: Uint8Array[] = [];
          for (;;) {
            this.need(1);
            if (this.buf[this.pos] === 0xff) {
              this.pos++;
              break;
            }
            const start = this.pos;
            const ib2 = this.buf[this.pos++];
            if (ib2 >>> 5 !== major) throw new CborError("bad chunk in indefinite string", start);
            const m = this.len(ib2 & 31);
            if (m === -1) throw new CborError("nested indefinite string", start);
            this.need(m);
            parts.push(this.buf.subarray(this.pos, this.pos + m));
            this.pos += m;
          }
          bytes = concatBytes(parts);
        } else {
          this.need(n);
          bytes = this.buf.subarray(this.pos, this.pos + n);
          this.pos += n;
        }
        if (major === 2) return bytes;
        try {
          return utf8.decode(bytes);
        } catch {
          throw new CborError("invalid UTF-8 in text string", this.pos);
        }
      }
      case 4: {
        const n = this.len(ai);
        const arr: CborValue[] = [];
        if (n === -1) {
          for (;;) {
            const v = this.item(depth + 1);
            if (v === BREAK) break;
            arr.push(v);
          }
        } else {
          // each item takes ≥ 1 byte: reject impossible counts before looping
          this.need(n);
          for (let i = 0; i < n; i++) arr.push(this.value(depth + 1));
        }
        return arr;
      }
      case 5: {
        const n = this.len(ai);
        const map = new Map<CborValue, CborValue>();
        if (n === -1) {
          for (;;) {
            const k = this.item(depth + 1);
            if (k === BREAK) break;
            map.set(k, this.value(depth + 1));
          }
        } else {
          this.need(2 * n);
          for (let i = 0; i < n; i++) {
            const k = this.value(depth + 1);
            map.set(k, this.value(depth + 1));
          }
        }
        return map;
      }
      case 6: {
        const t = this.arg(ai);
        if (t === -1) throw new CborError("indefinite tag", this.pos - 1);
        if (typeof t === "bigint") throw new CborError("tag number too large", this.pos);
        return new CborTag(t, this.value(depth + 1));
      }
      default:
        return this.simple(ai);
    }
  }

  value(depth: number): CborValue {
    const at = this.pos;
    const v = this.item(depth);
    if (v === BREAK) throw new CborError("unexpected break", at);
    return v;
  }

  simple(ai: number): CborValue | typeof BREAK {
    const b = this.buf;
    switch (ai) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 23:
        return undefined;
      case 24: {
        this.need(1);
        const v = b[this.pos++];
        if (v < 32) throw new CborError("invalid two-byte simple value", this.pos - 1);
        return new CborSimple(v);
      }
      case 25: {
        this.need(2);
        const v = decodeHalf((b[this.pos] << 8) | b[this.pos + 1]);
        this.pos += 2;
        return v;
      }
      case 26: {
        this.need(4);
        const v = new DataView(b.buffer, b.byteOffset + this.pos, 4).getFloat32(0);
        this.pos += 4;
        return v;
      }
      case 27: {
        this.need(8);
        const v = new DataView(b.buffer, b.byteOffset + this.pos, 8).getFloat64(0);
        this.pos += 8;
        return v;
      }
      case 31:
        return BREAK;
      default:
        if (ai < 20) return new CborSimple(ai);
        throw new CborError(`reserved simple value ${ai}`, this.pos - 1);
    }
  }
}

/** Converts an IEEE 754 binary16 bit pattern to a number. */
export function decodeHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** A value {@link encodeCbor} accepts: CBOR values plus plain objects (text-keyed maps). */
export type CborEncodable =
  | CborValue
  | CborFloat32
  | CborFloat64
  | CborEncodable[]
  | Map<CborEncodable, CborEncodable>
  | { [key: string]: CborEncodable };

/** Marks a number to be encoded as float32 (`fa`) instead of the default float64. */
export class CborFloat32 {
  /** Wraps `value`. */
  constructor(readonly value: number) {}
}

/** Marks a number to be encoded as float64 (`fb`) even when it is integral (CBOR Float fields). */
export class CborFloat64 {
  /** Wraps `value`. */
  constructor(readonly value: number) {}
}

const utf8enc = new TextEncoder();

/** Encodes `value` as CBOR (definite lengths, shortest integer arguments, floats as float64). */
export function encodeCbor(value: CborEncodable): Uint8Array {
  const w = new CborWriter();
  w.value(value, 0);
  return w.finish();
}

/**
 * Encodes `value` as CBOR like {@link encodeCbor}, as pieces to write in order: byte strings over
 * 1 KiB are not copied but referenced where they lie (e.g. a pre-compressed image payload).
 */
export function encodeCborParts(value: CborEncodable): Uint8Array[] {
  const w = new CborWriter();
  w.value(value, 0);
  w.flush();
  return w.chunks;
}

class CborWriter {
  chunks: Uint8Array[] = [];
  buf = new Uint8Array(4096);
  pos = 0;

  ensure(n: number): void {
    if (this.buf.length - this.pos >= n) return;
    this.flush();
    if (this.buf.length < n) this.buf = new Uint8Array(n);
  }

  flush(): void {
    if (this.pos > 0) {
      this.chunks.push(this.buf.slice(0, this.pos));
      this.pos = 0;
    }
  }

  head(major: number, n: number | bigint): void {
    this.ensure(9);
    const b = this.buf;
    const m = major << 5;
    if (typeof n === "bigint") {
      b[this.pos++] = m | 27;
      new DataView(b.buffer, this.pos, 8).setBigUint64(0, n);
      this.pos += 8;
    } else if (n < 24) {
      b[this.pos++] = m | n;
    } else if (n < 0x100) {
      b[this.pos++] = m | 24;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos++] = m | 25;
      b[this.pos++] = n >>> 8;
      b[this.pos++] = n;
    } else if (n < 0x100000000) {
      b[this.pos++] = m | 26;
      new DataView(b.buffer, this.pos, 4).setUint32(0, n);
      this.pos += 4;
    } else {
      b[this.pos++] = m | 27;
      new DataView(b.buffer, this.pos, 8).setBigUint64(0, BigInt(n));
      this.pos += 8;
    }
  }

  bytes(data: Uint8Array): void {
    if (data.length > 1024) {
      this.flush();
      this.chunks.push(data);
    } else {
      this.ensure(data.length);
      this.buf.set(data, this.pos);
      this.pos += data.length;
    }
  }

  value(v: CborEncodable, depth: number): void {
    if (depth > 64) throw new CborError("nesting too deep to encode");
    if (typeof v === "number") {
      if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER && !Object.is(v, -0)) {
        if (v >= 0) this.head(0, v);
        else this.head(1, -1 - v);
      } else {
        this.ensure(9);
        this.buf[this.pos++] = 0xfb;
        new DataView(this.buf.buffer, this.pos, 8).setFloat64(0, v);
        this.pos += 8;
      }
    } else if (typeof v === "bigint") {
      if (v >= 0n) this.head(0, v <= 0xffffffffn ? Number(v) : v);
      else this.head(1, -1n - v <= 0xffffffffn ? Number(-1n - v) : -1n - v);
    } else if (typeof v === "string") {
      const data = utf8enc.encode(v);
      this.head(3, data.length);
      this.bytes(data);
    } else if (typeof v === "boolean") {
      this.ensure(1);
      this.buf[this.pos++] = v ? 0xf5 : 0xf4;
    } else if (v === null) {
      this.ensure(1);
      this.buf[this.pos++] = 0xf6;
    } else if (v === undefined) {
      this.ensure(1);
      this.buf[this.pos++] = 0xf7;
    } else if (v instanceof Uint8Array) {
      this.head(2, v.length);
      this.bytes(v);
    } else if (Array.isArray(v)) {
      this.head(4, v.length);
      for (const x of v) this.value(x, depth + 1);
    } else if (v instanceof Map) {
      this.head(5, v.size);
      for (const [k, x] of v) {
        this.value(k, depth + 1);
        this.value(x, depth + 1);
      }
    } else if (v instanceof CborTag) {
      this.head(6, v.tag);
      this.value(v.value, depth + 1);
    } else if (v instanceof CborFloat64) {
      this.ensure(9);
      this.buf[this.pos++] = 0xfb;
      new DataView(this.buf.buffer, this.pos, 8).setFloat64(0, v.value);
      this.pos += 8;
    } else if (v instanceof CborFloat32) {
      this.ensure(5);
      this.buf[this.pos++] = 0xfa;
      new DataView(this.buf.buffer, this.pos, 4).setFloat32(0, v.value);
      this.pos += 4;
    } else if (v instanceof CborSimple) {
      this.ensure(2);
      if (v.value < 24) this.buf[this.pos++] = 0xe0 | v.value;
      else {
        this.buf[this.pos++] = 0xf8;
        this.buf[this.pos++] = v.value;
      }
    } else {
      const entries = Object.entries(v);
      this.head(5, entries.length);
      for (const [k, x] of entries) {
        this.value(k, depth + 1);
        this.value(x, depth + 1);
      }
    }
  }

  finish(): Uint8Array {
    if (this.chunks.length === 0) return this.buf.slice(0, this.pos);
    this.flush();
    return concatBytes(this.chunks);
  }
}
