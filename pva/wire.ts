/**
 * pvAccess basic encoding (spec §2): a bounds-checked {@link WireReader} and a growable
 * {@link WireWriter} for numbers in either byte order, `Size`, `String`, `BitSet` and `Status`.
 * No I/O. Every malformed input throws {@link PvaProtocolError}.
 *
 * @module
 */

/** Malformed or unsupported input: the connection that sent it is closed. */
export class PvaProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PvaProtocolError";
  }
}

const UTF8_DECODER = new TextDecoder("utf-8", { fatal: false });
const UTF8_ENCODER = new TextEncoder();

/** Reads numbers and pvAccess primitives from one message body. */
export class WireReader {
  /** The bytes read. */
  readonly bytes: Uint8Array;
  /** Little-endian (flags bit 7 clear) or big-endian. */
  readonly littleEndian: boolean;
  /** Read position. */
  pos = 0;
  /** The bytes belong to this message alone: decoded arrays may be views into them. */
  readonly owned: boolean;
  /** Absolute buffer offset below which bytes back an earlier zero-copy view. */
  viewFloor = 0;
  /**
   * How many bytes past an aligned offset the largest array moved into alignment began (0 when
   * none was moved): a receiver that starts the next message's buffer this much earlier (mod 8)
   * gets the same layout aligned, with no move.
   */
  misalignment = 0;
  /** Length of the array {@link misalignment} belongs to. */
  misalignedBytes = 0;
  #view: DataView;

  constructor(bytes: Uint8Array, littleEndian: boolean, owned = false) {
    this.bytes = bytes;
    this.littleEndian = littleEndian;
    this.owned = owned;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes left. */
  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  /** Throws unless `n` more bytes are available. */
  need(n: number, what = "value"): void {
    if (n < 0 || this.pos + n > this.bytes.length) {
      throw new PvaProtocolError(
        `truncated ${what}: need ${n} bytes, ${this.remaining} left`,
      );
    }
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.pos++];
  }
  i8(): number {
    this.need(1);
    return this.#view.getInt8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.#view.getUint16(this.pos, this.littleEndian);
    this.pos += 2;
    return v;
  }
  i16(): number {
    this.need(2);
    const v = this.#view.getInt16(this.pos, this.littleEndian);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.#view.getUint32(this.pos, this.littleEndian);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.#view.getInt32(this.pos, this.littleEndian);
    this.pos += 4;
    return v;
  }
  i64(): bigint {
    this.need(8);
    const v = this.#view.getBigInt64(this.pos, this.littleEndian);
    this.pos += 8;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.#view.getBigUint64(this.pos, this.littleEndian);
    this.pos += 8;
    return v;
  }
  f32(): number {
    this.need(4);
    const v = this.#view.getFloat32(this.pos, this.littleEndian);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.#view.getFloat64(this.pos, this.littleEndian);
    this.pos += 8;
    return v;
  }

  /** `n` raw bytes (a view into the message; copy to keep). */
  take(n: number, what = "bytes"): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A `Size` (§2.1); -1 for the null form `0xFF`. */
  size(): number {
    const first = this.u8();
    if (first < 0xfe) return first;
    if (first === 0xff) return -1;
    const n = this.i32();
    if (n < 0) throw new PvaProtocolError(`negative size ${n}`);
    return n;
  }

  /** A `Size` that must be a count of items each at least `minBytes` long, within the message. */
  count(minBytes: number, what: string): number {
    const n = this.size();
    if (n < 0) throw new PvaProtocolError(`null size for ${what}`);
    if (minBytes > 0 && n * minBytes > this.remaining) {
      throw new PvaProtocolError(`${what} count ${n} exceeds the message (${this.remaining} left)`);
    }
    return n;
  }

  /** A `String` (§2.2); the lenient `0xFF` length reads as "". */
  string(): string {
    const n = this.size();
    if (n <= 0) return "";
    return UTF8_DECODER.decode(this.take(n, "string"));
  }

  /** A `BitSet` (§2.5). */
  bitSet(): BitSet {
    const n = this.count(1, "bitset");
    const out = new BitSet();
    const words = Math.floor(n / 8);
    for (let w = 0; w < words; w++) {
      const word = this.u64();
      for (let b = 0; b < 64; b++) {
        if ((word >> BigInt(b)) & 1n) out.set(w * 64 + b);
      }
    }
    for (let i = 0; i < n % 8; i++) {
      const byte = this.u8();
      for (let b = 0; b < 8; b++) if (byte & (1 << b)) out.set(words * 64 + i * 8 + b);
    }
    return out;
  }

