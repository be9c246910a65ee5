/**
 * ZMTP protocol core without sockets: byte recipes from the spec, the libzmq capture of §8,
 * fragmentation, the handshake policy, PING/PONG, and every malformed-input case.
 */
import assert from "node:assert/strict";
import {
  encodeError,
  encodeFrame,
  encodeGreeting,
  encodeMessage,
  encodePing,
  encodeReady,
  parseMetadata,
  ZmtpDecoder,
  ZmtpError,
  ZmtpSession,
} from "../devices/eiger/zmtp.ts";
import { concat as cat } from "./support/bytes.ts";

const hex = (s: string) => new Uint8Array(s.trim().split(/\s+/).map((x) => parseInt(x, 16)));
const enc = new TextEncoder();

const READY_PULL = hex(
  "04 1a 05 52 45 41 44 59 0b 53 6f 63 6b 65 74 2d 54 79 70 65 00 00 00 04 50 55 4c 4c",
);
const READY_PUSH = hex(
  "04 1a 05 52 45 41 44 59 0b 53 6f 63 6b 65 74 2d 54 79 70 65 00 00 00 04 50 55 53 48",
);
/** libzmq's greeting as captured (padding byte 8 = 01, minor 1). */
const LIBZMQ_GREETING = cat(
  hex("ff 00 00 00 00 00 00 00 01 7f 03 01 4e 55 4c 4c"),
  new Uint8Array(48),
);

Deno.test("zmtp core: byte recipes match the spec (greeting, READY, ERROR, frames)", () => {
  const g = encodeGreeting();
  assert.equal(g.length, 64);
  assert.deepEqual(g.subarray(0, 16), hex("ff 00 00 00 00 00 00 00 00 7f 03 01 4e 55 4c 4c"));
  assert.deepEqual(g.subarray(16), new Uint8Array(48));
  assert.deepEqual(encodeReady({ "Socket-Type": "PULL" }), READY_PULL);
  assert.deepEqual(
    encodeError("bad socket type"),
    hex("04 16 05 45 52 52 4f 52 0f 62 61 64 20 73 6f 63 6b 65 74 20 74 79 70 65"),
  );
  assert.deepEqual(encodeFrame(new Uint8Array(254), false).subarray(0, 2), hex("00 fe"));
  assert.deepEqual(encodeFrame(new Uint8Array(255), false).subarray(0, 2), hex("00 ff"));
  assert.deepEqual(
    encodeFrame(new Uint8Array(256), false).subarray(0, 9),
    hex("02 00 00 00 00 00 00 01 00"),
  );
  assert.deepEqual(encodeFrame(enc.encode("ab"), true), hex("01 02 61 62"));
  assert.deepEqual(
    encodeMessage([enc.encode("ab"), enc.encode("cd")]),
    [hex("01 02 61 62 00 02 63 64")],
  );
  const big = new Uint8Array(100000);
  const parts = encodeMessage([big]);
  assert.equal(parts[1], big, "large bodies are passed through, not copied");
});

Deno.test("zmtp core: the libzmq capture of spec §8 decodes, also fed one byte at a time", () => {
  const stream = cat(
    LIBZMQ_GREETING,
    READY_PUSH,
    hex("00 05 68 65 6c 6c 6f"),
    hex("02 00 00 00 00 00 00 01 2c"),
    new Uint8Array(300).fill(0x78),
    hex("01 02 61 62 00 02 63 64"),
  );
  for (const step of [stream.length, 1, 7]) {
    const s = new ZmtpSession({ socketType: "PULL" });
    const msgs: Uint8Array[][] = [];
    let readies = 0;
    for (let i = 0; i < stream.length; i += step) {
      const out = s.receive(stream.subarray(i, i + step));
      msgs.push(...out.messages);
      if (out.readyNow) readies++;
    }
    assert.equal(readies, 1);
    assert.ok(s.ready);
    assert.equal(s.peerGreeting?.minor, 1);
    assert.deepEqual(msgs, [
      [enc.encode("hello")],
      [new Uint8Array(300).fill(0x78)],
      [enc.encode("ab"), enc.encode("cd")],
    ], `step ${step}`);
  }
});

