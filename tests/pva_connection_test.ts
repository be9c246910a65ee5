/**
 * The pvAccess server connection (sans I/O): handshake, operations, pipeline flow control, and
 * every kind of bad input closing only that connection with a log line.
 */
import assert from "node:assert/strict";
import { PvStore } from "../ca/store.ts";
import { defaultCodec } from "../ca/codec_dbr.ts";
import { WriteRefusedError } from "../ca/pv.ts";
import { type ConnectionLimits, ServerConnection } from "../pva/connection.ts";
import { recordSource } from "../pva/source.ts";
import { buildMessage, Cmd, HEADER_SIZE, isBigEndian } from "../pva/messages.ts";
import { BitSet, WireReader, type WireWriter } from "../pva/wire.ts";
import {
  readChanged,
  readFieldDesc,
  type StructDesc,
  writeFieldDesc,
  writeValue,
} from "../pva/pvdata.ts";
import { buildPvRequest } from "../pva/request.ts";
import { concat } from "./support/bytes.ts";

interface Harness {
  conn: ServerConnection;
  store: PvStore;
  logs: { level: string; message: string; fields: Record<string, unknown> }[];
  closed: string[];
  /** Output messages decoded as {command, reader} (greeting skipped). */
  drain(): { command: number; r: WireReader }[];
}

function harness(limits: Partial<ConnectionLimits> = {}, little = true): Harness {
  const store = new PvStore(defaultCodec);
  store.add({
    name: "X:d",
    type: "double",
    initial: 1.5,
    writable: true,
    onWrite: (v) => {
      if (Number(v[0]) < 0) throw new WriteRefusedError("negative values are refused");
    },
  });
  store.add({ name: "X:ro", type: "long", initial: 7 });
  const sources = new Map<string, ReturnType<typeof recordSource>>();
  const logs: Harness["logs"] = [];
  const closed: string[] = [];
  const conn = new ServerConnection({
    resolve: (name) => {
      const rec = store.get(name);
      if (!rec) return undefined;
      if (!sources.has(name)) sources.set(name, recordSource(rec));
      return sources.get(name);
    },
    identity: { guid: new Uint8Array(12), tcpPort: 5075 },
    address: "127.0.0.1",
    limits,
    wake: () => {},
    onClose: (reason) => closed.push(reason),
    log: (level, message, fields) => logs.push({ level, message, fields }),
  });
  let skipGreeting = true;
  const drain = () => {
    const bytes = concat(...conn.takeOutput());
    const out: { command: number; r: WireReader }[] = [];
    let at = 0;
    while (at + HEADER_SIZE <= bytes.length) {
      const flags = bytes[at + 2];
      const size = new DataView(bytes.buffer, bytes.byteOffset + at + 4, 4)
        .getUint32(0, !isBigEndian(flags));
      if (flags & 1) {
        at += HEADER_SIZE;
        continue;
      }
      const payload = bytes.subarray(at + HEADER_SIZE, at + HEADER_SIZE + size);
      at += HEADER_SIZE + size;
      if (skipGreeting && bytes[at - size - HEADER_SIZE + 3] === Cmd.CONNECTION_VALIDATION) {
        skipGreeting = false;
        continue;
      }
      out.push({
        command: bytes[at - size - HEADER_SIZE + 3],
        r: new WireReader(payload, !isBigEndian(flags)),
      });
    }
    return out;
  };
  void little;
  return { conn, store, logs, closed, drain };
}

/** A client message (pva/messages.ts buildMessage), little-endian unless told. */
function msg(command: number, body: (w: WireWriter) => void, little = true): Uint8Array {
  return buildMessage(command, false, little, body);
}

function validate(h: Harness): void {
  h.drain();
  h.conn.receive(msg(Cmd.CONNECTION_VALIDATION, (w) => {
    w.u32(0x10000).u16(0x7fff).u16(0).string("ca");
    w.u8(0x80).string("").size(2).string("user").u8(0x60).string("host").u8(0x60);
    w.string("alice").string("bl-ws1");
  }));
  const [v] = h.drain();
  assert.equal(v.command, Cmd.CONNECTION_VALIDATED);
  assert.equal(v.r.u8(), 0xff);
}

function createChannel(h: Harness, name: string, cid = 1): number {
  h.conn.receive(msg(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(cid).string(name)));
  const [reply] = h.drain();
  assert.equal(reply.command, Cmd.CREATE_CHANNEL);
  assert.equal(reply.r.u32(), cid);
  const sid = reply.r.u32();
  assert.equal(reply.r.status().type, 0);
  return sid;
}

