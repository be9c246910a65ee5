/**
 * pvData (spec §3): type descriptions ({@link FieldDesc}) with the per-connection type cache,
 * values of every scalar, array, structure, union and variant-union kind, field numbering and
 * partial ("BitSet + data") serialization. No I/O.
 *
 * Values in JavaScript: boolean, number, bigint (long/ulong) and string scalars; typed arrays
 * for numeric arrays (BigInt64Array/BigUint64Array for long/ulong, Uint8Array for boolean[]),
 * `string[]`; structures as plain objects keyed by member name; unions as {@link UnionValue};
 * `any` as {@link AnyValue}; structure/union/any arrays as arrays with `null` for null elements.
 *
 * @module
 */

import type { NumericArray } from "../ca/mod.ts";
import { BitSet, PvaProtocolError, type WireReader, type WireWriter } from "./wire.ts";

/** Scalar type names (§2.3). */
export type ScalarType =
  | "boolean"
  | "byte"
  | "short"
  | "int"
  | "long"
  | "ubyte"
  | "ushort"
  | "uint"
  | "ulong"
  | "float"
  | "double"
  | "string";

/** A structure or union type. */
export interface StructDesc {
  readonly kind: "structure" | "union";
  /** Type ID ("" for the default). */
  readonly id: string;
  readonly fields: readonly Member[];
}

/** A named member of a structure or union. */
export interface Member {
  readonly name: string;
  readonly type: FieldDesc;
}

/** A type description (§3.2). */
export type FieldDesc =
  | { readonly kind: "scalar"; readonly type: ScalarType }
  | { readonly kind: "scalarArray"; readonly type: ScalarType }
  | StructDesc
  | { readonly kind: "any" }
  | { readonly kind: "structureArray"; readonly element: StructDesc }
  | { readonly kind: "unionArray"; readonly element: StructDesc }
  | { readonly kind: "anyArray" };

/** A union value: member `index` (-1 = empty) and its value. */
export interface UnionValue {
  index: number;
  value?: PvValue;
}

/** A variant-union (`any`) value: its type (null = empty) and value. */
export interface AnyValue {
  type: FieldDesc | null;
  value?: PvValue;
}

/** Any numeric typed array a scalar array may be held in (64-bit integers included). */
export type TypedArray = NumericArray | BigInt64Array | BigUint64Array;

/** A structure value. */
export type StructValue = { [name: string]: PvValue };

/** A pvData value. */
export type PvValue =
  | boolean
  | number
  | bigint
  | string
  | TypedArray
  | string[]
  | StructValue
  | UnionValue
  | AnyValue
  | (StructValue | null)[]
  | (UnionValue | null)[]
  | (AnyValue | null)[];

/** Type code byte of each scalar type (§3.1); arrays add 0x08. */
export const SCALAR_CODES: Readonly<Record<ScalarType, number>> = {
  boolean: 0x00,
  byte: 0x20,
  short: 0x21,
  int: 0x22,
  long: 0x23,
  ubyte: 0x24,
  ushort: 0x25,
  uint: 0x26,
  ulong: 0x27,
  float: 0x42,
  double: 0x43,
  string: 0x60,
};

const SCALAR_BY_CODE = new Map<number, ScalarType>(
  Object.entries(SCALAR_CODES).map(([k, v]) => [v, k as ScalarType]),
);

/** Element size in bytes of each fixed-size scalar type (0 for string). */
export const SCALAR_SIZES: Readonly<Record<ScalarType, number>> = {
  boolean: 1,
  byte: 1,
  short: 2,
  int: 4,
  long: 8,
  ubyte: 1,
  ushort: 2,
  uint: 4,
  ulong: 8,
  float: 4,
  double: 8,
  string: 0,
};

/** Typed-array constructor of each numeric scalar type. */
export const ARRAY_CONSTRUCTORS = {
  boolean: Uint8Array,
  byte: Int8Array,
  short: Int16Array,
  int: Int32Array,
  long: BigInt64Array,
  ubyte: Uint8Array,
  ushort: Uint16Array,
  uint: Uint32Array,
  ulong: BigUint64Array,
  float: Float32Array,
  double: Float64Array,
} as const;

