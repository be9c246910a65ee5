import assert from "node:assert/strict";
import {
  accessRightsMessage,
  beaconMessage,
  caErrorMessage,
  CaProtocolError,
  clearChannelMessage,
  CMD,
  createChanReply,
  createChanRequest,
  decodeHeader,
  encodeHeader,
  eventAddRequest,
  headerLength,
  MessageReader,
  nameMessage,
  padded,
  readNotifyRequest,
  searchReplyUdp,
  searchRequest,
  versionMessage,
} from "../ca/messages.ts";
import { concat } from "./support/bytes.ts";

/** Parses "00 0f ..." hex dumps (whitespace and newlines ignored). */
function hex(text: string): Uint8Array {
  const parts = text.trim().split(/\s+/).filter((p) => p !== "");
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

Deno.test("messages: worked example search request bytes (spec §13)", () => {
  const bytes = concat(versionMessage(1, 1), searchRequest("demo:temp", 1));
  assert.deepStrictEqual(
    bytes,
    hex(`00 00 00 00 00 01 00 0d 00 00 00 01 00 00 00 00
         00 06 00 10 00 05 00 0d 00 00 00 01 00 00 00 01
         64 65 6d 6f 3a 74 65 6d 70 00 00 00 00 00 00 00`),
  );
});

Deno.test("messages: worked example search reply bytes (spec §13)", () => {
  const bytes = concat(versionMessage(1, 1), searchReplyUdp(5064, 1));
  assert.deepStrictEqual(
    bytes,
    hex(`00 00 00 00 00 01 00 0d 00 00 00 01 00 00 00 00
         00 06 00 08 13 c8 00 00 ff ff ff ff 00 00 00 01
         00 0d 00 00 00 00 00 00`),
  );
});

Deno.test("messages: circuit setup, create, read, clear bytes (spec §13)", () => {
  assert.deepStrictEqual(
    versionMessage(0, 0),
    hex("00 00 00 00 00 00 00 0d 00 00 00 00 00 00 00 00"),
  );
  assert.deepStrictEqual(
    nameMessage(CMD.CLIENT_NAME, "alice"),
    hex(`00 14 00 08 00 00 00 00 00 00 00 00 00 00 00 00 61 6c 69 63 65 00 00 00`),
  );
  assert.deepStrictEqual(
    nameMessage(CMD.HOST_NAME, "ws1"),
    hex(`00 15 00 08 00 00 00 00 00 00 00 00 00 00 00 00 77 73 31 00 00 00 00 00`),
  );
  assert.deepStrictEqual(
    createChanRequest("demo:temp", 1),
    hex(`00 12 00 10 00 00 00 00 00 00 00 01 00 00 00 0d
         64 65 6d 6f 3a 74 65 6d 70 00 00 00 00 00 00 00`),
  );
  assert.deepStrictEqual(
    accessRightsMessage(1, 3),
    hex("00 16 00 00 00 00 00 00 00 00 00 01 00 00 00 03"),
  );
  assert.deepStrictEqual(
    createChanReply(6, 1, 1, 42),
    hex("00 12 00 00 00 06 00 01 00 00 00 01 00 00 00 2a"),
  );
  assert.deepStrictEqual(
    readNotifyRequest(20, 1, 42, 2),
    hex("00 0f 00 00 00 14 00 01 00 00 00 2a 00 00 00 02"),
  );
  assert.deepStrictEqual(
    clearChannelMessage(42, 1),
    hex("00 0c 00 00 00 00 00 00 00 00 00 2a 00 00 00 01"),
  );
  assert.deepStrictEqual(
    eventAddRequest(20, 0, 42, 7, 5),
    hex(`00 01 00 10 00 14 00 00 00 00 00 2a 00 00 00 07
         00 00 00 00 00 00 00 00 00 00 00 00 00 05 00 00`),
  );
});

Deno.test("messages: beacon bytes (spec §13)", () => {
  assert.deepStrictEqual(
    beaconMessage(5064, 0),
    hex("00 0d 00 00 00 0d 13 c8 00 00 00 00 00 00 00 00"),
  );
});

Deno.test("messages: ERROR for WRITE without access (spec §13)", () => {
  const request = { cmd: CMD.WRITE, size: 8, type: 6, count: 1, p1: 42, p2: 1 };
  assert.deepStrictEqual(
    caErrorMessage(request, 1, 376, "demo:temp"),
    hex(`00 0b 00 20 00 00 00 00 00 00 00 01 00 00 01 78
         00 04 00 08 00 06 00 01 00 00 00 2a 00 00 00 01
         64 65 6d 6f 3a 74 65 6d 70 00 00 00 00 00 00 00`),
  );
});

Deno.test("messages: extended header example (spec §13)", () => {
  const h = { cmd: CMD.EVENT_ADD, size: 8_000_016, type: 20, count: 1_000_000, p1: 1, p2: 5 };
  assert.deepStrictEqual(headerLength(h), 24);
  assert.deepStrictEqual(
    encodeHeader(h),
    hex("00 01 ff ff 00 14 00 00 00 00 00 01 00 00 00 05 00 7a 12 10 00 0f 42 40"),
  );
  assert.deepStrictEqual(decodeHeader(encodeHeader(h)), { header: h, headerLength: 24 });
  // Boundary: 0xFFFE uses the short form, 0xFFFF the extended one (for size or count).
  assert.deepStrictEqual(headerLength({ size: 0xfff8, count: 0xfffe }), 16);
  assert.deepStrictEqual(headerLength({ size: 0xffff, count: 1 }), 24);
  assert.deepStrictEqual(headerLength({ size: 8, count: 0xffff }), 24);
});

Deno.test("messages: decodeHeader needs 16 (or 24) bytes", () => {
  const short = encodeHeader({ cmd: 1, size: 8, type: 0, count: 1, p1: 2, p2: 3 });
  assert.deepStrictEqual(decodeHeader(short.subarray(0, 15)), undefined);
  const ext = encodeHeader({ cmd: 1, size: 0x10000, type: 0, count: 1, p1: 2, p2: 3 });
  assert.deepStrictEqual(decodeHeader(ext.subarray(0, 16)), undefined);
  assert.deepStrictEqual(decodeHeader(ext.subarray(0, 23)), undefined);
  assert.deepStrictEqual(decodeHeader(ext)?.header.size, 0x10000);
});

Deno.test("messages: padded rounds up to 8", () => {
  assert.deepStrictEqual([0, 1, 7, 8, 9, 26].map(padded), [0, 8, 8, 8, 16, 32]);
});

Deno.test("messages: reader splits a stream fed byte by byte and in one piece", () => {
  const big = new Uint8Array(70_000);
  for (let i = 0; i < big.length; i++) big[i] = i & 0xff;
  const stream = concat(
    versionMessage(0, 0),
    createChanRequest("a:b", 7),
    encodeHeader({ cmd: CMD.WRITE, size: big.length, type: 4, count: big.length, p1: 1, p2: 2 }),
    big,
    readNotifyRequest(6, 1, 1, 9),
  );
  const whole = new MessageReader({ maxPayload: 1 << 20 }).push(stream);
  assert.deepStrictEqual(whole.map((m) => m.header.cmd), [0, 18, 4, 15]);
  assert.deepStrictEqual(whole[2].headerLength, 24);
  assert.deepStrictEqual(whole[2].payload, big);
  const reader = new MessageReader({ maxPayload: 1 << 20 });
  const bytewise = [];
  for (let i = 0; i < stream.length; i++) bytewise.push(...reader.push(stream.subarray(i, i + 1)));
  assert.deepStrictEqual(bytewise.map((m) => m.header), whole.map((m) => m.header));
  assert.deepStrictEqual(bytewise[2].payload, big);
  assert.deepStrictEqual(reader.idle, true);
});

Deno.test("messages: reader rejects a 4 GiB declared size before allocating", () => {
  const reader = new MessageReader({ maxPayload: 1 << 20 });
  const header = encodeHeader({ cmd: 4, size: 0xfffffff8, type: 4, count: 1, p1: 1, p2: 1 });
  assert.throws(
    () => reader.push(header),
    (e) => e instanceof CaProtocolError && e.message.includes("exceeds limit"),
  );
});

Deno.test("messages: reader rejects misaligned payload sizes", () => {
  const reader = new MessageReader();
  const header = encodeHeader({ cmd: 20, size: 5, type: 0, count: 0, p1: 0, p2: 0 });
  assert.throws(
    () => reader.push(header),
    (e) => e instanceof CaProtocolError && e.message.includes("misaligned"),
  );
});

Deno.test("messages: reader keeps a truncated header pending", () => {
  const reader = new MessageReader();
  assert.deepStrictEqual(reader.push(versionMessage().subarray(0, 10)), []);
  assert.deepStrictEqual(reader.idle, false);
  assert.deepStrictEqual(reader.buffered, 10);
});