Deno.test("zmtp core: PING is answered with PONG echoing the context; ZMTP 3.0 peers work", () => {
  const s = new ZmtpSession({ socketType: "PULL" });
  const g30 = LIBZMQ_GREETING.slice();
  g30[11] = 0; // minor 0 = ZMTP 3.0
  s.receive(cat(g30, READY_PUSH));
  const out = s.receive(encodePing(50, enc.encode("xy")));
  assert.deepEqual(out.send, [hex("04 07 04 50 4f 4e 47 78 79")]);
  assert.deepEqual(s.receive(hex("04 07 04 50 49 4e 47 00 32")).send, [
    hex("04 05 04 50 4f 4e 47"),
  ]);
  // PONG, SUBSCRIBE and unknown commands are ignored
  assert.deepEqual(s.receive(hex("04 05 04 50 4f 4e 47 04 04 03 46 4f 4f")).send, []);
  assert.throws(() => s.receive(hex("04 05 04 50 49 4e 47")), /malformed PING/);
});

Deno.test("zmtp core: handshake policy (socket types, missing Socket-Type, case rules)", () => {
  const push = () => new ZmtpSession({ socketType: "PUSH" });
  const readyOf = (props: Record<string, string>) => cat(LIBZMQ_GREETING, encodeReady(props));
  assert.ok(push().receive(readyOf({ "Socket-Type": "PULL" })).readyNow);
  assert.ok(push().receive(readyOf({})).readyNow, "READY without Socket-Type accepted");
  assert.ok(push().receive(readyOf({ "socket-type": "PULL", "X-Foo": "1" })).readyNow);
  assert.throws(
    () => push().receive(readyOf({ "Socket-Type": "PUB" })),
    /incompatible peer socket type "PUB"/,
  );
  assert.throws(() => push().receive(readyOf({ "Socket-Type": "pull" })), /incompatible/);
  assert.throws(() => push().receive(readyOf({ "Socket-Type": "PUSH" })), /incompatible/);
  const md = parseMetadata(encodeReady({ Identity: "", "Socket-Type": "PULL" }).subarray(8));
  assert.deepEqual(md.get("identity"), new Uint8Array(0));
  // message before READY, command other than READY first, ERROR during the handshake, duplicate READY
  assert.throws(
    () => push().receive(cat(LIBZMQ_GREETING, hex("00 01 61"))),
    /before the handshake/,
  );
  assert.throws(
    () => push().receive(cat(LIBZMQ_GREETING, encodePing())),
    /expected READY, got PING/,
  );
  assert.throws(
    () => push().receive(cat(LIBZMQ_GREETING, encodeError("nope"))),
    /refused the handshake: nope/,
  );
  const s = push();
  s.receive(readyOf({ "Socket-Type": "PULL" }));
  assert.throws(() => s.receive(encodeReady({ "Socket-Type": "PULL" })), /duplicate READY/);
  assert.throws(() => s.receive(encodeError("late")), /peer sent ERROR: late/);
  assert.throws(
    () => push().receive(cat(LIBZMQ_GREETING, hex("04 08 05 52 45 41 44 59 05 41"))),
    /malformed READY/,
  );
});

Deno.test("zmtp core: bad greetings are refused as early as possible", () => {
  const d = () => new ZmtpDecoder();
  assert.throws(() => d().push(hex("00")), /signature/); // first byte already wrong
  assert.throws(() => d().push(hex("ff 00 00 00 00 00 00 00 01 7e")), /ZMTP 1\.0/);
  assert.throws(
    () => d().push(hex("ff 00 00 00 00 00 00 00 01 7f 02")),
    /unsupported ZMTP version 2/,
  );
  const plain = LIBZMQ_GREETING.slice();
  plain.set(enc.encode("PLAIN"), 12);
  assert.throws(() => d().push(plain.subarray(0, 32)), /mechanism "PLAIN"/);
  const curve = LIBZMQ_GREETING.slice();
  curve.set(enc.encode("CURVE"), 12);
  assert.throws(() => d().push(curve), /mechanism "CURVE"/);
  // higher versions are accepted
  const v4 = LIBZMQ_GREETING.slice();
  v4[10] = 4;
  assert.equal(d().push(v4).length, 1);
});