/** Shorthand constructors for type descriptions. */
export const T = {
  scalar: (type: ScalarType): FieldDesc => ({ kind: "scalar", type }),
  array: (type: ScalarType): FieldDesc => ({ kind: "scalarArray", type }),
  struct: (id: string, fields: Record<string, FieldDesc>): StructDesc => ({
    kind: "structure",
    id,
    fields: Object.entries(fields).map(([name, type]) => ({ name, type })),
  }),
  union: (id: string, fields: Record<string, FieldDesc>): StructDesc => ({
    kind: "union",
    id,
    fields: Object.entries(fields).map(([name, type]) => ({ name, type })),
  }),
  any: (): FieldDesc => ({ kind: "any" }),
  structArray: (element: StructDesc): FieldDesc => ({ kind: "structureArray", element }),
};

/** Deepest FieldDesc nesting accepted (PVXS: 20). */
export const MAX_TYPE_DEPTH = 20;

/** Received-type cache of one connection (§3.3): keys chosen by the peer. */
export type TypeCache = Map<number, FieldDesc>;

/** Reads a FieldDesc (§3.2), honouring and filling `cache`; null for `0xFF` (no type). */
export function readFieldDesc(r: WireReader, cache: TypeCache, depth = 0): FieldDesc | null {
  if (depth > MAX_TYPE_DEPTH) throw new PvaProtocolError("type description nested too deeply");
  const code = r.u8();
  if (code === 0xff) return null;
  if (code === 0xfe) {
    const key = r.i16();
    const hit = cache.get(key);
    if (hit === undefined) throw new PvaProtocolError(`unknown type cache key ${key}`);
    return hit;
  }
  if (code === 0xfd) {
    const key = r.i16();
    const type = readFieldDesc(r, cache, depth + 1);
    if (type === null) throw new PvaProtocolError("type cache entry without a type");
    cache.set(key, type);
    return type;
  }
  return readTypeDesc(code, r, cache, depth);
}

function readMembers(r: WireReader, cache: TypeCache, depth: number): Member[] {
  const n = r.count(2, "member");
  const fields: Member[] = [];
  for (let i = 0; i < n; i++) {
    const name = r.string();
    const type = readFieldDesc(r, cache, depth + 1);
    if (type === null) throw new PvaProtocolError(`member ${name} without a type`);
    fields.push({ name, type });
  }
  return fields;
}

function readTypeDesc(code: number, r: WireReader, cache: TypeCache, depth: number): FieldDesc {
  const scalar = SCALAR_BY_CODE.get(code & ~0x08);
  if (scalar !== undefined) {
    return (code & 0x18) === 0x08 ? { kind: "scalarArray", type: scalar } : {
      kind: "scalar",
      type: scalar,
    };
  }
  switch (code) {
    case 0x80:
    case 0x81: {
      const id = r.string();
      const fields = readMembers(r, cache, depth);
      return { kind: code === 0x80 ? "structure" : "union", id, fields };
    }
    case 0x82:
      return { kind: "any" };
    case 0x8a:
      return { kind: "anyArray" };
    case 0x88:
    case 0x89: {
      const element = readFieldDesc(r, cache, depth + 1);
      const want = code === 0x88 ? "structure" : "union";
      if (element === null || element.kind !== want) {
        throw new PvaProtocolError(`${want}[] element is not a ${want}`);
      }
      return code === 0x88
        ? { kind: "structureArray", element: element as StructDesc }
        : { kind: "unionArray", element: element as StructDesc };
    }
    default:
      throw new PvaProtocolError(`unsupported type code 0x${code.toString(16)}`);
  }
}

/** Writes a full FieldDesc (never the cache, spec §3.3); null writes `0xFF`. */
export function writeFieldDesc(w: WireWriter, type: FieldDesc | null): void {
  if (type === null) {
    w.u8(0xff);
    return;
  }
  switch (type.kind) {
    case "scalar":
      w.u8(SCALAR_CODES[type.type]);
      return;
    case "scalarArray":
      w.u8(SCALAR_CODES[type.type] | 0x08);
      return;
    case "structure":
    case "union":
      w.u8(type.kind === "structure" ? 0x80 : 0x81).string(type.id).size(type.fields.length);
      for (const m of type.fields) {
        w.string(m.name);
        writeFieldDesc(w, m.type);
      }
      return;
    case "any":
      w.u8(0x82);
      return;
    case "anyArray":
      w.u8(0x8a);
      return;
    case "structureArray":
      w.u8(0x88);
      writeFieldDesc(w, type.element);
      return;
    case "unionArray":
      w.u8(0x89);
      writeFieldDesc(w, type.element);
      return;
  }
}

