import assert from "node:assert/strict";
import {
  charArrayToString,
  DBR,
  DbrError,
  type DbrSource,
  decodeAck,
  decodeDbr,
  decodeDbrWrite,
  ECA,
  encodeDbr,
  EPICS_EPOCH_OFFSET,
  FLT_MAX,
  formatFloat,
  formatFloat32,
  fromEpicsTime,
  parseFloatPrefix,
  stringToCharArray,
  toEpicsTime,
  toNativeValue,
} from "../ca/dbr.ts";
import type { NativeType, NativeValue, PvMetadata } from "../ca/pv.ts";

function assertDbrError(fn: () => unknown, eca: number, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DbrError, `expected DbrError, got ${e}`);
    assert.equal(e.eca, eca, `eca of "${e.message}"`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

/** DBR_STRING payload of `texts`, 40 bytes each. */
function strings(...texts: string[]): Uint8Array {
  const out = new Uint8Array(40 * texts.length);
  texts.forEach((t, i) => {
    for (let k = 0; k < t.length; k++) out[40 * i + k] = t.charCodeAt(k);
  });
  return out;
}
/** Short scalar DBR_STRING payload as libca sends it: strlen+1 rounded up to 8. */
function shortString(text: string): Uint8Array {
  const out = new Uint8Array(Math.ceil((text.length + 1) / 8) * 8);
  for (let k = 0; k < text.length; k++) out[k] = text.charCodeAt(k);
  return out;
}
function be(kind: "f64" | "f32" | "i32" | "i16" | "u16", ...values: number[]): Uint8Array {
  const size = { f64: 8, f32: 4, i32: 4, i16: 2, u16: 2 }[kind];
  const view = new DataView(new ArrayBuffer(size * values.length));
  values.forEach((v, i) => {
    if (kind === "f64") view.setFloat64(i * size, v);
    else if (kind === "f32") view.setFloat32(i * size, v);
    else if (kind === "i32") view.setInt32(i * size, v);
    else if (kind === "i16") view.setInt16(i * size, v);
    else view.setUint16(i * size, v);
  });
  return new Uint8Array(view.buffer);
}
function read(
  type: number,
  native: NativeType,
  value: NativeValue,
  metadata: PvMetadata = {},
  count = value.length,
): NativeValue {
  const source: DbrSource = { value, type: native, timestamp: 0, severity: 0, status: 0, metadata };
  return decodeDbr(type, count, encodeDbr(type, count, source)).value;
}

const LABELS = ["Off", "On", "Fault"];

// ---------------------------------------------------------------------------------------------
// read side (native -> requested)

/**
 * Golden outputs of libCom 3.17.6 `cvtDoubleToString` ("d") and `cvtFloatToString` ("f", value
 * rounded to float32 first), captured with a small C program linked against Debian's libCom.
 */
const LIBCOM_GOLDEN: [string, number, number, string][] = [
  ["d", 3.14159, 6, "3.141590"],
  ["d", 0.125, 2, "0.13"],
  ["d", -0.004, 2, "-0.00"],
  ["d", 10000000.5, 0, "10000000"],
  ["d", 10000001.5, 0, "10000002"],
  ["d", 12345678.9, 6, "12345678.900"],
  ["d", 1e16, 6, "10000000000000000.000"],
  ["d", 2.5e20, 0, "  2e+20"],
  ["d", 1.5e20, 0, "  2e+20"],
  ["d", 1e20, 6, " 1.000000e+20"],
  ["d", -1e20, 6, "-1.000000e+20"],
  ["d", 1.5, 9, " 1.500000000e+00"],
  ["d", 2, 20, " 2.00000000000000000e+00"],
  ["d", 1.5e-300, 20, "1.50000000000000012e-300"],
  ["d", 110701281445457.0625, 4, "110701281445457.062"],
  ["d", -1870737836012476.5, 0, "-1870737836012476"],
  ["d", 0.5, 0, "1"],
  ["d", 1.5, 0, "2"],
  ["d", 2.5, 0, "3"],
  ["d", -0, 9, "-0.000000000e+00"],
  ["d", Infinity, 2, "      inf"],
  ["d", -Infinity, 0, "   -inf"],
  ["d", NaN, 3, "nan"],
  ["d", 4294967295.5, 0, "4294967296"],
  ["d", 99999.99999, 3, "100000.000"],
  ["d", 1e-5, 8, "0.00001000"],
  ["d", 5e-324, 17, "4.94065645841246544e-324"],
  ["d", 1.7976931348623157e308, 3, "1.798e+308"],
  ["f", 3.14159, 6, "3.141590"],
  ["f", 3.14159, 8, "3.14159011"],
  ["f", 9.9999, 8, "9.99989984"],
  ["f", 0.1, 6, "0.100000"],
  ["f", 1e7, 2, "10000000.00"],
  ["f", 12345678, 6, "12345678.000"],
  ["f", 99999999, 2, "1.00e+08"],
  ["f", 100000000, 2, "1.00e+08"],
  ["f", -100000000, 0, "-1e+08"],
  ["f", 2350853888, 0, " 2e+09"],
  ["f", -54430426352.312164, 3, "-5.443e+10"],
  ["f", 1.5, 9, "1.500000000e+00"],
  ["f", 1.5, 13, "1.500000000000e+00"],
  ["f", -881.97783182896364, 16, "-8.819778442383e+02"],
  ["f", 16777216.5, 1, "16777216.0"],
  ["f", 33554433, 0, "33554432"],
  ["f", 0.57835733743185391, 7, "0.5783574"],
  ["f", -429273.80907806900, 8, "-429273.81249997"],
  ["f", Infinity, 3, "      inf"],
  ["f", NaN, 2, "nan"],
];

Deno.test("float/double to string match libCom cvtFloatToString/cvtDoubleToString", () => {
  for (const [kind, value, precision, expected] of LIBCOM_GOLDEN) {
    const actual = kind === "d"
      ? formatFloat(value, precision)
      : formatFloat32(Math.fround(value), precision);
    assert.equal(actual, expected, `${kind} ${value} P=${precision}`);
  }
});

Deno.test("float to string follows cvtDoubleToString for every magnitude and precision", () => {
  assert.equal(formatFloat(3.14159), "3.141590");
  assert.equal(formatFloat(3.14159, 2), "3.14");
  assert.equal(formatFloat(2.5, 0), "3");
  assert.equal(formatFloat(-0.004, 2), "-0.00");
  assert.equal(formatFloat(0.125, 2), "0.13");
  assert.equal(formatFloat(9.9999, 3), "10.000");
  assert.equal(formatFloat(1e7, 2), "10000000.00");
  assert.equal(formatFloat(12345678.9, 6), "12345678.900"); // > 1e7: at most 3 decimals
  assert.equal(formatFloat(-12345678.9, 1), "-12345678.9");
  assert.equal(formatFloat(1e16, 6), "10000000000000000.000");
  assert.equal(formatFloat(1e20, 6), " 1.000000e+20"); // width P+7
  assert.equal(formatFloat(-1e20, 6), "-1.000000e+20");
  assert.equal(formatFloat(1.5, 9), " 1.500000000e+00"); // P > 8 -> exponential
  assert.equal(formatFloat(1.5e-300, 20), "1.50000000000000012e-300"); // P capped at 17
  assert.equal(formatFloat(2, 20), " 2.00000000000000000e+00");
  assert.equal(formatFloat(NaN, 3), "nan");
  assert.equal(formatFloat(Infinity, 2), "      inf");
  assert.equal(formatFloat(-Infinity, 0), "   -inf");
  assert.equal(formatFloat(1.5, -3), "2"); // negative precision counts as 0
});

Deno.test("numeric reads as DBR_STRING: precision, integers, enum labels, char numbers", () => {
  assert.deepEqual(read(DBR.STRING, "double", Float64Array.of(2.5, -1), { precision: 2 }), [
    "2.50",
    "-1.00",
  ]);
  assert.deepEqual(read(DBR.TIME_STRING, "float", Float32Array.of(0.5)), ["0.500000"]);
  assert.deepEqual(read(DBR.STRING, "long", Int32Array.of(-2147483648)), ["-2147483648"]);
  assert.deepEqual(read(DBR.STRING, "char", Uint8Array.of(65)), ["65"]);
  const labels = { enumLabels: LABELS };
  assert.deepEqual(read(DBR.STS_STRING, "enum", Uint16Array.of(1, 7), labels), ["On", "7"]);
  assert.deepEqual(read(DBR.STRING, "enum", Uint16Array.of(0), {}), ["0"]);
});

Deno.test("numeric reads use C casts: truncation, low bits, float saturation", () => {
  const doubles = Float64Array.of(2.9, -2.9, 70000.5, 1e40, -1e40, Infinity);
  assert.deepEqual(read(DBR.LONG, "double", doubles.subarray(0, 3)), Int32Array.of(2, -2, 70000));
  assert.deepEqual(read(DBR.SHORT, "double", doubles.subarray(0, 3)), Int16Array.of(2, -2, 4464));
  assert.deepEqual(read(DBR.CHAR, "long", Int32Array.of(256 + 7, -1)), Uint8Array.of(7, 255));
  assert.deepEqual(read(DBR.ENUM, "short", Int16Array.of(-1)), Uint16Array.of(65535));
  assert.deepEqual(
    read(DBR.FLOAT, "double", doubles.subarray(3)),
    Float32Array.of(FLT_MAX, -FLT_MAX, Infinity),
  );
  assert.deepEqual(read(DBR.DOUBLE, "char", Uint8Array.of(255)), Float64Array.of(255));
});

Deno.test("string PVs read as numbers: strtod prefix, empty is 0, text fails with GETFAIL", () => {
  assert.deepEqual(
    read(DBR.DOUBLE, "string", ["  12.5abc", "", "-1e3", "0x10", " inf"]),
    [
      12.5,
      0,
      -1000,
      16,
      Infinity,
    ].reduce((a, x, i) => (a[i] = x, a), new Float64Array(5)),
  );
  assert.deepEqual(read(DBR.LONG, "string", ["7.9"]), Int32Array.of(7));
  const source: DbrSource = {
    value: ["abc"],
    type: "string",
    timestamp: 0,
    severity: 0,
    status: 0,
    metadata: {},
  };
  assertDbrError(() => encodeDbr(DBR.TIME_DOUBLE, 1, source), ECA.GETFAIL, /abc/);
  assert.deepEqual(read(DBR.STRING, "string", ["x".repeat(50)]), ["x".repeat(39)]);
});

Deno.test("metadata: units cut to 7 chars, labels to 25 and 16 states, limits cast", () => {
  const meta: PvMetadata = {
    units: "micrometre",
    displayLimits: [-1e10, 1e10],
    precision: 4,
    enumLabels: Array.from({ length: 20 }, (_, i) => `state-${i}-${"x".repeat(30)}`),
  };
  const source: DbrSource = {
    value: Uint16Array.of(3),
    type: "enum",
    timestamp: 0,
    severity: 0,
    status: 0,
    metadata: meta,
  };
  const grEnum = decodeDbr(DBR.GR_ENUM, 1, encodeDbr(DBR.GR_ENUM, 1, source));
  assert.equal(grEnum.metadata.enumLabels!.length, 16);
  assert.equal(grEnum.metadata.enumLabels![15], `state-15-${"x".repeat(16)}`);
  const grFloat = decodeDbr(DBR.GR_FLOAT, 1, encodeDbr(DBR.GR_FLOAT, 1, source));
  assert.equal(grFloat.metadata.units, "microme");
  assert.equal(grFloat.metadata.precision, 4);
  assert.deepEqual(grFloat.metadata.displayLimits, [-1e10, 1e10].map(Math.fround));
  const grShort = decodeDbr(DBR.GR_SHORT, 1, encodeDbr(DBR.GR_SHORT, 1, source));
  assert.deepEqual(grShort.metadata.displayLimits, [(-1e10 << 16) >> 16, (1e10 << 16) >> 16]);
  // GR_ENUM of a non-enum PV: no states
  const dbl = { ...source, type: "double" as const, value: Float64Array.of(1) };
  assert.deepEqual(decodeDbr(DBR.CTRL_ENUM, 1, encodeDbr(DBR.CTRL_ENUM, 1, dbl)).metadata, {
    enumLabels: [],
  });
});

Deno.test("non-Latin-1 characters become '?'", () => {
  assert.deepEqual(read(DBR.STRING, "string", ["µm ☃"]), ["µm ?"]);
});

// ---------------------------------------------------------------------------------------------
// write side (client -> native)

Deno.test("caput numbers as DBR_STRING: float, integer, whitespace, hex, prefix rules", () => {
  assert.deepEqual(
    decodeDbrWrite(DBR.STRING, 1, shortString("3.5"), "double"),
    Float64Array.of(3.5),
  );
  assert.deepEqual(decodeDbrWrite(DBR.STRING, 1, shortString(" 12 "), "long"), Int32Array.of(12));
  assert.deepEqual(decodeDbrWrite(DBR.STRING, 1, shortString("-7"), "short"), Int16Array.of(-7));
  assert.deepEqual(
    decodeDbrWrite(DBR.STRING, 1, shortString("0x10"), "double"),
    Float64Array.of(16),
  );
  assert.deepEqual(
    decodeDbrWrite(DBR.STRING, 1, shortString("1e3"), "float"),
    Float32Array.of(1000),
  );
  assert.deepEqual(decodeDbrWrite(DBR.STRING, 1, shortString("255"), "char"), Uint8Array.of(255));
  assert.deepEqual(decodeDbrWrite(DBR.STRING, 1, shortString("-1"), "char"), Uint8Array.of(255));
  assert.deepEqual(
    decodeDbrWrite(DBR.STRING, 3, strings("1", "2.5", "-3"), "double"),
    Float64Array.of(1, 2.5, -3),
  );
  assert.deepEqual(decodeDbrWrite(DBR.STRING, 1, strings("hello"), "string"), ["hello"]);
  assert.deepEqual(decodeDbrWrite(DBR.STRING, 1, strings("x".repeat(40)), "string"), [
    "x".repeat(39),
  ]);
});

Deno.test("bad string writes fail with PUTFAIL", () => {
  assertDbrError(() => decodeDbrWrite(0, 1, shortString("abc"), "double"), ECA.PUTFAIL, /abc/);
  assertDbrError(() => decodeDbrWrite(0, 1, shortString("abc"), "long"), ECA.PUTFAIL, /abc/);
  assertDbrError(() => decodeDbrWrite(0, 1, shortString(""), "long"), ECA.PUTFAIL);
  assertDbrError(() => decodeDbrWrite(0, 1, shortString(".5"), "short"), ECA.PUTFAIL);
  assertDbrError(() => decodeDbrWrite(0, 1, shortString("70000"), "short"), ECA.PUTFAIL, /range/);
  assertDbrError(() => decodeDbrWrite(0, 1, shortString("3000000000"), "long"), ECA.PUTFAIL);
  assertDbrError(() => decodeDbrWrite(0, 1, shortString("256"), "char"), ECA.PUTFAIL);
  assertDbrError(() => decodeDbrWrite(0, 2, strings("1", "x"), "float"), ECA.PUTFAIL, /"x"/);
});

Deno.test("string writes parse completely (epicsParseDouble/epicsParseLong without units)", () => {
  const d = (text: string) => decodeDbrWrite(DBR.STRING, 1, shortString(text), "double");
  const l = (text: string) => decodeDbrWrite(DBR.STRING, 1, shortString(text), "long");
  for (const bad of ["1,5", "2abc", "1e", "1.5.", "0x1g", "0x", "1 2", "--1", "1e400", "0x1p3"]) {
    assertDbrError(() => d(bad), ECA.PUTFAIL, /is not a number/);
  }
  for (const bad of ["1,5", "1.9", "1e3", "0x10", "7 x", "+-1"]) {
    assertDbrError(() => l(bad), ECA.PUTFAIL, /is not an integer/);
  }
  assertDbrError(
    () => decodeDbrWrite(DBR.STRING, 1, shortString("1,5"), "enum", LABELS),
    ECA.PUTFAIL,
  );
  // Accepted: white space around, hex integers (as epicsStrtod), inf/nan, signs.
  assert.deepEqual(d(" \t-2.5e1 \n"), Float64Array.of(-25));
  assert.deepEqual(d("0x10"), Float64Array.of(16));
  assert.deepEqual(d("-0X1f"), Float64Array.of(-31));
  assert.deepEqual(d("-Infinity"), Float64Array.of(-Infinity));
  assert.ok(Number.isNaN((d("nan(0x1)") as Float64Array)[0]));
  assert.deepEqual(d("5."), Float64Array.of(5));
  assert.deepEqual(l(" +42 "), Int32Array.of(42));
});

Deno.test("enum writes: label, index string, numeric index; unknown or out of range fails", () => {
  const w = (type: number, payload: Uint8Array, labels: readonly string[] | undefined = LABELS) =>
    decodeDbrWrite(type, 1, payload, "enum", labels);
  assert.deepEqual(w(DBR.STRING, shortString("Fault")), Uint16Array.of(2));
  assert.deepEqual(w(DBR.STRING, shortString("1")), Uint16Array.of(1));
  assert.deepEqual(w(DBR.DOUBLE, be("f64", 2)), Uint16Array.of(2));
  assert.deepEqual(w(DBR.SHORT, be("i16", 0)), Uint16Array.of(0));
  assert.deepEqual(w(DBR.STRING, shortString("40000"), []), Uint16Array.of(40000));
  assertDbrError(() => w(DBR.STRING, shortString("Broken")), ECA.PUTFAIL, /Broken/);
  assertDbrError(() => w(DBR.STRING, shortString("off")), ECA.PUTFAIL); // labels are exact
  assertDbrError(() => w(DBR.STRING, shortString("3")), ECA.PUTFAIL, /out of range/);
  assertDbrError(() => w(DBR.DOUBLE, be("f64", 3)), ECA.PUTFAIL);
  assertDbrError(() => w(DBR.DOUBLE, be("f64", -1)), ECA.PUTFAIL);
  assertDbrError(() => w(DBR.LONG, be("i32", 5)), ECA.PUTFAIL, /out of range/);
  assertDbrError(() => w(DBR.STRING, shortString("70000"), []), ECA.PUTFAIL);
});

Deno.test("numeric writes: C casts between integers, non-finite or out-of-range floats fail", () => {
  assert.deepEqual(decodeDbrWrite(DBR.LONG, 1, be("i32", 70000), "short"), Int16Array.of(4464));
  assert.deepEqual(decodeDbrWrite(DBR.DOUBLE, 1, be("f64", -2.9), "long"), Int32Array.of(-2));
  assert.deepEqual(
    decodeDbrWrite(DBR.DOUBLE, 1, be("f64", 1e39), "float"),
    Float32Array.of(FLT_MAX),
  );
  assert.deepEqual(decodeDbrWrite(DBR.FLOAT, 1, be("f32", NaN), "double"), Float64Array.of(NaN));
  assert.deepEqual(decodeDbrWrite(DBR.SHORT, 1, be("i16", -5), "double"), Float64Array.of(-5));
  assertDbrError(() => decodeDbrWrite(DBR.DOUBLE, 1, be("f64", NaN), "long"), ECA.PUTFAIL);
  assertDbrError(() => decodeDbrWrite(DBR.DOUBLE, 1, be("f64", Infinity), "short"), ECA.PUTFAIL);
  assertDbrError(() => decodeDbrWrite(DBR.FLOAT, 1, be("f32", -Infinity), "char"), ECA.PUTFAIL);
  assertDbrError(() => decodeDbrWrite(DBR.DOUBLE, 1, be("f64", 1e10), "long"), ECA.PUTFAIL);
  assert.deepEqual(decodeDbrWrite(DBR.DOUBLE, 1, be("f64", 2.5), "string"), ["2.500000"]);
  assert.deepEqual(decodeDbrWrite(DBR.LONG, 2, be("i32", 12, -3), "string"), ["12", "-3"]);
});

Deno.test("metadata of compound write types is skipped: value read at the type's offset", () => {
  const sts = new Uint8Array(16);
  sts.set([0, 3, 0, 2, 9, 9, 9, 9]);
  sts.set(be("f64", 6.25), 8);
  assert.deepEqual(decodeDbrWrite(DBR.STS_DOUBLE, 1, sts, "double"), Float64Array.of(6.25));
  const ctrlLong = new Uint8Array(48);
  ctrlLong.set(be("i32", -9), 44);
  assert.deepEqual(decodeDbrWrite(DBR.CTRL_LONG, 1, ctrlLong, "long"), Int32Array.of(-9));
  const timeString = new Uint8Array(56);
  timeString.set(strings("4.5"), 12);
  assert.deepEqual(decodeDbrWrite(DBR.TIME_STRING, 1, timeString, "float"), Float32Array.of(4.5));
});

Deno.test("caput -S: a CHAR array written to a STRING native is one long string", () => {
  const text = "a long description that is longer than forty characters";
  const payload = stringToCharArray(text, 256);
  assert.equal(payload.length, text.length + 1);
  assert.deepEqual(decodeDbrWrite(DBR.CHAR, payload.length, payload, "string", undefined, 1), [
    text,
  ]);
  assert.equal(charArrayToString(Uint8Array.of(104, 105, 0, 120)), "hi");
  assert.deepEqual(stringToCharArray("hello", 3), Uint8Array.of(104, 101, 0));
  // CHAR array to a CHAR native stays bytes
  assert.deepEqual(
    decodeDbrWrite(DBR.CHAR, 3, Uint8Array.of(1, 2, 3), "char"),
    Uint8Array.of(1, 2, 3),
  );
});

Deno.test("write counts: shorter arrays, clamping to maxCount, count 0 and short payloads", () => {
  const three = be("f64", 1, 2, 3);
  assert.deepEqual(
    decodeDbrWrite(DBR.DOUBLE, 2, three, "double", undefined, 10),
    Float64Array.of(1, 2),
  );
  assert.deepEqual(
    decodeDbrWrite(DBR.DOUBLE, 3, three, "double", undefined, 2),
    Float64Array.of(1, 2),
  );
  assertDbrError(() => decodeDbrWrite(DBR.DOUBLE, 0, three, "double"), ECA.BADCOUNT);
  assertDbrError(() => decodeDbrWrite(DBR.DOUBLE, 4, three, "double"), ECA.BADCOUNT, /too short/);
  assertDbrError(() => decodeDbrWrite(DBR.TIME_LONG, 1, new Uint8Array(15), "long"), ECA.BADCOUNT);
  assertDbrError(() => decodeDbrWrite(DBR.DOUBLE, 2 ** 32, three, "double"), ECA.BADCOUNT);
  assertDbrError(() => decodeDbrWrite(DBR.DOUBLE, -1, three, "double"), ECA.BADCOUNT);
  // short scalar string needs a NUL; arrays need full slots
  assertDbrError(
    () => decodeDbrWrite(DBR.STRING, 1, Uint8Array.of(49, 50, 51, 52, 53, 54, 55, 56), "long"),
    ECA.BADCOUNT,
  );
  assertDbrError(() => decodeDbrWrite(DBR.STRING, 1, new Uint8Array(0), "long"), ECA.BADCOUNT);
  assertDbrError(
    () => decodeDbrWrite(DBR.STRING, 2, strings("1").subarray(0, 48), "long"),
    ECA.BADCOUNT,
  );
  assertDbrError(
    () => decodeDbrWrite(DBR.STS_STRING, 1, new Uint8Array(4), "string"),
    ECA.BADCOUNT,
  );
  assert.deepEqual(
    decodeDbrWrite(DBR.STS_STRING, 1, Uint8Array.of(0, 0, 0, 0, 55, 0, 0, 0), "long"),
    Int32Array.of(7),
  );
});

Deno.test("write types: 35/36 via decodeAck, 37/38 not writable, 39+ invalid", () => {
  const payload = strings("1");
  assertDbrError(
    () => decodeDbrWrite(DBR.PUT_ACKT, 1, payload, "double"),
    ECA.BADTYPE,
    /decodeAck/,
  );
  assertDbrError(() => decodeDbrWrite(DBR.PUT_ACKS, 1, payload, "double"), ECA.BADTYPE);
  assertDbrError(() => decodeDbrWrite(DBR.STSACK_STRING, 1, payload, "double"), ECA.PUTFAIL);
  assertDbrError(() => decodeDbrWrite(DBR.CLASS_NAME, 1, payload, "string"), ECA.PUTFAIL);
  assertDbrError(() => decodeDbrWrite(39, 1, payload, "double"), ECA.BADTYPE);
  assertDbrError(() => decodeDbrWrite(65535, 1, payload, "double"), ECA.BADTYPE);
  assert.equal(decodeAck(Uint8Array.of(0, 2, 0, 0, 0, 0, 0, 0)), 2);
  assert.equal(decodeAck(Uint8Array.of(1, 0)), 256);
  assertDbrError(() => decodeAck(Uint8Array.of(1)), ECA.BADCOUNT);
});

Deno.test("decodeDbr rejects unreadable types and short payloads", () => {
  assertDbrError(() => decodeDbr(DBR.PUT_ACKT, 1, new Uint8Array(8)), ECA.BADTYPE);
  assertDbrError(() => decodeDbr(39, 1, new Uint8Array(8)), ECA.BADTYPE);
  assertDbrError(() => decodeDbr(65535, 1, new Uint8Array(8)), ECA.BADTYPE);
  assertDbrError(() => decodeDbr(DBR.TIME_DOUBLE, 1, new Uint8Array(23)), ECA.BADCOUNT);
  assertDbrError(() => decodeDbr(DBR.LONG, 2 ** 31, new Uint8Array(8)), ECA.BADCOUNT);
  assertDbrError(() => decodeDbr(DBR.LONG, 1.5, new Uint8Array(8)), ECA.BADCOUNT);
  assert.equal(decodeDbr(DBR.TIME_DOUBLE, 0, new Uint8Array(16)).value.length, 0);
});

// ---------------------------------------------------------------------------------------------
// program side: toNativeValue

Deno.test("toNativeValue keeps native typed arrays and converts others with one copy", () => {
  const longs = Int32Array.of(1, 2, 3);
  assert.equal(toNativeValue(longs, "long", 3), longs);
  const doubles = Float64Array.of(1.5);
  assert.equal(toNativeValue(doubles, "double", 1), doubles);
  const fromU32 = toNativeValue(Uint32Array.of(1, 0xffffffff), "long", 2);
  assert.deepEqual(fromU32, Int32Array.of(1, -1));
  assert.deepEqual(toNativeValue(Uint32Array.of(7), "double", 1), Float64Array.of(7));
  assert.deepEqual(
    toNativeValue(Float64Array.of(1e39, 2), "float", 2),
    Float32Array.of(FLT_MAX, 2),
  );
  assert.deepEqual(toNativeValue(Int8Array.of(-1), "char", 1), Uint8Array.of(255));
  assert.deepEqual(toNativeValue(Float64Array.of(2.7), "short", 1), Int16Array.of(2));
});

Deno.test("toNativeValue converts numbers, strings and plain arrays", () => {
  assert.deepEqual(toNativeValue(3.5, "double", 1), Float64Array.of(3.5));
  assert.deepEqual(toNativeValue(70000, "short", 1), Int16Array.of(4464));
  assert.deepEqual(toNativeValue("2.5", "float", 1), Float32Array.of(2.5));
  assert.deepEqual(toNativeValue("On", "enum", 1, LABELS), Uint16Array.of(1));
  assert.deepEqual(toNativeValue(["Fault", "0"], "enum", 2, LABELS), Uint16Array.of(2, 0));
  assert.deepEqual(toNativeValue([1, 2.9], "long", 5), Int32Array.of(1, 2));
  assert.deepEqual(toNativeValue("text", "string", 1), ["text"]);
  assert.deepEqual(toNativeValue(1.5, "string", 1), ["1.5"]);
  assert.deepEqual(toNativeValue(["a", "b"], "string", 2), ["a", "b"]);
  assert.deepEqual(toNativeValue(Uint8Array.of(1, 2), "string", 2), ["1", "2"]);
  assert.deepEqual(toNativeValue([], "double", 4), new Float64Array(0));
});

Deno.test("toNativeValue refuses too many elements (RangeError) and non-numeric strings", () => {
  assert.throws(() => toNativeValue(Int32Array.of(1, 2, 3), "long", 2), RangeError);
  assert.throws(() => toNativeValue([1, 2], "double", 1), RangeError);
  assert.throws(() => toNativeValue("x", "string", 0), RangeError);
  assertDbrError(() => toNativeValue("abc", "double", 1), ECA.PUTFAIL);
  assertDbrError(() => toNativeValue(["1", "Nope"], "enum", 2, LABELS), ECA.PUTFAIL);
});

// ---------------------------------------------------------------------------------------------
// EPICS time and parsing helpers

Deno.test("EPICS time conversions", () => {
  assert.equal(EPICS_EPOCH_OFFSET, 631152000);
  assert.deepEqual(toEpicsTime(1700000000000), { seconds: 1068848000, nanoseconds: 0 });
  assert.deepEqual(toEpicsTime(631152000500.25), { seconds: 0, nanoseconds: 500250000 });
  assert.deepEqual(toEpicsTime(1700000000999.9999999), { seconds: 1068848001, nanoseconds: 0 });
  assert.deepEqual(toEpicsTime(0), { seconds: 0, nanoseconds: 0 }); // before 1990
  assert.deepEqual(toEpicsTime(NaN), { seconds: 0, nanoseconds: 0 });
  assert.deepEqual(toEpicsTime(1e16), { seconds: 0xffffffff, nanoseconds: 999999999 });
  assert.equal(fromEpicsTime(1068848000, 500000), 1700000000000.5);
  for (const ms of [631152000000, 1234567890123.25, 1763900000000.75]) {
    const t = toEpicsTime(ms);
    assert.equal(fromEpicsTime(t.seconds, t.nanoseconds), ms);
  }
});

Deno.test("strtod-like prefix parsing", () => {
  assert.equal(parseFloatPrefix("  -1.5e2xyz"), -150);
  assert.equal(parseFloatPrefix("1e"), 1);
  assert.equal(parseFloatPrefix(".5"), 0.5);
  assert.equal(parseFloatPrefix("5."), 5);
  assert.equal(parseFloatPrefix("-0X1f"), -31);
  assert.equal(parseFloatPrefix("Infinity"), Infinity);
  assert.ok(Number.isNaN(parseFloatPrefix("nan")!));
  assert.equal(parseFloatPrefix("e5"), undefined);
  assert.equal(parseFloatPrefix("."), undefined);
  assert.equal(parseFloatPrefix(""), undefined);
});
