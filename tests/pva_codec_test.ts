/**
 * pvAccess codec: byte layouts fixed by the protocol (spec §2, §3, §7.4, §8; bytes checked there
 * against PVXS 1.5.2), encoded byte-equal and decoded back.
 */
import assert from "node:assert/strict";
import { BitSet, PvaProtocolError, WireReader, WireWriter } from "../pva/wire.ts";
import {
  readChanged,
  readFieldDesc,
  readValue,
  type StructValue,
  T,
  type UnionValue,
  writeFieldDesc,
  writePartial,
  writeValue,
} from "../pva/pvdata.ts";
import { ALARM_T, dimension, ND_VALUE_MEMBERS, NT_NDARRAY, TIME_T } from "../pva/nt.ts";
import {
  beginMessage,
  buildMessage,
  Cmd,
  endMessage,
  LargeMessagePool,
  type Message,
  MessageFramer,
} from "../pva/messages.ts";
import { serverGreeting } from "../pva/connection.ts";
import { encodeSearchResponse } from "../pva/search.ts";
import { parsePvRequest } from "../pva/request.ts";
import { concat } from "./support/bytes.ts";

function hex(text: string): Uint8Array {
  const parts = text.trim().split(/\s+/).filter((p) => p !== "");
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}
function str(s: string): Uint8Array {
  return concat(Uint8Array.of(s.length), new TextEncoder().encode(s));
}
function written(little: boolean, f: (w: WireWriter) => void): Uint8Array {
  const w = new WireWriter(little);
  f(w);
  return w.toBytes();
}

Deno.test("pva wire: Size and String forms (§2.1, §2.2)", () => {
  assert.deepEqual(written(false, (w) => w.size(3)), hex("03"));
  assert.deepEqual(written(false, (w) => w.size(253)), hex("fd"));
  assert.deepEqual(written(false, (w) => w.size(254)), hex("fe 00 00 00 fe"));
  assert.deepEqual(written(true, (w) => w.size(254)), hex("fe fe 00 00 00"));
  assert.deepEqual(written(false, (w) => w.size(1000)), hex("fe 00 00 03 e8"));
  assert.deepEqual(written(true, (w) => w.string("tcp")), hex("03 74 63 70"));
  assert.equal(new WireReader(hex("fe e8 03 00 00"), true).size(), 1000);
  assert.equal(new WireReader(hex("ff"), true).size(), -1);
  assert.equal(new WireReader(hex("ff"), true).string(), ""); // lenient old-Java form
  assert.throws(() => new WireReader(hex("05 61 62"), true).string(), PvaProtocolError);
});

Deno.test("pva wire: BitSet words follow the byte order (§2.5 table)", () => {
  const cases: [number[], string, string][] = [
    [[], "00", "00"],
    [[0], "01 01", "01 01"],
    [[1, 3, 4, 5, 7, 8, 9], "02 ba 03", "02 ba 03"],
    [[8], "02 00 01", "02 00 01"],
    [[63], "08 00 00 00 00 00 00 00 80", "08 80 00 00 00 00 00 00 00"],
    [[2, 65, 70], "09 04 00 00 00 00 00 00 00 42", "09 00 00 00 00 00 00 00 04 42"],
  ];
  for (const [bits, le, be] of cases) {
    assert.deepEqual(written(true, (w) => w.bitSet(BitSet.of(...bits))), hex(le), `LE ${bits}`);
    assert.deepEqual(written(false, (w) => w.bitSet(BitSet.of(...bits))), hex(be), `BE ${bits}`);
    assert.deepEqual(new WireReader(hex(le), true).bitSet().toArray(), bits);
    assert.deepEqual(new WireReader(hex(be), false).bitSet().toArray(), bits);
  }
  // Untrimmed input is accepted.
  assert.deepEqual(new WireReader(hex("03 01 00 00"), true).bitSet().toArray(), [0]);
});

Deno.test("pva wire: Status forms (§2.6)", () => {
  assert.deepEqual(
    written(true, (w) => w.status({ type: 0, message: "", callTree: "" })),
    hex("ff"),
  );
  const warn = hex("01 0a 4c 6f 77 20 6d 65 6d 6f 72 79 00");
  assert.deepEqual(
    written(true, (w) => w.status({ type: 1, message: "Low memory", callTree: "" })),
    warn,
  );
  assert.deepEqual(new WireReader(warn, true).status(), {
    type: 1,
    message: "Low memory",
    callTree: "",
  });
});

/** The NTScalar double type of spec §8.4 (139-byte INIT reply payload). */
const MINIMAL_NTSCALAR = T.struct("epics:nt/NTScalar:1.0", {
  value: T.scalar("double"),
  alarm: ALARM_T,
  timeStamp: TIME_T,
});