function init(
  h: Harness,
  command: number,
  sid: number,
  ioid: number,
  fields: string[] = [],
  options: Record<string, string> = {},
  nfree?: number,
): { type: StructDesc | undefined; status: number; message: string } {
  const req = buildPvRequest(fields, options);
  h.conn.receive(msg(command, (w) => {
    w.u32(sid).u32(ioid).u8(nfree === undefined ? 0x08 : 0x88);
    writeFieldDesc(w, req.type);
    writeValue(w, req.type, req.value);
    if (nfree !== undefined) w.u32(nfree);
  }));
  const [reply] = h.drain();
  assert.equal(reply.command, command);
  assert.equal(reply.r.u32(), ioid);
  reply.r.u8();
  const status = reply.r.status();
  const type = status.type <= 1 ? readFieldDesc(reply.r, new Map()) as StructDesc : undefined;
  return { type, status: status.type, message: status.message };
}

Deno.test("pva connection: validation keeps the ca credentials for write rules", () => {
  const h = harness();
  validate(h);
  assert.deepEqual(h.conn.client, { user: "alice", host: "bl-ws1", address: "127.0.0.1" });
  assert.equal(h.conn.validated, true);
});

Deno.test("pva connection: GET, PUT (refusal text returned), ECHO, unknown channel", async () => {
  const h = harness();
  validate(h);
  const sid = createChannel(h, "X:d");
  const { type } = init(h, Cmd.GET, sid, 10);
  h.conn.receive(msg(Cmd.GET, (w) => w.u32(sid).u32(10).u8(0x40)));
  const [get] = h.drain();
  get.r.u32();
  assert.equal(get.r.u8(), 0x40);
  assert.equal(get.r.u8(), 0xff);
  const value = {};
  readChanged(get.r, type!, value, new Map());
  assert.equal((value as { value: number }).value, 1.5);

  init(h, Cmd.PUT, sid, 11);
  const put = (v: number) =>
    h.conn.receive(msg(Cmd.PUT, (w) => w.u32(sid).u32(11).u8(0).bitSet(BitSet.of(1)).f64(v)));
  put(-3);
  await new Promise((r) => setTimeout(r, 0));
  const [refused] = h.drain();
  refused.r.u32();
  refused.r.u8();
  assert.deepEqual(refused.r.status(), {
    type: 2,
    message: "negative values are refused",
    callTree: "",
  });
  assert.equal(h.store.get("X:d")!.value()[0], 1.5);
  put(4.5);
  await new Promise((r) => setTimeout(r, 0));
  const [ok] = h.drain();
  ok.r.u32();
  ok.r.u8();
  assert.equal(ok.r.status().type, 0);
  assert.equal(h.store.get("X:d")!.value()[0], 4.5);

  // Read-only PV: the refusal names it.
  const ro = createChannel(h, "X:ro", 2);
  init(h, Cmd.PUT, ro, 12);
  h.conn.receive(msg(Cmd.PUT, (w) => w.u32(ro).u32(12).u8(0).bitSet(BitSet.of(1)).i32(1)));
  await new Promise((r) => setTimeout(r, 0));
  const [roReply] = h.drain();
  roReply.r.u32();
  roReply.r.u8();
  assert.match(roReply.r.status().message, /X:ro is read-only/);

  h.conn.receive(msg(Cmd.ECHO, (w) => w.u8(1).u8(2).u8(3)));
  const [echo] = h.drain();
  assert.equal(echo.command, Cmd.ECHO);
  assert.deepEqual(echo.r.take(3), Uint8Array.of(1, 2, 3));

  h.conn.receive(msg(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(9).string("NOPE")));
  const [nope] = h.drain();
  assert.equal(nope.r.u32(), 9);
  assert.equal(nope.r.u32(), 0xffffffff);
  assert.equal(nope.r.status().type, 3);
  assert.deepEqual(h.closed, []);
});

Deno.test("pva connection: write access hook refuses PUT per client", async () => {
  const store = new PvStore(defaultCodec);
  const rec = store.add({ name: "W:x", type: "double", writable: true });
  const logs: string[] = [];
  const conn = new ServerConnection({
    resolve: (n) => (n === "W:x" ? recordSource(rec) : undefined),
    identity: { guid: new Uint8Array(12), tcpPort: 1 },
    address: "10.0.0.9",
    writeAccess: (_pv, client) => client.address === "127.0.0.1",
    wake: () => {},
    onClose: () => {},
    log: (_l, m) => logs.push(m),
  });
  const h = { conn, store, logs: [], closed: [], drain: () => [] } as unknown as Harness;
  void h;
  conn.takeOutput();
  conn.receive(msg(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(1).string("W:x")));
  const out = concat(...conn.takeOutput());
  const sid = new DataView(out.buffer, out.byteOffset + 12, 4).getUint32(0, true);
  const req = buildPvRequest();
  conn.receive(msg(Cmd.PUT, (w) => {
    w.u32(sid).u32(5).u8(8);
    writeFieldDesc(w, req.type);
    writeValue(w, req.type, req.value);
  }));
  conn.takeOutput();
  conn.receive(msg(Cmd.PUT, (w) => w.u32(sid).u32(5).u8(0).bitSet(BitSet.of(1)).f64(9)));
  await new Promise((r) => setTimeout(r, 0));
  const reply = concat(...conn.takeOutput());
  assert.match(new TextDecoder().decode(reply), /Write access denied/);
  assert.equal(rec.value()[0], 0);
  assert.ok(logs.some((l) => /no write access/.test(l)));
});

