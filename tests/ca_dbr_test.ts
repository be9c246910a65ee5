import assert from "node:assert/strict";
import {
  DBR,
  dbrBaseType,
  dbrElementSize,
  DbrError,
  dbrPayloadSize,
  dbrSize,
  dbrSizeN,
  type DbrSource,
  dbrValueOffset,
  decodeDbr,
  ECA,
  encodeDbr,
  isReadableDbrType,
  isWritableDbrType,
  padTo8,
} from "../ca/dbr.ts";
import type { NativeType, NativeValue, PvMetadata } from "../ca/pv.ts";

// ---------------------------------------------------------------------------------------------
// helpers: hand-written expected bytes

/** Bytes from a hex string with arbitrary whitespace. */
function hex(...parts: string[]): Uint8Array {
  const digits = parts.join(" ").replace(/\s+/g, "");
  assert.equal(digits.length % 2, 0, "odd hex string");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}
/** `n` zero bytes as hex. */
function z(n: number): string {
  return "00".repeat(n);
}
/** ASCII text NUL-padded to `size` bytes, as hex. */
function str(text: string, size: number): string {
  let out = "";
  for (let i = 0; i < text.length; i++) out += text.charCodeAt(i).toString(16).padStart(2, "0");
  return out + z(size - text.length);
}
/** Pads hex bytes with zeros to a multiple of 8 bytes. */
function pad8(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(padTo8(bytes.length));
  out.set(bytes);
  return out;
}
function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}
function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(toHex(actual), toHex(expected), what);
}
function assertDbrError(fn: () => unknown, eca: number, what?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DbrError, `expected DbrError, got ${e}`);
    assert.equal(e.eca, eca, `${what ?? ""}: eca of "${e.message}"`);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// sizes and offsets (spec §6.2 table, typed in by hand)

// [code, dbr_size, value size, offset]
const TABLE: [number, number, number, number][] = [
  [0, 40, 40, 0],
  [1, 2, 2, 0],
  [2, 4, 4, 0],
  [3, 2, 2, 0],
  [4, 1, 1, 0],
  [5, 4, 4, 0],
  [6, 8, 8, 0],
  [7, 44, 40, 4],
  [8, 6, 2, 4],
  [9, 8, 4, 4],
  [10, 6, 2, 4],
  [11, 6, 1, 5],
  [12, 8, 4, 4],
  [13, 16, 8, 8],
  [14, 52, 40, 12],
  [15, 16, 2, 14],
  [16, 16, 4, 12],
  [17, 16, 2, 14],
  [18, 16, 1, 15],
  [19, 16, 4, 12],
  [20, 24, 8, 16],
  [21, 44, 40, 4],
  [22, 26, 2, 24],
  [23, 44, 4, 40],
  [24, 424, 2, 422],
  [25, 20, 1, 19],
  [26, 40, 4, 36],
  [27, 72, 8, 64],
  [28, 44, 40, 4],
  [29, 30, 2, 28],
  [30, 52, 4, 48],
  [31, 424, 2, 422],
  [32, 22, 1, 21],
  [33, 48, 4, 44],
  [34, 88, 8, 80],
  [35, 2, 2, 0],
  [36, 2, 2, 0],
  [37, 48, 40, 8],
  [38, 40, 40, 0],
];

Deno.test("dbr sizes, element sizes and value offsets match the spec table for all 39 types", () => {
  assert.equal(TABLE.length, 39);
  for (const [code, size, element, offset] of TABLE) {
    assert.equal(dbrSize(code), size, `dbr_size ${code}`);
    assert.equal(dbrElementSize(code), element, `value size ${code}`);
    assert.equal(dbrValueOffset(code), offset, `offset ${code}`);
    assert.equal(dbrSizeN(code, 1), size, `dbr_size_n(${code}, 1)`);
    assert.equal(dbrSizeN(code, 0), offset, `dbr_size_n(${code}, 0)`);
    assert.equal(dbrSizeN(code, 7), size + 6 * element, `dbr_size_n(${code}, 7)`);
    if (code <= 34) assert.equal(dbrBaseType(code), code % 7);
  }
});