const INIT_REPLY_BE = hex(`
ca 02 c0 0a 00 00 00 8b
10 00 20 00  08  ff
80 15 65 70 69 63 73 3a 6e 74 2f 4e 54 53 63 61 6c 61 72 3a 31 2e 30
03
05 76 61 6c 75 65  43
05 61 6c 61 72 6d  80 07 61 6c 61 72 6d 5f 74 03
   08 73 65 76 65 72 69 74 79 22
   06 73 74 61 74 75 73 22
   07 6d 65 73 73 61 67 65 60
09 74 69 6d 65 53 74 61 6d 70  80 06 74 69 6d 65 5f 74 03
   10 73 65 63 6f 6e 64 73 50 61 73 74 45 70 6f 63 68 23
   0b 6e 61 6e 6f 73 65 63 6f 6e 64 73 22
   07 75 73 65 72 54 61 67 22`);

const GET_REPLY_BE = hex(`
ca 02 c0 0a 00 00 00 2a
10 00 20 00  00  ff
02 ba 03
3f f8 00 00 00 00 00 00
00 00 00 00  00 00 00 00  00
00 00 00 00 65 53 f1 00
07 5b cd 15
00 00 00 00`);

Deno.test("pva codec: GET INIT reply and GET reply of §8.4 byte-equal (big-endian)", () => {
  const init = buildMessage(Cmd.GET, true, false, (w) => {
    w.u32(0x10002000).u8(0x08).status({ type: 0, message: "", callTree: "" });
    writeFieldDesc(w, MINIMAL_NTSCALAR);
  });
  assert.deepEqual(init, INIT_REPLY_BE);
  const value: StructValue = {
    value: 1.5,
    alarm: { severity: 0, status: 0, message: "" },
    timeStamp: { secondsPastEpoch: 1700000000n, nanoseconds: 123456789, userTag: 0 },
  };
  const bits = BitSet.of(1, 3, 4, 5, 7, 8, 9);
  const get = buildMessage(Cmd.GET, true, false, (w) => {
    w.u32(0x10002000).u8(0).status({ type: 0, message: "", callTree: "" }).bitSet(bits);
    writePartial(w, MINIMAL_NTSCALAR, value, bits);
  });
  assert.deepEqual(get, GET_REPLY_BE);
  // And decoded back.
  const r = new WireReader(INIT_REPLY_BE.subarray(14), false);
  assert.deepEqual(readFieldDesc(r, new Map()), MINIMAL_NTSCALAR);
  assert.equal(r.remaining, 0);
});

Deno.test("pva codec: server greeting (§8.2, little-endian as the PVXS IOC)", () => {
  assert.deepEqual(
    concat(...serverGreeting(true)),
    hex(`ca 02 41 02 00 00 00 00
      ca 02 40 01 14 00 00 00 00 00 01 00 ff 7f 02 09 61 6e 6f 6e 79 6d 6f 75 73 02 63 61`),
  );
});

Deno.test("pva codec: search response of §8.1 byte-equal", () => {
  const guid = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
  assert.deepEqual(
    encodeSearchResponse({ guid, tcpPort: 16075 }, 0x66696e64, true, [0x12345678]),
    hex(`ca 02 c0 04 00 00 00 2d 01 02 03 04 05 06 07 08 09 0a 0b 0c 66 69 6e 64
      00 00 00 00 00 00 00 00 00 00 ff ff 00 00 00 00 3e cb 03 74 63 70 01 00 01 12 34 56 78`),
  );
});

Deno.test("pva codec: pvRequest in plain and cached forms (§3.3)", () => {
  const cache = new Map();
  const plain = new WireReader(hex("80 00 01 05 66 69 65 6c 64 80 00 00"), true);
  const t1 = readFieldDesc(plain, cache);
  assert.deepEqual(parsePvRequest(t1, readValue(plain, t1!, cache)), { fields: [], options: {} });
  const cached = new WireReader(
    hex("fd 00 01 80 00 01 05 66 69 65 6c 64 fd 00 02 80 00 00 fe 00 01"),
    false,
  );
  const a = readFieldDesc(cached, cache);
  const b = readFieldDesc(cached, cache);
  assert.deepEqual(a, b);
  assert.deepEqual(a, t1);
  assert.throws(() => readFieldDesc(new WireReader(hex("fe 00 09"), false), cache), /cache key/);
  // The pipelined INIT request of §8.5 (little-endian).
  const req = new WireReader(
    concat(
      hex("80 00 02"),
      str("field"),
      hex("80 00 00"),
      str("record"),
      hex("80 00 01"),
      str("_options"),
      hex("80 00 02"),
      str("pipeline"),
      hex("60"),
      str("queueSize"),
      hex("60"),
      str("true"),
      str("4"),
    ),
    true,
  );
  const rt = readFieldDesc(req, new Map());
  assert.deepEqual(parsePvRequest(rt, readValue(req, rt!, new Map())), {
    fields: [],
    options: { pipeline: "true", queueSize: "4" },
  });
});

