/**
 * GVCP and GVSP codecs against the byte-exact captures of the protocol digest (aravis fake camera,
 * §7), the pixel unpackers against the packing tables, and the frame assembler's policy
 * (order, gaps, resends, window, block-id wrap, sizes).
 */

import assert from "node:assert/strict";
import {
  Bootstrap,
  decodeAck,
  decodeCommand,
  decodeDiscoveryAck,
  decodePacketResend,
  decodeReadMemAck,
  decodeReadRegAck,
  encodeAck,
  encodeCommand,
  FLAG_EXTENDED_ID,
  GvcpCommand,
  GvcpFormatError,
  ipv4Text,
  ipv4Value,
  packetResendPayload,
  PENDING_ACK,
  readMemPayload,
  readRegPayload,
  statusText,
  writeRegPayload,
} from "../devices/gige/gvcp.ts";
import {
  decodeGvspHeader,
  decodeImageLeader,
  decodeTrailer,
  encodeImageLeader,
  encodePayload,
  encodeTrailer,
  GvspFormatError,
  type ImageLeader,
  packetizeImage,
  payloadHasChunks,
} from "../devices/gige/gvsp.ts";
import { encodeChunks, parseChunks } from "../devices/gige/chunks.ts";
import { FrameAssembler, packetRanges } from "../devices/gige/gvsp_assembler.ts";
import { pixelFormatInfo, unpackPixels } from "../devices/gige/pixels.ts";

function hex(text: string): Uint8Array {
  const clean = text.replace(/[^0-9a-f]/gi, "");
  return new Uint8Array(clean.match(/../g)!.map((b) => parseInt(b, 16)));
}

Deno.test("gvcp: commands encode byte for byte as captured (§7.1-7.6, 7.8)", () => {
  assert.deepEqual(encodeCommand(GvcpCommand.DISCOVERY, 1), hex("42 01 00 02 00 00 00 01"));
  assert.deepEqual(
    encodeCommand(GvcpCommand.READREG, 2, readRegPayload([0x200])),
    hex("42 01 00 80 00 04 00 02  00 00 02 00"),
  );
  assert.deepEqual(
    encodeCommand(GvcpCommand.READMEM, 3, readMemPayload(0x200, 0x40)),
    hex("42 01 00 84 00 08 00 03  00 00 02 00  00 00 00 40"),
  );
  assert.deepEqual(
    encodeCommand(GvcpCommand.WRITEREG, 5, writeRegPayload([[Bootstrap.CCP, 2]])),
    hex("42 01 00 82 00 08 00 05  00 00 0a 00  00 00 00 02"),
  );
  assert.deepEqual(
    encodeCommand(GvcpCommand.WRITEREG, 0x0b, writeRegPayload([[Bootstrap.SCP0, 46279]])),
    hex("42 01 00 82 00 08 00 0b  00 00 0d 00 00 00 b4 c7"),
  );
  assert.deepEqual(
    encodeCommand(GvcpCommand.PACKETRESEND, 0x0d, packetResendPayload(0xff7f, 1, 1), 0),
    hex("42 00 00 40 00 0c 00 0d  00 00 ff 7f  00 00 00 01  00 00 00 01"),
  );
  assert.throws(() => encodeCommand(GvcpCommand.WRITEMEM, 1, new Uint8Array(541)), RangeError);
  // §7.8, extended ids: flags 0x10, 20-byte payload with the 64-bit block id last.
  assert.deepEqual(
    encodeCommand(
      GvcpCommand.PACKETRESEND,
      0x0e,
      packetResendPayload(0xff7f, 1, 1, 0, true),
      FLAG_EXTENDED_ID,
    ),
    hex("42 10 00 40 00 14 00 0e  00 00 00 00  00 00 00 01  00 00 00 01  00 00 00 00 00 00 ff 7f"),
  );
  const big = 2 ** 40 + 0x1234_5678;
  const ext = decodeCommand(
    encodeCommand(GvcpCommand.PACKETRESEND, 1, packetResendPayload(big, 70000, 0x1000005, 0, true)),
  );
  assert.deepEqual(decodePacketResend(ext.payload, FLAG_EXTENDED_ID), {
    channel: 0,
    blockId: big,
    firstPacket: 70000,
    lastPacket: 0x1000005,
    extended: true,
  });
  assert.throws(
    () => decodePacketResend(packetResendPayload(5, 1, 1), FLAG_EXTENDED_ID),
    /12 bytes < 20/,
  );
});