Deno.test("payload size examples of spec §6.2", () => {
  assert.equal(padTo8(dbrSizeN(DBR.TIME_DOUBLE, 1)), 24);
  assert.equal(padTo8(dbrSizeN(DBR.GR_SHORT, 1)), 32);
  assert.equal(padTo8(dbrSizeN(DBR.STS_STRING, 1)), 48);
  assert.equal(padTo8(dbrSizeN(DBR.CTRL_ENUM, 1)), 424);
  assert.equal(dbrSizeN(DBR.TIME_DOUBLE, 1_000_000), 8_000_016);
  assert.equal(padTo8(0x1_0000_0001), 0x1_0000_0008);
  assert.equal(dbrPayloadSize(DBR.CTRL_SHORT, 1), 32);
  assert.equal(dbrPayloadSize(DBR.STRING, 0), 0);
});

Deno.test("readable and writable type sets", () => {
  for (let t = -1; t <= 40; t++) {
    const readable = (t >= 0 && t <= 34) || t === 37 || t === 38;
    const writable = t >= 0 && t <= 36;
    assert.equal(isReadableDbrType(t), readable, `readable ${t}`);
    assert.equal(isWritableDbrType(t), writable, `writable ${t}`);
  }
  assert.equal(isReadableDbrType(1.5), false);
  assert.equal(isReadableDbrType(NaN), false);
  assert.equal(isReadableDbrType(65535), false);
});

Deno.test("size functions reject invalid types with BADTYPE and bad counts with BADCOUNT", () => {
  for (const t of [39, 65535, -1, 1.5, NaN]) {
    assertDbrError(() => dbrSizeN(t, 1), ECA.BADTYPE, `type ${t}`);
    assertDbrError(() => dbrValueOffset(t), ECA.BADTYPE);
    assertDbrError(() => dbrElementSize(t), ECA.BADTYPE);
    assertDbrError(() => dbrBaseType(t), ECA.BADTYPE);
  }
  for (const c of [-1, 1.5, NaN, 2 ** 32]) assertDbrError(() => dbrSizeN(6, c), ECA.BADCOUNT);
});

Deno.test("ECA constants carry the caerr.h values", () => {
  assert.deepEqual(
    [ECA.NORMAL, ECA.ALLOCMEM, ECA.TOLARGE, ECA.TIMEOUT, ECA.BADTYPE, ECA.INTERNAL, ECA.GETFAIL],
    [1, 48, 72, 80, 114, 142, 152],
  );
  assert.deepEqual(
    [ECA.PUTFAIL, ECA.BADCOUNT, ECA.BADSTR, ECA.DISCONN, ECA.BADMONID, ECA.NORDACCESS],
    [160, 176, 186, 192, 242, 368],
  );
  assert.deepEqual(
    [ECA.NOWTACCESS, ECA.NOCONVERT, ECA.BADCHID, ECA.UNAVAILINSERV, ECA["16KARRAYCLIENT"]],
    [376, 400, 410, 432, 464],
  );
});

// ---------------------------------------------------------------------------------------------
// worked example §13

const EXAMPLE_PAYLOAD = hex(
  "00 00 00 00 3f b5 53 80 07 5b cd 15 00 00 00 00",
  "40 09 21 f9 f0 1b 86 6e",
);

Deno.test("worked example §13: DBR_TIME_DOUBLE 3.14159 at 1700000000.123456789", () => {
  const source: DbrSource = {
    value: new Float64Array([3.14159]),
    type: "double",
    timestamp: 1700000000123.456789,
    epicsTime: { seconds: 1068848000, nanoseconds: 123456789 },
    severity: 0,
    status: 0,
    metadata: {},
  };
  const bytes = encodeDbr(DBR.TIME_DOUBLE, 1, source, 16);
  assert.equal(bytes.length, 16 + 24);
  assertBytes(bytes.subarray(0, 16), new Uint8Array(16), "header room stays zero");
  assertBytes(bytes.subarray(16), EXAMPLE_PAYLOAD, "payload");

  // From Unix milliseconds only: a double of ms resolves ~0.24 µs at this date.
  const fromMs = encodeDbr(DBR.TIME_DOUBLE, 1, { ...source, epicsTime: undefined });
  const view = new DataView(fromMs.buffer);
  assert.equal(view.getUint32(4), 1068848000);
  assert.ok(Math.abs(view.getUint32(8) - 123456789) <= 250, `ns ${view.getUint32(8)}`);
  assertBytes(fromMs.subarray(12), EXAMPLE_PAYLOAD.subarray(12), "value part");

  const decoded = decodeDbr(DBR.TIME_DOUBLE, 1, bytes.subarray(16));
  assert.deepEqual(decoded.epicsTime, { seconds: 1068848000, nanoseconds: 123456789 });
  assert.ok(Math.abs(decoded.timestamp! - 1700000000123.456789) < 1e-3);
  assert.deepEqual(Array.from(decoded.value as Float64Array), [3.14159]);
});