function readScalar(r: WireReader, type: ScalarType): PvValue {
  switch (type) {
    case "boolean":
      return r.u8() !== 0;
    case "byte":
      return r.i8();
    case "short":
      return r.i16();
    case "int":
      return r.i32();
    case "long":
      return r.i64();
    case "ubyte":
      return r.u8();
    case "ushort":
      return r.u16();
    case "uint":
      return r.u32();
    case "ulong":
      return r.u64();
    case "float":
      return r.f32();
    case "double":
      return r.f64();
    case "string":
      return r.string();
  }
}

const HOST_LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function readArray(r: WireReader, type: ScalarType): PvValue {
  if (type === "string") {
    const n = r.count(1, "string array");
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(r.string());
    return out;
  }
  const size = SCALAR_SIZES[type];
  const n = r.count(size, `${type} array`);
  const bytes = r.take(n * size, `${type} array`);
  if (r.owned && r.littleEndian === HOST_LITTLE_ENDIAN) {
    // The message buffer belongs to this message alone: view it without a copy, after moving
    // the elements down to an aligned offset over bytes already read (never into a view).
    const shift = bytes.byteOffset % size;
    const start = bytes.byteOffset - shift;
    if (start >= r.viewFloor) {
      const all = new Uint8Array(bytes.buffer, 0, bytes.byteOffset + bytes.length);
      if (shift > 0) {
        all.copyWithin(start, bytes.byteOffset, bytes.byteOffset + bytes.length);
        if (bytes.length > r.misalignedBytes) {
          r.misalignment = shift;
          r.misalignedBytes = bytes.length;
        }
      }
      r.viewFloor = start + bytes.length;
      return new ARRAY_CONSTRUCTORS[type](bytes.buffer as ArrayBuffer, start, n);
    }
  }
  const copy = new Uint8Array(bytes); // aligned, owned
  if (size > 1 && r.littleEndian !== HOST_LITTLE_ENDIAN) swapInPlace(copy, size);
  return new ARRAY_CONSTRUCTORS[type](copy.buffer, 0, n);
}

function swapInPlace(bytes: Uint8Array, size: number): void {
  for (let i = 0; i < bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/** Reads a value of type `type` (§3.5). */
export function readValue(r: WireReader, type: FieldDesc, cache: TypeCache): PvValue {
  switch (type.kind) {
    case "scalar":
      return readScalar(r, type.type);
    case "scalarArray":
      return readArray(r, type.type);
    case "structure": {
      const out: StructValue = {};
      for (const m of type.fields) out[m.name] = readValue(r, m.type, cache);
      return out;
    }
    case "union":
      return readUnion(r, type, cache);
    case "any":
      return readAny(r, cache);
    case "structureArray":
    case "unionArray":
    case "anyArray": {
      const n = r.count(1, "element");
      const out: (PvValue | null)[] = [];
      for (let i = 0; i < n; i++) {
        if (r.u8() === 0) {
          out.push(null);
          continue;
        }
        if (type.kind === "anyArray") out.push(readAny(r, cache));
        else out.push(readValue(r, type.element, cache));
      }
      return out as PvValue;
    }
  }
}

function readUnion(r: WireReader, type: StructDesc, cache: TypeCache): UnionValue {
  const index = r.size();
  if (index < 0) return { index: -1 };
  if (index >= type.fields.length) {
    throw new PvaProtocolError(`union selector ${index} out of range`);
  }
  return { index, value: readValue(r, type.fields[index].type, cache) };
}

function readAny(r: WireReader, cache: TypeCache): AnyValue {
  const type = readFieldDesc(r, cache, 1);
  if (type === null) return { type: null };
  return { type, value: readValue(r, type, cache) };
}

function fail(type: string, value: unknown): never {
  throw new TypeError(`cannot write ${typeof value} as ${type}`);
}

function writeScalar(w: WireWriter, type: ScalarType, v: PvValue): void {
  if (type === "string") {
    w.string(typeof v === "string" ? v : String(v));
    return;
  }
  if (type === "long" || type === "ulong") {
    const big = typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v)));
    if (type === "long") w.i64(big);
    else w.u64(big);
    return;
  }
  const n = typeof v === "number" ? v : typeof v === "boolean" ? (v ? 1 : 0) : Number(v);
  switch (type) {
    case "boolean":
      w.u8(n ? 1 : 0);
      return;
    case "byte":
      w.i8(n);
      return;
    case "short":
      w.i16(n);
      return;
    case "int":
      w.i32(n);
      return;
    case "ubyte":
      w.u8(n & 0xff);
      return;
    case "ushort":
      w.u16(n & 0xffff);
      return;
    case "uint":
      w.u32(n);
      return;
    case "float":
      w.f32(n);
      return;
    case "double":
      w.f64(n);
      return;
  }
}