Deno.test("gvcp: acknowledges decode as captured; short or inconsistent ones are refused", () => {
  const rr = decodeAck(hex("00 00 00 81 00 04 00 02  4c 6f 63 61"));
  assert.deepEqual([rr.status, rr.ack, rr.ackId], [0, 0x81, 2]);
  assert.deepEqual(decodeReadRegAck(rr.payload), [0x4c6f6361]);
  const mem = decodeAck(hex("00 00 00 85 00 08 00 03  00 00 02 00  4c 6f 63 61"));
  assert.equal(new TextDecoder().decode(decodeReadMemAck(mem.payload, 0x200)), "Loca");
  assert.throws(() => decodeReadMemAck(mem.payload, 0x204), /READMEM ack for 0x200, asked 0x204/);
  const err = decodeAck(hex("80 06 00 83 00 04 00 0f  00 00 00 00"));
  assert.equal(statusText(err.status), "ACCESS_DENIED (0x8006)");
  const pending = decodeAck(hex("00 00 00 89 00 04 00 10  00 00 01 f4"));
  assert.equal(pending.ack, PENDING_ACK);
  assert.equal(new DataView(pending.payload.buffer, pending.payload.byteOffset).getUint16(2), 500);
  assert.throws(() => decodeAck(hex("00 00 00 81 00")), GvcpFormatError);
  assert.throws(() => decodeAck(hex("00 00 00 81 00 08 00 02  4c 6f 63 61")), /announces 8/);
  assert.throws(() => decodeCommand(hex("43 01 00 80 00 00 00 01")), /key/);
  const round = decodeCommand(encodeCommand(GvcpCommand.READREG, 9, readRegPayload([4, 8])));
  assert.deepEqual([round.command, round.reqId, round.payload.length], [0x80, 9, 8]);
  assert.deepEqual(
    decodePacketResend(packetResendPayload(0x1234, 5, 0x1000000 + 7)),
    { channel: 0, blockId: 0x1234, firstPacket: 5, lastPacket: 7, extended: false },
  );
  assert.deepEqual(decodeAck(encodeAck(0x8001, 0x87, 3)).status, 0x8001);
});

Deno.test("gvcp: DISCOVERY ack payload decodes the identity (§7.1)", () => {
  const payload = new Uint8Array(0xf8);
  payload.set(hex("7f 00 00 01"), 0x24);
  payload.set(new TextEncoder().encode("Aravis"), 0x48);
  payload.set(new TextEncoder().encode("Fake"), 0x68);
  payload.set(new TextEncoder().encode("0.8.26"), 0x88);
  payload.set(new TextEncoder().encode("none"), 0xa8);
  payload.set(new TextEncoder().encode("GV01"), 0xd8);
  payload.set(hex("00 11 22 33 44 55"), 0x0a);
  const info = decodeDiscoveryAck(payload);
  assert.equal(info.ip, "127.0.0.1");
  assert.equal(info.mac, "00:11:22:33:44:55");
  assert.deepEqual(
    [info.manufacturer, info.model, info.deviceVersion, info.serial, info.userName],
    [
      "Aravis",
      "Fake",
      "0.8.26",
      "GV01",
      "",
    ],
  );
  assert.throws(() => decodeDiscoveryAck(payload.subarray(0, 100)), /100 bytes < 248/);
  assert.equal(ipv4Text(ipv4Value("192.168.1.20")), "192.168.1.20");
  assert.throws(() => ipv4Value("1.2.3"), /not an IPv4/);
});