// ---------------------------------------------------------------------------------------------
// byte-exact layouts of every readable type for every native type

const STAMP = "3f b5 53 80 07 5b cd 15";
const ALARM = "00 03 00 02"; // status HIHI, severity MAJOR
const UNITS = str("mm", 8);
const LABELS = ["Off", "On", "Fault"];
const METADATA: PvMetadata = {
  units: "mm",
  precision: 3,
  displayLimits: [-10, 100],
  alarmLimits: [-9, 90],
  warningLimits: [-8, 80],
  controlLimits: [-5, 50],
  recordType: "ai",
};

/** GR limits (upper_disp, lower_disp, upper_alarm, upper_warn, lower_warn, lower_alarm) by base. */
const GR_LIMITS: Record<number, string> = {
  1: "00 64 ff f6 00 5a 00 50 ff f8 ff f7",
  2: "42 c8 00 00 c1 20 00 00 42 b4 00 00 42 a0 00 00 c1 00 00 00 c1 10 00 00",
  4: "64 f6 5a 50 f8 f7",
  5: "00000064 fffffff6 0000005a 00000050 fffffff8 fffffff7",
  6: "4059000000000000 c024000000000000 4056800000000000 4054000000000000" +
    "c020000000000000 c022000000000000",
};
/** CTRL limits (upper_ctrl, lower_ctrl) by base. */
const CTRL_LIMITS: Record<number, string> = {
  1: "00 32 ff fb",
  2: "42 48 00 00 c0 a0 00 00",
  4: "32 fb",
  5: "00000032 fffffffb",
  6: "4049000000000000 c014000000000000",
};

interface NativeCase {
  native: NativeType;
  value: NativeValue;
  /** The value converted to each requested value type 0..6, as hand-computed bytes. */
  as: [string, string, string, string, string, string, string];
}

const CASES: NativeCase[] = [
  {
    native: "double",
    value: new Float64Array([1.5]),
    as: [
      str("1.500", 40),
      "00 01",
      "3f c0 00 00",
      "00 01",
      "01",
      "00 00 00 01",
      "3ff8000000000000",
    ],
  },
  {
    native: "float",
    value: new Float32Array([1.5]),
    as: [
      str("1.500", 40),
      "00 01",
      "3f c0 00 00",
      "00 01",
      "01",
      "00 00 00 01",
      "3ff8000000000000",
    ],
  },
  {
    native: "long",
    value: new Int32Array([-2]),
    as: [str("-2", 40), "ff fe", "c0 00 00 00", "ff fe", "fe", "ff ff ff fe", "c000000000000000"],
  },
  {
    native: "short",
    value: new Int16Array([-2]),
    as: [str("-2", 40), "ff fe", "c0 00 00 00", "ff fe", "fe", "ff ff ff fe", "c000000000000000"],
  },
  {
    native: "char",
    value: new Uint8Array([200]),
    as: [str("200", 40), "00 c8", "43 48 00 00", "00 c8", "c8", "00 00 00 c8", "4069000000000000"],
  },
  {
    native: "enum",
    value: new Uint16Array([2]),
    as: [
      str("Fault", 40),
      "00 02",
      "40 00 00 00",
      "00 02",
      "02",
      "00 00 00 02",
      "4000000000000000",
    ],
  },
  {
    native: "string",
    value: ["-2.5"],
    as: [str("-2.5", 40), "ff fe", "c0 20 00 00", "ff fe", "fe", "ff ff ff fe", "c004000000000000"],
  },
];