Deno.test("pva codec: NTNDArray value of §7.4 byte-equal (4x3 ushort, little-endian)", () => {
  const ts = { secondsPastEpoch: 1700000000n, nanoseconds: 5, userTag: 0 };
  const value: StructValue = {
    value: { index: 6, value: Uint16Array.of(0, 1, 2, 3, 100, 101, 102, 103, 200, 201, 202, 203) },
    codec: { name: "", parameters: { type: T.scalar("int"), value: 6 } },
    compressedSize: 24n,
    uncompressedSize: 24n,
    dimension: [dimension(4), dimension(3)],
    uniqueId: 42,
    dataTimeStamp: ts,
    attribute: [{
      name: "ColorMode",
      value: { type: T.scalar("int"), value: 0 },
      descriptor: "Color mode",
      sourceType: 0,
      source: "",
    }],
    descriptor: "",
    alarm: { severity: 0, status: 0, message: "" },
    timeStamp: ts,
    display: { limitLow: 0, limitHigh: 0, description: "", format: "", units: "" },
  };
  const expected = concat(
    hex("06 0c 00 00 01 00 02 00 03 00 64 00 65 00 66 00 67 00 c8 00 c9 00 ca 00 cb 00"),
    hex("00 22 06 00 00 00"),
    hex("18 00 00 00 00 00 00 00 18 00 00 00 00 00 00 00"),
    hex("02"),
    hex("01 04 00 00 00 00 00 00 00 04 00 00 00 01 00 00 00 00"),
    hex("01 03 00 00 00 00 00 00 00 03 00 00 00 01 00 00 00 00"),
    hex("2a 00 00 00"),
    hex("00 f1 53 65 00 00 00 00 05 00 00 00 00 00 00 00"),
    hex("01 01"),
    str("ColorMode"),
    hex("22 00 00 00 00"),
    str("Color mode"),
    hex("00 00 00 00 00"),
    hex("00"),
    hex("00 00 00 00 00 00 00 00 00"),
    hex("00 f1 53 65 00 00 00 00 05 00 00 00 00 00 00 00"),
    new Uint8Array(16),
    hex("00 00 00"),
  );
  const bytes = written(true, (w) => writeValue(w, NT_NDARRAY, value));
  assert.deepEqual(bytes, expected);
  const back = readValue(new WireReader(bytes, true), NT_NDARRAY, new Map()) as StructValue;
  assert.deepEqual(back.value, value.value);
  assert.deepEqual(back.dimension, value.dimension);
  assert.deepEqual(back.attribute, value.attribute);
  // The type round-trips too.
  const typeBytes = written(false, (w) => writeFieldDesc(w, NT_NDARRAY));
  assert.deepEqual(readFieldDesc(new WireReader(typeBytes, false), new Map()), NT_NDARRAY);
});