Deno.test("gvsp: the captured 4x2 Mono8 frame (§7.7) decodes; extended ids parse", () => {
  const leader = hex(
    "00 00 ff 7f 01 00 00 00  00 00 00 01  18 ed 57 f4 70 15 6c e8  01 08 00 01" +
      "00 00 00 04  00 00 00 02  00 00 00 00  00 00 00 00  00 00  00 00",
  );
  const h = decodeGvspHeader(leader);
  assert.deepEqual([h.status, h.blockId, h.format, h.packetId, h.extended], [
    0,
    0xff7f,
    1,
    0,
    false,
  ]);
  const l = decodeImageLeader(leader.subarray(8));
  assert.equal(l.pixelFormat, 0x01080001);
  assert.deepEqual([l.width, l.height, l.timestamp], [4, 2, 0x18ed57f470156ce8n]);
  const payload = hex("00 00 ff 7f 03 00 00 01  7f 80 81 82 80 81 82 83");
  assert.deepEqual(
    [decodeGvspHeader(payload).format, decodeGvspHeader(payload).packetId],
    [3, 1],
  );
  const trailer = hex("00 00 ff 7f 02 00 00 02  00 00 00 01  00 00 00 00");
  assert.deepEqual(decodeTrailer(trailer.subarray(8)), { payloadType: 1, sizeY: 0 });
  const a = new FrameAssembler({ payloadSize: 8, packetSize: 1400, resend: false, windowMs: 50 });
  for (const p of [leader, payload, trailer]) a.feed(p, 0);
  const out = a.takeOutput();
  assert.equal(out?.kind, "frame");
  if (out?.kind === "frame") {
    assert.deepEqual(Array.from(out.data), [...hex("7f 80 81 82 80 81 82 83")]);
  }
  const ext = hex("00 00 00 01 83 00 00 00  00 00 00 00 00 00 01 00  00 00 00 05  aa bb");
  const e = decodeGvspHeader(ext);
  assert.deepEqual([e.extended, e.blockId, e.packetId, e.format, e.headerLength], [
    true,
    256,
    5,
    3,
    20,
  ]);
  assert.throws(() => decodeGvspHeader(hex("00 00 00 01 83 00 00")), GvspFormatError);
  assert.throws(() => decodeGvspHeader(hex("00 00 00 01 09 00 00 00")), /format 9 unknown/);
  assert.throws(
    () => decodeImageLeader(hex("00 00 00 06 00 00 00 00 00 00 00 00")),
    /not an image/,
  );
});