/** Hand-assembled expected payload (unpadded) of `type` for one element given as `element`. */
function expectedLayout(type: number, element: string, native: NativeType): Uint8Array {
  const base = type <= 34 ? type % 7 : 0;
  if (type <= 6) return hex(element);
  if (type <= 13) {
    const pad = base === 4 ? z(1) : base === 6 ? z(4) : "";
    return hex(ALARM, pad, element);
  }
  if (type <= 20) {
    const pad = base === 1 || base === 3 ? z(2) : base === 4 ? z(3) : base === 6 ? z(4) : "";
    return hex(ALARM, STAMP, pad, element);
  }
  const ctrl = type >= 28;
  if (base === 0) return hex(ALARM, element); // GR/CTRL_STRING = STS_STRING layout
  if (base === 3) {
    const labels = native === "enum" ? LABELS : [];
    const slots = labels.map((l) => str(l, 26)).join("") + z(26 * (16 - labels.length));
    return hex(ALARM, labels.length.toString(16).padStart(4, "0"), slots, element);
  }
  const limits = GR_LIMITS[base] + (ctrl ? CTRL_LIMITS[base] : "");
  if (base === 2 || base === 6) return hex(ALARM, "00 03 00 00", UNITS, limits, element);
  return hex(ALARM, UNITS, limits, base === 4 ? z(1) : "", element);
}

/** Native value of one big-endian element of value type `base`. */
function elementValue(element: Uint8Array, base: number): NativeValue {
  const view = new DataView(element.buffer, element.byteOffset);
  switch (base) {
    case 0:
      return [String.fromCharCode(...element.subarray(0, element.indexOf(0)))];
    case 1:
      return Int16Array.of(view.getInt16(0));
    case 2:
      return Float32Array.of(view.getFloat32(0));
    case 3:
      return Uint16Array.of(view.getUint16(0));
    case 4:
      return Uint8Array.of(view.getUint8(0));
    case 5:
      return Int32Array.of(view.getInt32(0));
    default:
      return Float64Array.of(view.getFloat64(0));
  }
}

function sourceOf(c: NativeCase): DbrSource {
  return {
    value: c.value,
    type: c.native,
    timestamp: 0,
    epicsTime: { seconds: 0x3fb55380, nanoseconds: 0x075bcd15 },
    severity: 2,
    status: 3,
    metadata: c.native === "enum" ? { ...METADATA, enumLabels: LABELS } : METADATA,
    ackt: true,
    acks: 2,
  };
}