/** Bytes of a typed array in the writer's byte order (no copy when already in it). */
function arrayBytes(
  w: WireWriter,
  type: ScalarType,
  v: TypedArray | readonly number[],
): Uint8Array {
  const Ctor = ARRAY_CONSTRUCTORS[type as Exclude<ScalarType, "string">];
  let arr: TypedArray;
  if (v instanceof Ctor) arr = v;
  else if (Ctor === BigInt64Array || Ctor === BigUint64Array) {
    arr = (Ctor as typeof BigInt64Array).from(
      Array.from(v as ArrayLike<number | bigint>, (x) => BigInt(x)),
    );
  } else {
    arr = (Ctor as Float64ArrayConstructor).from(v as ArrayLike<number>);
  }
  const bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
  const size = SCALAR_SIZES[type];
  if (size === 1 || w.littleEndian === HOST_LITTLE_ENDIAN) return bytes;
  const copy = new Uint8Array(bytes);
  swapInPlace(copy, size);
  return copy;
}

/** Writes a value of type `type` (§3.5). Large numeric arrays are appended by reference. */
export function writeValue(w: WireWriter, type: FieldDesc, v: PvValue): void {
  switch (type.kind) {
    case "scalar":
      writeScalar(w, type.type, v);
      return;
    case "scalarArray": {
      if (type.type === "string") {
        const arr = Array.isArray(v) ? v as unknown[] : fail("string[]", v);
        w.size(arr.length);
        for (const s of arr) w.string(String(s));
        return;
      }
      if (!ArrayBuffer.isView(v) && !Array.isArray(v)) fail(`${type.type}[]`, v);
      const arr = v as TypedArray;
      w.size(arr.length);
      w.reference(arrayBytes(w, type.type, arr));
      return;
    }
    case "structure": {
      const s = (v ?? {}) as StructValue;
      for (const m of type.fields) writeValue(w, m.type, s[m.name] ?? defaultValue(m.type));
      return;
    }
    case "union": {
      const u = v as UnionValue;
      if (u === undefined || u.index < 0) {
        w.u8(0xff);
        return;
      }
      w.size(u.index);
      writeValue(w, type.fields[u.index].type, u.value ?? defaultValue(type.fields[u.index].type));
      return;
    }
    case "any":
      writeAny(w, v as AnyValue);
      return;
    case "structureArray":
    case "unionArray":
    case "anyArray": {
      const arr = v as (PvValue | null)[];
      w.size(arr.length);
      for (const e of arr) {
        if (e === null || e === undefined) {
          w.u8(0);
          continue;
        }
        w.u8(1);
        if (type.kind === "anyArray") writeAny(w, e as AnyValue);
        else writeValue(w, type.element, e);
      }
      return;
    }
  }
}

function writeAny(w: WireWriter, a: AnyValue | undefined): void {
  if (a === undefined || a.type === null) {
    w.u8(0xff);
    return;
  }
  writeFieldDesc(w, a.type);
  writeValue(w, a.type, a.value ?? defaultValue(a.type));
}

/** The zero value of a type. */
export function defaultValue(type: FieldDesc): PvValue {
  switch (type.kind) {
    case "scalar":
      return type.type === "string"
        ? ""
        : type.type === "boolean"
        ? false
        : type.type === "long" || type.type === "ulong"
        ? 0n
        : 0;
    case "scalarArray":
      return type.type === "string" ? [] : new ARRAY_CONSTRUCTORS[type.type](0);
    case "structure": {
      const out: StructValue = {};
      for (const m of type.fields) out[m.name] = defaultValue(m.type);
      return out;
    }
    case "union":
      return { index: -1 };
    case "any":
      return { type: null };
    default:
      return [];
  }
}

/** Field numbering (§3.4): offsets of a structure's members, computed once per type. */
export interface FieldNumbering {
  /** Number of bits the structure spans (itself included). */
  readonly span: number;
  /** Bit offset of each member, relative to the structure's own bit. */
  readonly offsets: readonly number[];
  /** Numbering of each member that is a structure. */
  readonly children: readonly (FieldNumbering | undefined)[];
}

const NUMBERING = new WeakMap<StructDesc, FieldNumbering>();