function frame(block: number, data: Uint8Array, packetSize: number): Uint8Array[] {
  const leader: ImageLeader = {
    payloadType: 1,
    timestamp: 0n,
    pixelFormat: 0x01080001,
    width: data.length,
    height: 1,
    offsetX: 0,
    offsetY: 0,
    paddingX: 0,
    paddingY: 0,
  };
  return packetizeImage(block, leader, data, packetSize);
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

Deno.test("assembler: frames out in block order even when a later one completes first", () => {
  const a = new FrameAssembler({ payloadSize: 100, packetSize: 76, resend: true, windowMs: 50 });
  const f1 = frame(10, bytes(100, 1), 76);
  const f2 = frame(11, bytes(100, 2), 76);
  f1.slice(0, 2).forEach((p) => a.feed(p, 0)); // leader + first payload of block 10
  f2.forEach((p) => a.feed(p, 1)); // block 11 whole
  assert.equal(a.takeOutput(), undefined, "block 11 waits for block 10");
  f1.slice(2).forEach((p) => a.feed(p, 2));
  const o1 = a.takeOutput();
  const o2 = a.takeOutput();
  assert.deepEqual([o1?.blockId, o2?.blockId], [10, 11]);
  if (o1?.kind === "frame") assert.deepEqual(o1.data, bytes(100, 1));
  if (o2?.kind === "frame") assert.deepEqual(o2.data, bytes(100, 2));
});

Deno.test("assembler: gaps and tails are requested; resent packets complete the frame", () => {
  const a = new FrameAssembler({ payloadSize: 200, packetSize: 76, resend: true, windowMs: 40 });
  const packets = frame(7, bytes(200, 3), 76); // leader, 5 payloads, trailer = 7 packets
  for (const [i, p] of packets.entries()) if (i !== 2 && i !== 3 && i !== 6) a.feed(p, 0);
  assert.equal(a.pendingResends, 1, "the receiver sends only when this says so");
  assert.deepEqual(a.takeResends(), [{ blockId: 7, first: 2, last: 3 }]);
  assert.equal(a.pendingResends, 0);
  a.poll(11); // a quarter of the window: ask for the tail (trailer missing)
  assert.deepEqual(a.takeResends(), [{ blockId: 7, first: 6, last: 6 }]);
  a.poll(21); // half the window: all holes again
  assert.deepEqual(a.takeResends(), [{ blockId: 7, first: 2, last: 3 }, {
    blockId: 7,
    first: 6,
    last: 6,
  }]);
  for (const i of [2, 3, 6]) {
    const p = packets[i].slice();
    p[0] = 0x01; // status PACKET_RESEND
    a.feed(p, 22);
  }
  const out = a.takeOutput();
  assert.equal(out?.kind, "frame");
  if (out?.kind === "frame") {
    assert.deepEqual(out.data, bytes(200, 3));
    assert.equal(out.resentPackets, 3);
  }
});

Deno.test("assembler: after the window an incomplete frame names block and missing packets", () => {
  const a = new FrameAssembler({ payloadSize: 200, packetSize: 76, resend: true, windowMs: 40 });
  const packets = frame(300, bytes(200, 4), 76);
  for (const [i, p] of packets.entries()) if (i !== 4) a.feed(p, 0);
  a.poll(39);
  assert.equal(a.takeOutput(), undefined);
  a.poll(41);
  const out = a.takeOutput();
  assert.equal(out?.kind, "incomplete");
  if (out?.kind === "incomplete") {
    assert.deepEqual(out.missing, [4]);
    assert.match(out.reason, /^block 300 incomplete: missing packets 4 of 7/);
  }
  assert.equal(packetRanges([1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
});

Deno.test("assembler: without resend a newer block closes the damaged one; skipped blocks reported", () => {
  const a = new FrameAssembler({ payloadSize: 100, packetSize: 76, resend: false, windowMs: 1000 });
  const f1 = frame(0xffff, bytes(100, 5), 76);
  f1.forEach((p, i) => i !== f1.length - 1 && a.feed(p, 0)); // trailer lost
  frame(2, bytes(100, 6), 76).forEach((p) => a.feed(p, 1)); // 0xffff → (1 skipped, 0 reserved) → 2
  const outs = [a.takeOutput(), a.takeOutput(), a.takeOutput()];
  assert.deepEqual(outs.map((o) => [o?.kind, o?.blockId]), [
    ["incomplete", 0xffff],
    ["incomplete", 1],
    ["frame", 2],
  ]);
  assert.match((outs[0] as { reason: string }).reason, /missing packets 4 of 5/);
  assert.match((outs[1] as { reason: string }).reason, /block 1 lost/);
  assert.equal(a.takeResends().length, 0, "no resend requests when the camera cannot resend");
  // A late packet of a closed block is dropped and counted.
  a.feed(f1[1], 2);
  assert.equal(a.stats.late, 1);
});

Deno.test("assembler: data beyond PayloadSize and impossible packet ids make the frame bad", () => {
  const a = new FrameAssembler({ payloadSize: 80, packetSize: 76, resend: false, windowMs: 50 });
  frame(1, bytes(120, 1), 76).forEach((p) => a.feed(p, 0));
  const out = a.takeOutput();
  assert.equal(out?.kind, "incomplete");
  assert.match(
    (out as { reason: string }).reason,
    /block 1: payload packet 3 ends at byte 120, beyond PayloadSize 80/,
  );
  const b = new FrameAssembler({ payloadSize: 80, packetSize: 76, resend: false, windowMs: 50 });
  const p = frame(1, bytes(10, 1), 76)[1].slice();
  p[7] = 200;
  b.feed(p, 0);
  assert.match((b.takeOutput() as { reason: string }).reason, /packet id 200 beyond/);
});

Deno.test("assembler: buffers are recycled, not reallocated per frame", () => {
  const a = new FrameAssembler({ payloadSize: 100, packetSize: 76, resend: false, windowMs: 50 });
  frame(1, bytes(100, 1), 76).forEach((p) => a.feed(p, 0));
  const first = a.takeOutput();
  assert.equal(first?.kind, "frame");
  if (first?.kind !== "frame") return;
  a.recycle(first.buffer);
  frame(2, bytes(100, 2), 76).forEach((p) => a.feed(p, 0));
  const second = a.takeOutput();
  assert.ok(second?.kind === "frame" && second.buffer === first.buffer);
});

Deno.test("pixels: packed formats unpack per the layout tables", () => {
  // Mono12Packed: P0 = 0xABC, P1 = 0x123 → B0 = 0xAB, B1 = 0x3C, B2 = 0x12
  const out = new Uint16Array(2);
  unpackPixels(0x010c0006, hex("ab 3c 12"), out, 2);
  assert.deepEqual(Array.from(out), [0xabc, 0x123]);
  // Mono12p (lsb): P0 = 0xABC, P1 = 0x123 → B0 = 0xBC, B1 = 0x3A, B2 = 0x12
  unpackPixels(0x010c0047, hex("bc 3a 12"), out, 2);
  assert.deepEqual(Array.from(out), [0xabc, 0x123]);
  // Mono10Packed: P0 = 0x2AB (B0 = 0xAA, low 2 bits 3), P1 = 0x155 (B2 = 0x55, low 1)
  unpackPixels(0x010c0004, hex("aa 13 55"), out, 2);
  assert.deepEqual(Array.from(out), [0x2ab, 0x155]);
  // Mono10p: pixels 1, 2, 3, 1023 as a little-endian 10-bit stream
  const four = new Uint16Array(4);
  let bits = 0n;
  [1n, 2n, 3n, 1023n].forEach((v, i) => (bits |= v << BigInt(10 * i)));
  const packed = Uint8Array.from({ length: 5 }, (_, i) => Number((bits >> BigInt(8 * i)) & 0xffn));
  unpackPixels(0x010a0046, packed, four, 4);
  assert.deepEqual(Array.from(four), [1, 2, 3, 1023]);
  assert.equal(pixelFormatInfo(0x010c0006).bytes(3, 1), 5);
  assert.throws(() => pixelFormatInfo(0x02180014, "RGB8"), /pixel format RGB8 is not supported/);
});

Deno.test("gvsp chunks: image first, tags chained back to byte 0; unknown layouts refused", () => {
  const image = Uint8Array.from({ length: 37 }, (_, i) => i);
  const counter = hex("00 00 00 2a");
  const payload = encodeChunks([{ id: 1, data: image }, { id: 0x0c0ffee, data: counter }]);
  // image | tag(1, 37) | counter | tag(0x0c0ffee, 4)
  assert.deepEqual(payload.subarray(37, 45), hex("00 00 00 01  00 00 00 25"));
  assert.deepEqual(payload.subarray(49), hex("00 c0 ff ee  00 00 00 04"));
  assert.deepEqual(parseChunks(payload), [
    { id: 1, offset: 0, length: 37 },
    { id: 0x0c0ffee, offset: 45, length: 4 },
  ]);
  const broken = payload.slice();
  broken[broken.length - 1] = 0x40; // last chunk claims 64 bytes: starts before the payload
  assert.throws(() => parseChunks(broken), /chunk layout not understood: chunk 0xc0ffee of 64/);
  assert.throws(() => parseChunks(payload.subarray(1)), /chunk layout not understood/);
  assert.throws(() => parseChunks(new Uint8Array(0)), /empty payload/);
  // Types: 0x4001 and 0x0005 carry chunks and share the image leader; 0x0004 has no image.
  assert.equal(payloadHasChunks(0x4001), true);
  assert.equal(payloadHasChunks(0x0005), true);
  assert.equal(payloadHasChunks(0x0001), false);
  const leader = encodeImageLeader(3, {
    payloadType: 0x4001,
    timestamp: 7n,
    pixelFormat: 0x01080001,
    width: 37,
    height: 1,
    offsetX: 0,
    offsetY: 0,
    paddingX: 0,
    paddingY: 0,
  });
  assert.equal(decodeImageLeader(leader.subarray(8)).payloadType, 0x4001);
  leader[8 + 2] = 0x00;
  leader[8 + 3] = 0x04; // chunk data: no image leader
  assert.throws(() => decodeImageLeader(leader.subarray(8)), /payload type 0x4 is not an image/);
  const trailer = encodeTrailer(3, 4, 1, { chunkLength: 53 });
  assert.deepEqual(decodeTrailer(trailer.subarray(8)), {
    payloadType: 0x4001,
    sizeY: 1,
    chunkLength: 53,
  });
});

Deno.test("gvsp extended ids: 20-byte headers encode and decode, 64-bit block ids, resent flag", () => {
  const leader = {
    payloadType: 1,
    timestamp: 0n,
    pixelFormat: 0x01080001,
    width: 100,
    height: 1,
    offsetX: 0,
    offsetY: 0,
    paddingX: 0,
    paddingY: 0,
  };
  const block = 2 ** 45 + 3;
  const packets = packetizeImage(block, leader, new Uint8Array(100), 88, { extended: true });
  assert.equal(packets.length, 1 + Math.ceil(100 / 40) + 1, "88 − 48 = 40 data bytes per packet");
  const h = decodeGvspHeader(packets[2]);
  assert.deepEqual([h.extended, h.blockId, h.packetId, h.format, h.headerLength, h.resent], [
    true,
    block,
    2,
    3,
    20,
    false,
  ]);
  const resent = encodePayload(block, 2, new Uint8Array(4), { extended: true, status: 0x0100 });
  assert.equal(resent[3] & 1, 1, "flag 0x0001: packet resent");
  assert.equal(decodeGvspHeader(resent).resent, true);
});