  /** A `Status` (§2.6). */
  status(): Status {
    const type = this.u8();
    if (type === 0xff) return OK_STATUS;
    if (type > 3) throw new PvaProtocolError(`bad status type ${type}`);
    const message = this.string();
    const callTree = this.string();
    return { type, message, callTree };
  }
}

/** Status type codes (§2.6). */
export const StatusType = { OK: 0, WARNING: 1, ERROR: 2, FATAL: 3 } as const;

/** A pvAccess Status. */
export interface Status {
  /** {@link StatusType}. */
  type: number;
  message: string;
  callTree: string;
}

/** The plain OK status (encoded as the single byte `ff`). */
export const OK_STATUS: Status = Object.freeze({ type: 0, message: "", callTree: "" });

/** An error status with `message`. */
export function errorStatus(message: string): Status {
  return { type: StatusType.ERROR, message, callTree: "" };
}

/** Whether a status counts as success (OK or WARNING). */
export function isSuccess(status: Status): boolean {
  return status.type <= StatusType.WARNING;
}

/** A set of non-negative bit indices (field numbers, §3.4). */
export class BitSet {
  #bits: number[] = [];

  /** A set holding `bits`. */
  static of(...bits: number[]): BitSet {
    const out = new BitSet();
    for (const b of bits) out.set(b);
    return out;
  }