Deno.test("pva connection: pipelined monitor never exceeds the window; newest value only", () => {
  const h = harness();
  validate(h);
  const sid = createChannel(h, "X:d");
  const { type } = init(h, Cmd.MONITOR, sid, 20, [], { pipeline: "true", queueSize: "2" }, 2);
  const rec = h.store.get("X:d")!;
  // Nothing before start.
  rec.post(1);
  assert.equal(h.conn.hasOutput(), false);
  h.conn.receive(msg(Cmd.MONITOR, (w) => w.u32(sid).u32(20).u8(0x44)));
  const seen: number[] = [];
  const take = () => {
    for (const m of h.drain()) {
      assert.equal(m.command, Cmd.MONITOR);
      m.r.u32();
      assert.equal(m.r.u8(), 0);
      const v = {} as { value: number };
      readChanged(m.r, type!, v, new Map());
      assert.equal(m.r.bitSet().isEmpty(), true);
      seen.push(v.value);
    }
  };
  take();
  rec.post(2);
  take();
  // Window (2) used up: a client that never acks gets nothing more, however many posts.
  for (let i = 3; i < 1000; i++) rec.post(i);
  take();
  assert.deepEqual(seen, [1, 2]);
  assert.equal(h.conn.hasOutput(), false);
  assert.ok(h.conn.queuedBytes < 1024);
  // Ack 1: exactly the newest value follows.
  h.conn.receive(msg(Cmd.MONITOR, (w) => w.u32(sid).u32(20).u8(0x80).u32(1)));
  take();
  assert.deepEqual(seen, [1, 2, 999]);
  // Destroy: no more updates.
  h.conn.receive(msg(Cmd.DESTROY_REQUEST, (w) => w.u32(sid).u32(20)));
  h.conn.receive(msg(Cmd.MONITOR, (w) => w.u32(sid).u32(20).u8(0x80).u32(5)));
  rec.post(5);
  assert.equal(h.conn.hasOutput(), false);
  assert.equal(rec.subscribers.size, 0);
  assert.deepEqual(h.closed, []);
});

Deno.test("pva connection: pvRequest errors get an error Status, not a closed connection", () => {
  const h = harness();
  validate(h);
  const sid = createChannel(h, "X:d");
  const r1 = init(h, Cmd.GET, sid, 30, ["nosuchfield"]);
  assert.equal(r1.status, 2);
  assert.match(r1.message, /must select at least one field/);
  const r2 = init(h, Cmd.MONITOR, sid, 31, [], { pipeline: "true", queueSize: "1" }, 1);
  assert.match(r2.message, /queueSize/);
  const r3 = init(h, Cmd.GET, 0xdead, 32);
  assert.match(r3.message, /no such channel/);
  // Partial selection: only value (bit 1) comes back.
  const r4 = init(h, Cmd.GET, sid, 33, ["value"]);
  assert.equal(r4.status, 0);
  h.conn.receive(msg(Cmd.GET, (w) => w.u32(sid).u32(33).u8(0)));
  const [get] = h.drain();
  get.r.u32();
  get.r.u8();
  get.r.status();
  assert.deepEqual(get.r.bitSet().toArray(), [1]);
  // Unknown IDs on exec are ignored (they race with destruction).
  h.conn.receive(msg(Cmd.GET, (w) => w.u32(sid).u32(999).u8(0)));
  assert.deepEqual(h.drain(), []);
  assert.deepEqual(h.closed, []);
});