Deno.test("zmtp core: bad frames (reserved bits, huge sizes, MORE on commands) are refused", () => {
  const ready = () => {
    const dec = new ZmtpDecoder({ maxMessageBytes: 1 << 20 });
    dec.push(cat(LIBZMQ_GREETING, READY_PUSH));
    return dec;
  };
  assert.throws(() => ready().push(hex("08 00")), /reserved frame flag bits/);
  assert.throws(() => ready().push(hex("80")), /reserved frame flag bits/);
  // 2^63-1 and 2^40 byte frames: refused from the header alone, nothing allocated
  assert.throws(() => ready().push(hex("02 7f ff ff ff ff ff ff ff")), /larger than the limit/);
  assert.throws(() => ready().push(hex("02 00 00 01 00 00 00 00 00")), /larger than the limit/);
  // the limit counts the whole message, not just one frame
  const dec = ready();
  dec.push(cat(hex("03 00 00 00 00 00 0c 00 00"), new Uint8Array(0xc0000)));
  assert.throws(() => dec.push(hex("02 00 00 00 00 00 05 00 00")), /larger than the limit/);
  assert.throws(
    () => ready().push(hex("06 00 00 00 00 01 00 00 00")),
    /command frame of 16777216 bytes/,
  );
  assert.throws(() => ready().push(hex("05 02 01 41")), /command frame with MORE/);
  assert.throws(
    () => ready().push(hex("01 01 61 04 05 04 50 4f 4e 47")),
    /command inside a multipart/,
  );
  assert.throws(() => ready().push(hex("04 00")), /empty command frame/);
  assert.throws(() => ready().push(hex("04 02 05 41")), /bad command name length/);
  const many = new ZmtpDecoder({ maxFrames: 3 });
  many.push(LIBZMQ_GREETING);
  assert.throws(() => many.push(hex("01 00 01 00 01 00 00 00")), /too many frames/);
  // a truncated frame yields nothing (the socket layer reports EOF as a disconnect)
  assert.deepEqual(ready().push(hex("02 00 00 00 00 00 00 01 2c 78 78")), []);
});

Deno.test("zmtp core: large bodies can be read directly into their final buffer", () => {
  const dec = new ZmtpDecoder();
  dec.push(LIBZMQ_GREETING);
  dec.push(READY_PUSH);
  assert.equal(dec.directTarget(), undefined);
  dec.push(hex("02 00 00 00 00 00 01 00 00 01 02"));
  const target = dec.directTarget()!;
  assert.equal(target.length, 65534);
  target.fill(9);
  const events = dec.directFilled(65534);
  assert.equal(events.length, 1);
  const ev = events[0];
  assert.ok(ev.type === "message");
  assert.equal(ev.frames[0].length, 65536);
  assert.deepEqual(ev.frames[0].subarray(0, 3), hex("01 02 09"));
  assert.throws(() => dec.directFilled(1), ZmtpError);
});

Deno.test("zmtp core: a frame body given in pieces is encoded as one frame, large pieces uncopied", () => {
  const big = new Uint8Array(70_000).fill(7);
  const small = [hex("01 02"), hex("03")];
  const parts = encodeMessage([[hex("aa"), big, hex("bb")], small]);
  assert.ok(parts.includes(big), "the large piece is passed through");
  const wire = cat(...parts);
  const whole = cat(...encodeMessage([cat(hex("aa"), big, hex("bb")), hex("01 02 03")]));
  assert.deepEqual(wire, whole);
  const dec = new ZmtpDecoder();
  dec.push(LIBZMQ_GREETING);
  dec.push(READY_PUSH);
  const ev = dec.push(wire).find((e) => e.type === "message");
  assert.ok(ev?.type === "message");
  assert.equal(ev.frames[0].length, 70_002);
  assert.deepEqual(ev.frames[1], hex("01 02 03"));
  // Small messages become one buffer.
  assert.deepEqual(encodeMessage([small]), [hex("00 03 01 02 03")]);
});