  /** Adds bit `i`. */
  set(i: number): this {
    const w = i >>> 5;
    while (this.#bits.length <= w) this.#bits.push(0);
    this.#bits[w] |= 1 << (i & 31);
    return this;
  }

  /** Whether bit `i` is set. */
  get(i: number): boolean {
    const w = i >>> 5;
    return w < this.#bits.length && (this.#bits[w] & (1 << (i & 31))) !== 0;
  }

  /** Whether no bit is set. */
  isEmpty(): boolean {
    return this.#bits.every((w) => w === 0);
  }

  /** Set bits in ascending order. */
  toArray(): number[] {
    const out: number[] = [];
    for (let w = 0; w < this.#bits.length; w++) {
      for (let b = 0; b < 32; b++) if (this.#bits[w] & (1 << b)) out.push(w * 32 + b);
    }
    return out;
  }

  /** Whether any bit in `[from, to)` is set. */
  anyIn(from: number, to: number): boolean {
    for (let i = from; i < to; i++) if (this.get(i)) return true;
    return false;
  }

  /** Number of bytes of the trimmed wire form. */
  byteLength(): number {
    for (let w = this.#bits.length - 1; w >= 0; w--) {
      const v = this.#bits[w];
      if (v === 0) continue;
      const top = 31 - Math.clz32(v);
      return w * 4 + (top >> 3) + 1;
    }
    return 0;
  }

  /** Byte `i` of the little-endian bit image. */
  byte(i: number): number {
    const w = i >> 2;
    return w < this.#bits.length ? (this.#bits[w] >>> ((i & 3) * 8)) & 0xff : 0;
  }
}

const INITIAL_CHUNK = 256;

/**
 * Builds one or more messages as a list of byte pieces: small values go into a growing chunk,
 * large byte arrays can be appended by reference ({@link WireWriter.reference}) without copying.
 */
export class WireWriter {
  /** Byte order of everything written. */
  readonly littleEndian: boolean;
  #pieces: Uint8Array[] = [];
  #chunk: Uint8Array;
  #view: DataView;
  #fill = 0;
  #before = 0;

  constructor(littleEndian: boolean, capacity = INITIAL_CHUNK) {
    this.littleEndian = littleEndian;
    this.#chunk = new Uint8Array(capacity);
    this.#view = new DataView(this.#chunk.buffer);
  }

  /** Total bytes written so far. */
  get length(): number {
    return this.#before + this.#fill;
  }

  #room(n: number): void {
    if (this.#fill + n <= this.#chunk.length) return;
    if (this.#fill === 0 || this.#pieces.length === 0 && this.#before === 0) {
      const bigger = new Uint8Array(Math.max(this.#chunk.length * 2, this.#fill + n));
      bigger.set(this.#chunk.subarray(0, this.#fill));
      this.#chunk = bigger;
      this.#view = new DataView(bigger.buffer);
      return;
    }
    this.#pieces.push(this.#chunk.subarray(0, this.#fill));
    this.#before += this.#fill;
    this.#chunk = new Uint8Array(Math.max(INITIAL_CHUNK * 16, n));
    this.#view = new DataView(this.#chunk.buffer);
    this.#fill = 0;
  }

  u8(v: number): this {
    this.#room(1);
    this.#chunk[this.#fill++] = v;
    return this;
  }
  i8(v: number): this {
    this.#room(1);
    this.#view.setInt8(this.#fill++, v);
    return this;
  }
  u16(v: number): this {
    this.#room(2);
    this.#view.setUint16(this.#fill, v, this.littleEndian);
    this.#fill += 2;
    return this;
  }
  i16(v: number): this {
    this.#room(2);
    this.#view.setInt16(this.#fill, v, this.littleEndian);
    this.#fill += 2;
    return this;
  }
  u32(v: number): this {
    this.#room(4);
    this.#view.setUint32(this.#fill, v >>> 0, this.littleEndian);
    this.#fill += 4;
    return this;
  }
  i32(v: number): this {
    this.#room(4);
    this.#view.setInt32(this.#fill, v | 0, this.littleEndian);
    this.#fill += 4;
    return this;
  }
  i64(v: bigint): this {
    this.#room(8);
    this.#view.setBigInt64(this.#fill, BigInt.asIntN(64, v), this.littleEndian);
    this.#fill += 8;
    return this;
  }
  u64(v: bigint): this {
    this.#room(8);
    this.#view.setBigUint64(this.#fill, BigInt.asUintN(64, v), this.littleEndian);
    this.#fill += 8;
    return this;
  }
  f32(v: number): this {
    this.#room(4);
    this.#view.setFloat32(this.#fill, v, this.littleEndian);
    this.#fill += 4;
    return this;
  }
  f64(v: number): this {
    this.#room(8);
    this.#view.setFloat64(this.#fill, v, this.littleEndian);
    this.#fill += 8;
    return this;
  }

  /** Copies `bytes` in. */
  bytes(bytes: Uint8Array): this {
    this.#room(bytes.length);
    this.#chunk.set(bytes, this.#fill);
    this.#fill += bytes.length;
    return this;
  }

  /**
   * Appends `bytes` by reference when large (the caller must not change them until written),
   * else copies.
   */
  reference(bytes: Uint8Array): this {
    if (bytes.length < 4096) return this.bytes(bytes);
    if (this.#fill > 0) {
      this.#pieces.push(this.#chunk.subarray(0, this.#fill));
      this.#before += this.#fill;
      this.#chunk = this.#chunk.subarray(this.#fill);
      this.#view = new DataView(
        this.#chunk.buffer,
        this.#chunk.byteOffset,
        this.#chunk.byteLength,
      );
      this.#fill = 0;
    }
    this.#pieces.push(bytes);
    this.#before += bytes.length;
    return this;
  }

  /** A `Size` (§2.1). */
  size(n: number): this {
    if (n < 0) return this.u8(0xff);
    if (n < 0xfe) return this.u8(n);
    return this.u8(0xfe).i32(n);
  }

  /** A `String` (§2.2). */
  string(s: string): this {
    if (s.length === 0) return this.u8(0);
    const bytes = UTF8_ENCODER.encode(s);
    return this.size(bytes.length).bytes(bytes);
  }

  /** A `BitSet` (§2.5): full 8-byte groups as u64 in this writer's byte order. */
  bitSet(set: BitSet): this {
    const n = set.byteLength();
    this.size(n);
    const words = Math.floor(n / 8);
    for (let w = 0; w < words; w++) {
      for (let i = 0; i < 8; i++) {
        this.u8(set.byte(w * 8 + (this.littleEndian ? i : 7 - i)));
      }
    }
    for (let i = words * 8; i < n; i++) this.u8(set.byte(i));
    return this;
  }

  /** A `Status` (§2.6); plain OK is the single byte `ff`. */
  status(status: Status): this {
    if (status.type === 0 && status.message === "" && status.callTree === "") return this.u8(0xff);
    return this.u8(status.type).string(status.message).string(status.callTree);
  }

  /** Overwrites a u32 at absolute position `at` (must lie in the current chunk or a piece). */
  patchU32(at: number, v: number): void {
    let base = 0;
    for (const piece of [...this.#pieces, this.#chunk.subarray(0, this.#fill)]) {
      if (at >= base && at + 4 <= base + piece.length) {
        new DataView(piece.buffer, piece.byteOffset, piece.byteLength)
          .setUint32(at - base, v, this.littleEndian);
        return;
      }
      base += piece.length;
    }
    throw new RangeError(`patch at ${at} outside written bytes`);
  }

  /** The written pieces, in order (the writer must not be used afterwards). */
  finish(): Uint8Array[] {
    if (this.#fill > 0) this.#pieces.push(this.#chunk.subarray(0, this.#fill));
    this.#before += this.#fill;
    this.#fill = 0;
    return this.#pieces;
  }

  /** All written bytes as one array (copies when there are several pieces). */
  toBytes(): Uint8Array {
    const pieces = this.finish();
    if (pieces.length === 1) return pieces[0];
    const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of pieces) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