/** Field numbering of a structure type (cached per type object). */
export function numbering(type: StructDesc): FieldNumbering {
  let hit = NUMBERING.get(type);
  if (hit) return hit;
  const offsets: number[] = [];
  const children: (FieldNumbering | undefined)[] = [];
  let next = 1;
  for (const m of type.fields) {
    offsets.push(next);
    if (m.type.kind === "structure") {
      const child = numbering(m.type);
      children.push(child);
      next += child.span;
    } else {
      children.push(undefined);
      next += 1;
    }
  }
  hit = { span: next, offsets, children };
  NUMBERING.set(type, hit);
  return hit;
}

/** Bit number of a dotted field path (`value`, `alarm.severity`), or undefined. */
export function bitOf(type: StructDesc, path: string): number | undefined {
  let t: StructDesc = type;
  let base = 0;
  for (const part of path.split(".")) {
    const i = t.fields.findIndex((m) => m.name === part);
    if (i < 0) return undefined;
    const num = numbering(t);
    base += num.offsets[i];
    const member = t.fields[i].type;
    if (member.kind === "structure") t = member;
    else if (part !== path.split(".").at(-1)) return undefined;
  }
  return base;
}

/**
 * Writes the fields of `value` selected by `bits` (§3.6), in ascending bit order; a set
 * structure bit writes the whole sub-structure.
 */
export function writePartial(
  w: WireWriter,
  type: StructDesc,
  value: StructValue,
  bits: BitSet,
  base = 0,
): void {
  if (bits.get(base)) {
    writeValue(w, type, value);
    return;
  }
  const num = numbering(type);
  type.fields.forEach((m, i) => {
    const bit = base + num.offsets[i];
    const child = num.children[i];
    const v = value[m.name] ?? defaultValue(m.type);
    if (child !== undefined) {
      if (bits.anyIn(bit, bit + child.span)) {
        writePartial(w, m.type as StructDesc, v as StructValue, bits, bit);
      }
    } else if (bits.get(bit)) writeValue(w, m.type, v);
  });
}

/**
 * Reads the fields selected by `bits` into `into` (a structure value of `type`, updated in
 * place), the inverse of {@link writePartial}.
 */
export function readPartial(
  r: WireReader,
  type: StructDesc,
  into: StructValue,
  bits: BitSet,
  cache: TypeCache,
  base = 0,
): void {
  const num = numbering(type);
  type.fields.forEach((m, i) => {
    const bit = base + num.offsets[i];
    const child = num.children[i];
    if (child !== undefined) {
      if (bits.get(bit)) into[m.name] = readValue(r, m.type, cache);
      else if (bits.anyIn(bit, bit + child.span)) {
        const sub = (into[m.name] ?? defaultValue(m.type)) as StructValue;
        into[m.name] = sub;
        readPartial(r, m.type as StructDesc, sub, bits, cache, bit);
      }
    } else if (bits.get(bit)) into[m.name] = readValue(r, m.type, cache);
  });
}

/** Reads a full top-level `BitSet + partial value` whose bit 0 may select everything. */
export function readChanged(
  r: WireReader,
  type: StructDesc,
  into: StructValue,
  cache: TypeCache,
): BitSet {
  const bits = r.bitSet();
  if (bits.get(0)) {
    const full = readValue(r, type, cache) as StructValue;
    for (const k of Object.keys(full)) into[k] = full[k];
  } else readPartial(r, type, into, bits, cache);
  return bits;
}

/** A bit set marking every field of `type` whose path `select` accepts, or bit 0 for all. */
export function selectionBits(type: StructDesc, paths: readonly string[]): BitSet {
  const out = new BitSet();
  if (paths.length === 0) return out.set(0);
  for (const p of paths) {
    const bit = bitOf(type, p);
    if (bit !== undefined) out.set(bit);
  }
  return out;
}

/** BitSet `bits` with descendants of set structure bits filled in (for masking). */
export function expandBits(type: StructDesc, bits: BitSet, base = 0): BitSet {
  const out = new BitSet();
  const walk = (t: StructDesc, b: number, all: boolean) => {
    const here = all || bits.get(b);
    if (here) out.set(b);
    const num = numbering(t);
    t.fields.forEach((_m, i) => {
      const bit = b + num.offsets[i];
      const child = num.children[i];
      if (child !== undefined) walk(t.fields[i].type as StructDesc, bit, here);
      else if (here || bits.get(bit)) out.set(bit);
    });
  };
  walk(type, base, false);
  return out;
}