Deno.test("pva codec: every scalar and array type round-trips in both byte orders", () => {
  const type = T.struct("", {
    b: T.scalar("boolean"),
    i8: T.scalar("byte"),
    i16: T.scalar("short"),
    i32: T.scalar("int"),
    i64: T.scalar("long"),
    u8: T.scalar("ubyte"),
    u16: T.scalar("ushort"),
    u32: T.scalar("uint"),
    u64: T.scalar("ulong"),
    f32: T.scalar("float"),
    f64: T.scalar("double"),
    s: T.scalar("string"),
    ab: T.array("boolean"),
    a8: T.array("byte"),
    a16: T.array("short"),
    a32: T.array("int"),
    a64: T.array("long"),
    au8: T.array("ubyte"),
    au16: T.array("ushort"),
    au32: T.array("uint"),
    au64: T.array("ulong"),
    af32: T.array("float"),
    af64: T.array("double"),
    as: T.array("string"),
    u: T.union("", { x: T.scalar("int"), y: T.scalar("string") }),
    e: T.union("", { x: T.scalar("int") }),
    any: T.any(),
    sa: T.structArray(T.struct("", { q: T.scalar("int") })),
  });
  const value: StructValue = {
    b: true,
    i8: -5,
    i16: -300,
    i32: -70000,
    i64: -(2n ** 40n),
    u8: 250,
    u16: 65000,
    u32: 4000000000,
    u64: 2n ** 63n + 5n,
    f32: 1.5,
    f64: Math.PI,
    s: "héllo",
    ab: Uint8Array.of(1, 0, 1),
    a8: Int8Array.of(-1, 2),
    a16: Int16Array.of(-1, 300),
    a32: Int32Array.of(-1, 70000),
    a64: BigInt64Array.of(-1n, 2n ** 50n),
    au8: Uint8Array.of(255),
    au16: Uint16Array.of(65535, 1),
    au32: Uint32Array.of(4294967295, 7),
    au64: BigUint64Array.of(2n ** 64n - 1n),
    af32: Float32Array.of(0.5, -2),
    af64: Float64Array.of(1e300, -0.25),
    as: ["a", "", "ccc"],
    u: { index: 1, value: "sel" },
    e: { index: -1 },
    any: { type: T.array("double"), value: Float64Array.of(1, 2) },
    sa: [{ q: 1 }, null, { q: 3 }],
  };
  for (const little of [true, false]) {
    const typeBytes = written(little, (w) => writeFieldDesc(w, type));
    const bytes = written(little, (w) => writeValue(w, type, value));
    const cache = new Map();
    const t = readFieldDesc(new WireReader(typeBytes, little), cache);
    assert.deepEqual(t, type);
    assert.deepEqual(readValue(new WireReader(bytes, little), type, cache), value);
  }
});

Deno.test("pva codec: owned large payloads decode arrays as views without corrupting others", () => {
  const type = T.struct("", {
    tag: T.scalar("byte"),
    a: T.array("double"),
    b: T.array("double"),
    c: T.array("uint"),
  });
  const value: StructValue = {
    tag: 3,
    a: Float64Array.of(1.5, -2, 3),
    b: Float64Array.of(4, 5),
    c: Uint32Array.of(7, 4294967295),
  };
  const bytes = written(true, (w) => writeValue(w, type, value));
  for (const owned of [false, true]) {
    const r = new WireReader(bytes.slice(), true, owned);
    const back = readValue(r, type, new Map()) as StructValue;
    assert.deepEqual(back, value, `owned ${owned}`);
  }
});

Deno.test("pva: a recycled message buffer learns the padding that lands NTNDArray pixels aligned", () => {
  // An NTNDArray update as the server sends it: ioid (4), subcommand (1), changed bit set (2),
  // union selector (1), element count (5): the uint32 pixels start at payload offset 13, 1 byte
  // past a 4-byte boundary.
  const count = 64 * 1024;
  const message = (k: number): Uint8Array => {
    const pixels = Uint32Array.from({ length: count }, (_, i) => (i * 2654435761 + k) >>> 0);
    const w = new WireWriter(true);
    const at = beginMessage(w, Cmd.MONITOR, true);
    w.u32(7).u8(0).bitSet(new BitSet().set(1)); // ioid, subcommand, changed = value only
    writePartial(w, NT_NDARRAY, {
      value: { index: ND_VALUE_MEMBERS.indexOf("uint"), value: pixels },
    }, new BitSet().set(1));
    w.u8(0);
    endMessage(w, at);
    return concat(...w.finish());
  };
  const pool = new LargeMessagePool();
  const framer = new MessageFramer({
    server: false,
    maxMessage: 1 << 24,
    allocate: (size) => pool.allocate(size),
  });
  const decode = (k: number) => {
    framer.push(message(k));
    const m = framer.next() as Message;
    assert.ok(m.owned, "large message in an allocator buffer");
    const r = m.reader();
    r.u32();
    r.u8();
    const into: StructValue = {};
    readChanged(r, NT_NDARRAY, into, new Map());
    const px = (into.value as UnionValue).value as Uint32Array;
    assert.ok(px instanceof Uint32Array);
    assert.equal(px.buffer, m.payload.buffer, "pixels are a view of the message buffer");
    assert.equal(px[0], k);
    assert.equal(px[count - 1], ((count - 1) * 2654435761 + k) >>> 0);
    const moved = r.misalignment;
    pool.recycle(m.payload, moved);
    return { moved, start: m.payload.byteOffset };
  };
  const first = decode(1);
  assert.equal(first.start, 0);
  assert.equal(first.moved, 1, "the first update had to be moved into alignment");
  assert.equal(pool.pad, 7);
  for (const k of [2, 3]) {
    const later = decode(k);
    assert.equal(later.start, 7, "later updates start 7 bytes into their buffer");
    assert.equal(later.moved, 0, "and decode in place, with no move");
  }
});