for (const c of CASES) {
  Deno.test(`byte-exact layout of DBR types 0-34, 37, 38 for a ${c.native} PV`, () => {
    const source = sourceOf(c);
    for (let type = 0; type <= 34; type++) {
      const expected = pad8(expectedLayout(type, c.as[type % 7], c.native));
      assertBytes(encodeDbr(type, 1, source), expected, `type ${type} from ${c.native}`);
    }
    assertBytes(
      encodeDbr(DBR.STSACK_STRING, 1, source),
      pad8(hex("00 03 00 02 00 01 00 02", c.as[0])),
      "STSACK_STRING",
    );
    assertBytes(encodeDbr(DBR.CLASS_NAME, 1, source), hex(str("ai", 40)), "CLASS_NAME");
  });

  Deno.test(`round trip encode -> decode of all readable types for a ${c.native} PV`, () => {
    const source = sourceOf(c);
    for (let type = 0; type <= 38; type++) {
      if (!isReadableDbrType(type)) continue;
      const payload = encodeDbr(type, 1, source, 24).subarray(24);
      const decoded = decodeDbr(type, 1, payload);
      assert.equal(decoded.count, 1);
      const base = type <= 34 ? type % 7 : 0;
      // The decoded value equals the hand-computed element bytes read back natively.
      const element = hex(type === DBR.CLASS_NAME ? str("ai", 40) : c.as[base]);
      assert.deepEqual(decoded.value, elementValue(element, base), `type ${type}`);
      if (type >= 7 && type !== DBR.CLASS_NAME) {
        assert.equal(decoded.status, 3);
        assert.equal(decoded.severity, 2);
      }
      if (type >= 14 && type <= 20) {
        assert.deepEqual(decoded.epicsTime, { seconds: 0x3fb55380, nanoseconds: 0x075bcd15 });
      }
      if ((type >= 22 && type <= 34) && base !== 0 && base !== 3) {
        assert.equal(decoded.metadata.units, "mm");
        assert.deepEqual(decoded.metadata.warningLimits, [-8 & (base === 4 ? 0xff : -1), 80]);
        if (base === 2 || base === 6) {
          assert.equal(decoded.metadata.precision, 3);
          assert.deepEqual(decoded.metadata.displayLimits, [-10, 100]);
          assert.deepEqual(decoded.metadata.alarmLimits, [-9, 90]);
        }
        if (type >= 29) assert.ok(decoded.metadata.controlLimits);
      }
      if (base === 3 && type >= 22) {
        assert.deepEqual(decoded.metadata.enumLabels, c.native === "enum" ? LABELS : []);
      }
      if (type === DBR.STSACK_STRING) {
        assert.equal(decoded.ackt, true);
        assert.equal(decoded.acks, 2);
      }
      if (type === DBR.CLASS_NAME) assert.equal(decoded.metadata.recordType, "ai");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// counts, padding, header room

function longSource(value: Int32Array): DbrSource {
  return { value, type: "long", timestamp: 0, severity: 0, status: 0, metadata: {} };
}

Deno.test("encode gives exactly count elements: zeros past the value, truncation below it", () => {
  const source = longSource(new Int32Array([1, 2]));
  assertBytes(encodeDbr(DBR.LONG, 4, source), hex("00000001 00000002 00000000 00000000"), "4");
  assertBytes(encodeDbr(DBR.LONG, 1, source), hex("00000001 00000000"), "1 padded");
  assertBytes(encodeDbr(DBR.TIME_LONG, 0, source), hex(z(16)), "metadata only");
  assertBytes(encodeDbr(DBR.STRING, 0, source), new Uint8Array(0), "empty");
  const shorts = encodeDbr(DBR.TIME_SHORT, 3, source);
  assertBytes(shorts, hex(z(12), "0000", "0001 0002 0000", z(4)), "TIME_SHORT x3 padded to 24");
});

Deno.test("header room: payload at the given offset, any offset gives the same bytes", () => {
  const value = new Int32Array(1000).map((_, i) => i * 65599 - 300000);
  const reference = encodeDbr(DBR.TIME_LONG, 1000, longSource(value));
  for (const room of [0, 1, 3, 16, 24, 30]) {
    const out = encodeDbr(DBR.TIME_LONG, 1000, longSource(value), room);
    assert.equal(out.length, room + reference.length);
    assertBytes(out.subarray(room), reference, `room ${room}`);
    assert.ok(out.subarray(0, room).every((b) => b === 0));
  }
  const doubles = Float64Array.from(value, (x) => x / 7);
  const dref = encodeDbr(DBR.TIME_DOUBLE, 1000, { ...longSource(value), value: doubles });
  for (const room of [1, 4, 12, 16]) {
    const out = encodeDbr(DBR.TIME_DOUBLE, 1000, { ...longSource(value), value: doubles }, room);
    assertBytes(out.subarray(room), dref, `double room ${room}`);
  }
});

Deno.test("converting encodes give the same bytes at any header room", () => {
  const longs = Int32Array.from({ length: 257 }, (_, i) => i * 40503 - 5_000_000);
  const doubles = Float64Array.from(longs, (x) => x * 1e31 + 0.75);
  const cases: [number, DbrSource][] = [
    [DBR.TIME_DOUBLE, longSource(longs)],
    [DBR.TIME_FLOAT, { ...longSource(longs), value: doubles, type: "double" }],
    [DBR.TIME_SHORT, longSource(longs)],
    [DBR.CTRL_CHAR, longSource(longs)],
    [DBR.GR_ENUM, { ...longSource(longs), value: doubles, type: "double" }],
    [DBR.STS_LONG, { ...longSource(longs), value: doubles, type: "double" }],
  ];
  for (const [type, source] of cases) {
    const reference = encodeDbr(type, 257, source);
    const decoded = decodeDbr(type, 257, reference).value as ArrayLike<number>;
    const values = source.value as Int32Array | Float64Array;
    const ctor = [Int16Array, Float32Array, Uint16Array, Uint8Array, Int32Array, Float64Array][
      dbrBaseType(type) - 1
    ];
    const expected = new ctor(values);
    if (expected instanceof Float32Array) {
      expected.forEach((x, i) => {
        if (!Number.isFinite(x)) {
          expected[i] = x > 0 ? 3.4028234663852886e38 : -3.4028234663852886e38;
        }
      });
    }
    assert.deepEqual(Array.from(decoded), Array.from(expected), `type ${type}`);
    for (const room of [1, 3, 16, 24]) {
      const out = encodeDbr(type, 257, source, room);
      assertBytes(out.subarray(room), reference, `type ${type} room ${room}`);
    }
  }
});

Deno.test("encode rejects invalid and write-only types, bad counts and oversize requests", () => {
  const source = longSource(new Int32Array([1]));
  assertDbrError(() => encodeDbr(39, 1, source), ECA.BADTYPE, "39");
  assertDbrError(() => encodeDbr(65535, 1, source), ECA.BADTYPE, "65535");
  assertDbrError(() => encodeDbr(DBR.PUT_ACKT, 1, source), ECA.GETFAIL, "35");
  assertDbrError(() => encodeDbr(DBR.PUT_ACKS, 1, source), ECA.GETFAIL, "36");
  assertDbrError(() => encodeDbr(DBR.LONG, -1, source), ECA.BADCOUNT, "-1");
  assertDbrError(() => encodeDbr(DBR.LONG, 0.5, source), ECA.BADCOUNT, "0.5");
  assertDbrError(() => encodeDbr(DBR.DOUBLE, 0xffffffff, source), ECA.TOLARGE, "huge");
  assertDbrError(() => encodeDbr(DBR.LONG, 1, source, -8), ECA.INTERNAL, "negative room");
});

// ---------------------------------------------------------------------------------------------
// big arrays

Deno.test("a 1028x512 LONG image survives DBR_TIME_LONG and DBR_DOUBLE round trips", () => {
  const n = 1028 * 512;
  const image = new Int32Array(n);
  for (let i = 0; i < n; i++) image[i] = (i * 2654435761) | 0;
  const source = longSource(image);
  const payload = encodeDbr(DBR.TIME_LONG, n, source, 24).subarray(24);
  assert.equal(payload.length, padTo8(12 + 4 * n));
  assert.equal(payload[12 + 4], (image[1] >>> 24) & 0xff, "big-endian first byte");
  const back = decodeDbr(DBR.TIME_LONG, n, payload).value as Int32Array;
  assert.ok(back instanceof Int32Array);
  assert.deepEqual(back, image);
  const asDouble = decodeDbr(DBR.DOUBLE, n, encodeDbr(DBR.DOUBLE, n, source)).value;
  assert.deepEqual(asDouble, new Float64Array(image));
  // unaligned receive buffer on the client side
  const shifted = new Uint8Array(payload.length + 1);
  shifted.set(payload, 1);
  assert.deepEqual(decodeDbr(DBR.TIME_LONG, n, shifted.subarray(1)).value, image);
});

Deno.test("CHAR and SHORT arrays round trip, also from unaligned buffers", () => {
  const bytes = Uint8Array.from({ length: 4097 }, (_, i) => (i * 31) & 0xff);
  const source: DbrSource = { ...longSource(new Int32Array(0)), value: bytes, type: "char" };
  const payload = encodeDbr(DBR.CHAR, bytes.length, source);
  assertBytes(payload.subarray(0, bytes.length), bytes, "CHAR is a plain copy");
  const shorts = Int16Array.from({ length: 333 }, (_, i) => i * 97 - 16000);
  const s2: DbrSource = { ...source, value: shorts, type: "short" };
  for (const room of [0, 1, 24]) {
    const p = encodeDbr(DBR.TIME_SHORT, shorts.length, s2, room).subarray(room);
    assert.deepEqual(decodeDbr(DBR.TIME_SHORT, shorts.length, p).value, shorts);
    const odd = new Uint8Array(p.length + 1);
    odd.set(p, 1);
    assert.deepEqual(decodeDbr(DBR.TIME_SHORT, shorts.length, odd.subarray(1)).value, shorts);
  }
});