Deno.test("pva connection: segmented messages are reassembled; control messages skipped", () => {
  const h = harness();
  validate(h);
  const whole = msg(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(3).string("X:d"));
  const body = whole.subarray(HEADER_SIZE);
  const seg = (flags: number, part: Uint8Array) => {
    const head = Uint8Array.of(0xca, 2, flags, Cmd.CREATE_CHANNEL, 0, 0, 0, 0);
    new DataView(head.buffer).setUint32(4, part.length, true);
    return concat(head, part);
  };
  const bytes = concat(
    seg(0x10, body.subarray(0, 3)),
    Uint8Array.of(0xca, 2, 0x01, 0x00, 0, 0, 0, 0), // SET_MARKER between segments
    seg(0x30, body.subarray(3, 5)),
    seg(0x20, body.subarray(5)),
  );
  // Byte by byte, to cut every number.
  for (const b of bytes) h.conn.receive(Uint8Array.of(b));
  const [reply] = h.drain();
  assert.equal(reply.command, Cmd.CREATE_CHANNEL);
  assert.equal(reply.r.u32(), 3);
  assert.deepEqual(h.closed, []);
});

const BAD_INPUTS: [string, (h: Harness) => Uint8Array, RegExp][] = [
  ["wrong magic", () => Uint8Array.of(0xcb, 2, 0, 2, 0, 0, 0, 0), /bad magic/],
  ["version 0", () => Uint8Array.of(0xca, 0, 0, 2, 0, 0, 0, 0), /version 0/],
  ["server direction bit", () => Uint8Array.of(0xca, 2, 0x40, 2, 0, 0, 0, 0), /direction/],
  [
    "size beyond the limit",
    () => Uint8Array.of(0xca, 2, 0, Cmd.GET, 0xff, 0xff, 0xff, 0x7f),
    /exceeds the limit/,
  ],
  [
    "continuation without a first segment",
    () => Uint8Array.of(0xca, 2, 0x20, Cmd.GET, 0, 0, 0, 0),
    /without a first segment/,
  ],
  [
    "truncated body (create channel name longer than the message)",
    () => msg(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(1).u8(50).u8(0x41)),
    /truncated/,
  ],
  [
    "recursive type nesting",
    () =>
      msg(Cmd.GET, (w) => {
        w.u32(0x07050301).u32(1).u8(8);
        for (let i = 0; i < 30; i++) w.u8(0x80).string("").size(1).string("f");
        w.u8(0x22);
      }),
    /nested too deeply/,
  ],
  [
    "absurd member count",
    () => msg(Cmd.GET, (w) => w.u32(0x07050301).u32(1).u8(8).u8(0x80).string("").size(1e9)),
    /count .* exceeds/,
  ],
  [
    "unknown type code",
    () => msg(Cmd.GET, (w) => w.u32(0x07050301).u32(1).u8(8).u8(0x86)),
    /unsupported type code/,
  ],
  [
    "unknown type cache key",
    () => msg(Cmd.GET, (w) => w.u32(0x07050301).u32(1).u8(8).u8(0xfe).i16(77)),
    /unknown type cache key/,
  ],
  [
    "string array length beyond the message",
    () =>
      msg(Cmd.GET, (w) => {
        w.u32(0x07050301).u32(1).u8(8).u8(0x80).string("").size(1).string("a").u8(0x68);
        w.size(100000);
      }),
    /count .* exceeds|truncated/,
  ],
];

for (const [name, make, pattern] of BAD_INPUTS) {
  Deno.test(`pva connection bad input: ${name} closes only this connection with a log line`, () => {
    const h = harness();
    validate(h);
    createChannel(h, "X:d");
    const rec = h.store.get("X:d")!;
    const sid = 0x07050301;
    init(h, Cmd.MONITOR, sid, 50);
    assert.equal(rec.subscribers.size, 1);
    h.conn.receive(make(h));
    assert.equal(h.closed.length, 1, `${name}: closed`);
    assert.match(h.closed[0], pattern);
    assert.ok(
      h.logs.some((l) => l.level === "warning" && /bad input/.test(l.message)),
      "a warning line",
    );
    // Its subscriptions are gone; more input is ignored.
    assert.equal(rec.subscribers.size, 0);
    h.conn.receive(msg(Cmd.ECHO, () => {}));
    assert.equal(h.conn.hasOutput(), false);
  });
}

Deno.test("pva connection: unknown commands are skipped by their size", () => {
  const h = harness();
  validate(h);
  h.conn.receive(concat(
    msg(0x55, (w) => w.u32(1).u32(2)),
    msg(Cmd.AUTHNZ, (w) => w.u8(1)),
    msg(Cmd.ECHO, (w) => w.u8(9)),
  ));
  const out = h.drain();
  assert.equal(out.length, 1);
  assert.equal(out[0].command, Cmd.ECHO);
  assert.deepEqual(h.closed, []);
});

Deno.test("pva connection: big-endian client messages are decoded by their own flag", () => {
  const h = harness();
  validate(h);
  h.conn.receive(msg(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(0x01020304).string("X:d"), false));
  const [reply] = h.drain();
  assert.equal(reply.r.u32(), 0x01020304);
});
