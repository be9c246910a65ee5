import assert from "node:assert/strict";
import {
  clearChannelMessage,
  CMD,
  createChanRequest,
  DBE,
  DO_REPLY,
  echoMessage,
  encodeHeader,
  encodeMessage,
  eventAddRequest,
  eventCancelRequest,
  readNotifyRequest,
  searchRequest,
  writeRequest,
} from "../ca/messages.ts";
import { ECA } from "../ca/codec.ts";
import { WriteRefusedError } from "../ca/pv.ts";
import { makeHarness } from "./support/circuit_harness.ts";
import { defaultCodec } from "../ca/codec_dbr.ts";
import { stubStats } from "./support/stub_codec.ts";

const f64 = (x: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, x);
  return b;
};
const readF64 = (p: Uint8Array, offset = 0) =>
  new DataView(p.buffer, p.byteOffset).getFloat64(offset);

/** Connects channel `name` with CID `cid`; returns its SID. */
async function connect(h: ReturnType<typeof makeHarness>, name: string, cid = 1) {
  const out = await h.exchange(createChanRequest(name, cid));
  const reply = out.find((m) => m.header.cmd === CMD.CREATE_CHAN);
  assert.ok(reply, `channel ${name} created`);
  return { sid: reply.header.p2, out };
}

Deno.test("circuit: VERSION at start, ACCESS_RIGHTS before CREATE_CHAN reply", async () => {
  const h = makeHarness();
  h.store.add({ name: "X", type: "double", writable: true, initial: 1.5 });
  const { out } = await connect(h, "X", 7);
  assert.deepStrictEqual(out.map((m) => m.header.cmd), [CMD.ACCESS_RIGHTS, CMD.CREATE_CHAN]);
  assert.deepStrictEqual(out[0].header, { cmd: 22, size: 0, type: 0, count: 0, p1: 7, p2: 3 });
  assert.equal(out[1].header.type, 6);
  assert.equal(out[1].header.count, 1);
  assert.equal(out[1].header.p1, 7);
  const fail = await h.exchange(createChanRequest("nope", 8));
  assert.deepStrictEqual(fail.map((m) => [m.header.cmd, m.header.p1]), [[CMD.CREATE_CH_FAIL, 8]]);
});

Deno.test("circuit: fields and long strings resolve", async () => {
  const h = makeHarness();
  h.store.add({ name: "X", type: "double", units: "mm", maxCount: 4, initial: [1, 2] });
  h.store.add({ name: "S", type: "string", initial: "abc" });
  for (
    const [name, type, count] of [
      ["X.EGU", 0, 1],
      ["X.NELM", 5, 1],
      ["X.", 6, 4],
      ["S.VAL$", 4, 40],
      ["S$", 4, 40],
      ["X.SEVR", 3, 1],
    ] as const
  ) {
    const { out } = await connect(h, name);
    assert.deepStrictEqual([out[1].header.type, out[1].header.count], [type, count], name);
  }
  assert.equal(
    (await h.exchange(createChanRequest("X.BOGUS", 2)))[0].header.cmd,
    CMD.CREATE_CH_FAIL,
  );
  assert.equal((await h.exchange(createChanRequest("X$", 2)))[0].header.cmd, CMD.CREATE_CH_FAIL);
  const { sid } = await connect(h, "X.NORD");
  const read = await h.exchange(readNotifyRequest(5, 1, sid, 3));
  assert.equal(new DataView(read[0].payload.buffer).getInt32(0), 2);
});

Deno.test("circuit: READ_NOTIFY exact count, count 0 = current length", async () => {
  const h = makeHarness();
  h.store.add({ name: "W", type: "double", maxCount: 10, initial: [1, 2, 3] });
  const { sid } = await connect(h, "W");
  const [dyn] = await h.exchange(readNotifyRequest(6, 0, sid, 11));
  assert.deepStrictEqual([dyn.header.count, dyn.header.size, dyn.header.p1, dyn.header.p2], [
    3,
    24,
    ECA.NORMAL,
    11,
  ]);
  const [exact] = await h.exchange(readNotifyRequest(6, 5, sid, 12));
  assert.deepStrictEqual([exact.header.count, exact.header.size], [5, 40]);
  assert.equal(readF64(exact.payload, 16), 3);
  assert.equal(readF64(exact.payload, 32), 0);
  const [tooMany] = await h.exchange(readNotifyRequest(6, 11, sid, 13));
  assert.deepStrictEqual([tooMany.header.cmd, tooMany.header.p2], [CMD.ERROR, ECA.BADCOUNT]);
});

Deno.test("circuit: WRITE then READ_NOTIFY reads back after an async handler", async () => {
  const h = makeHarness();
  let release = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const seen: number[] = [];
  h.store.add({
    name: "X",
    type: "double",
    writable: true,
    onWrite: async (v) => {
      seen.push((v as Float64Array)[0]);
      await gate;
    },
  });
  const { sid } = await connect(h, "X");
  h.circuit.receive(writeRequest(CMD.WRITE, 6, 1, sid, 1, f64(4.5)));
  h.circuit.receive(readNotifyRequest(6, 1, sid, 2));
  await Promise.resolve();
  assert.deepStrictEqual(h.output(), []);
  release();
  await h.circuit.idle();
  const out = h.output();
  assert.equal(out.length, 1);
  assert.equal(readF64(out[0].payload), 4.5);
  assert.deepStrictEqual(seen, [4.5]);
});

Deno.test("circuit: handler return value is stored instead", async () => {
  const h = makeHarness();
  h.store.add({
    name: "X",
    type: "double",
    writable: true,
    onWrite: (v) => (v as Float64Array)[0] * 2,
  });
  const { sid } = await connect(h, "X");
  const [done] = await h.exchange(writeRequest(CMD.WRITE_NOTIFY, 6, 1, sid, 9, f64(2)));
  assert.deepStrictEqual([done.header.cmd, done.header.p1, done.header.p2], [
    CMD.WRITE_NOTIFY,
    ECA.NORMAL,
    9,
  ]);
  assert.equal((h.store.get("X")!.value() as Float64Array)[0], 4);
});

Deno.test("circuit: refused writes and missing write access are reported", async () => {
  const h = makeHarness({ writeAccess: (pv, client) => !(pv === "H" && client.user === "bob") });
  h.store.add({
    name: "R",
    type: "double",
    writable: true,
    onWrite: () => {
      throw new WriteRefusedError("no");
    },
  });
  h.store.add({ name: "RO", type: "double" });
  h.store.add({ name: "H", type: "double", writable: true });
  const r = (await connect(h, "R", 1)).sid;
  const ro = await connect(h, "RO", 2);
  assert.equal(ro.out[0].header.p2, 1, "read-only channel gets rights=read");
  const [err] = await h.exchange(writeRequest(CMD.WRITE, 6, 1, r, 1, f64(1)));
  assert.deepStrictEqual([err.header.cmd, err.header.p1, err.header.p2], [
    CMD.ERROR,
    1,
    ECA.PUTFAIL,
  ]);
  const [wn] = await h.exchange(writeRequest(CMD.WRITE_NOTIFY, 6, 1, r, 5, f64(1)));
  assert.deepStrictEqual([wn.header.cmd, wn.header.p1], [CMD.WRITE_NOTIFY, ECA.PUTFAIL]);
  const [denied] = await h.exchange(writeRequest(CMD.WRITE, 6, 1, ro.sid, 2, f64(1)));
  assert.deepStrictEqual([denied.header.cmd, denied.header.p1, denied.header.p2], [
    CMD.ERROR,
    2,
    ECA.NOWTACCESS,
  ]);
  const [deniedN] = await h.exchange(writeRequest(CMD.WRITE_NOTIFY, 6, 1, ro.sid, 6, f64(1)));
  assert.equal(deniedN.header.p1, ECA.NOWTACCESS);
  await h.exchange(
    encodeMessage(
      { cmd: CMD.CLIENT_NAME, type: 0, p1: 0, p2: 0 },
      new TextEncoder().encode("bob\0"),
    ),
  );
  const hooked = await connect(h, "H", 3);
  assert.equal(hooked.out[0].header.p2, 1, "hook denies write for bob");
  const [bad] = await h.exchange(writeRequest(CMD.WRITE_NOTIFY, 6, 1, hooked.sid, 7, f64(1)));
  assert.equal(bad.header.p1, ECA.NOWTACCESS);
  assert.equal((h.store.get("H")!.value() as Float64Array)[0], 0);
});

Deno.test("circuit: monitors coalesce to the newest value, encode shared across circuits", async () => {
  const a = makeHarness();
  const b = makeHarness({ store: a.store });
  const pv = a.store.add({ name: "M", type: "double", initial: 0 });
  const sa = (await connect(a, "M")).sid;
  const sb = (await connect(b, "M")).sid;
  const [first] = await a.exchange(eventAddRequest(6, 0, sa, 77, DBE.VALUE));
  assert.deepStrictEqual([first.header.cmd, first.header.p1, first.header.p2], [
    CMD.EVENT_ADD,
    ECA.NORMAL,
    77,
  ]);
  await b.exchange(eventAddRequest(6, 1, sb, 1, DBE.VALUE));
  for (let i = 1; i <= 1000; i++) pv.post(i);
  assert.equal(a.circuit.dirtyCount, 1);
  assert.equal(a.circuit.queuedBytes, 0);
  const before = stubStats.encodes;
  const ua = a.output();
  const ub = b.output();
  assert.equal(stubStats.encodes - before, 1, "one encode for both subscribers");
  assert.equal(ua.length, 1);
  assert.equal(readF64(ua[0].payload), 1000);
  assert.equal(readF64(ub[0].payload), 1000);
  const [cancel] = await a.exchange(eventCancelRequest(6, 0, sa, 77));
  assert.deepStrictEqual(cancel.header, {
    cmd: CMD.EVENT_ADD,
    size: 0,
    type: 6,
    count: 0,
    p1: sa,
    p2: 77,
  });
  pv.post(5);
  assert.deepStrictEqual(a.output(), []);
  const [badCancel] = await a.exchange(eventCancelRequest(6, 0, sa, 77));
  assert.deepStrictEqual([badCancel.header.cmd, badCancel.header.p2], [CMD.ERROR, ECA.BADMONID]);
});

Deno.test("circuit: DBE masks select events", async () => {
  const h = makeHarness();
  const pv = h.store.add({ name: "M", type: "double" });
  const { sid } = await connect(h, "M");
  await h.exchange(
    eventAddRequest(6, 1, sid, 1, DBE.ALARM),
    eventAddRequest(6, 1, sid, 2, DBE.PROPERTY),
  );
  pv.post(1);
  assert.deepStrictEqual(h.output(), []);
  pv.post(2, { severity: 2, status: 3 });
  assert.deepStrictEqual(h.output().map((m) => m.header.p2), [1]);
  pv.setMetadata({ units: "V" });
  assert.deepStrictEqual(h.output().map((m) => m.header.p2), [2]);
});

Deno.test("circuit: EVENTS_OFF holds updates, EVENTS_ON sends the latest", async () => {
  const h = makeHarness();
  const pv = h.store.add({ name: "M", type: "double" });
  const { sid } = await connect(h, "M");
  await h.exchange(eventAddRequest(6, 1, sid, 1, DBE.VALUE));
  await h.exchange(encodeMessage({ cmd: CMD.EVENTS_OFF, type: 0, p1: 0, p2: 0 }));
  pv.post(1);
  pv.post(2);
  const [echo] = await h.exchange(echoMessage());
  assert.equal(echo.header.cmd, CMD.ECHO, "replies still flow");
  assert.deepStrictEqual(h.output(), []);
  const on = await h.exchange(encodeMessage({ cmd: CMD.EVENTS_ON, type: 0, p1: 0, p2: 0 }));
  assert.equal(on.length, 1);
  assert.equal(readF64(on[0].payload), 2);
});

Deno.test("circuit: removing a PV sends SERVER_DISCONN; CLEAR_CHANNEL echoes", async () => {
  const h = makeHarness();
  h.store.add({ name: "A", type: "double" });
  h.store.add({ name: "B", type: "double" });
  const a = await connect(h, "A", 5);
  const b = await connect(h, "B", 6);
  await h.exchange(eventAddRequest(6, 1, a.sid, 1, DBE.VALUE));
  h.store.remove("A");
  const out = h.output();
  assert.deepStrictEqual(out.map((m) => [m.header.cmd, m.header.p1]), [[CMD.SERVER_DISCONN, 5]]);
  assert.equal(h.circuit.channelCount, 1);
  assert.equal(h.circuit.subscriptionCount, 0);
  const [clear] = await h.exchange(clearChannelMessage(b.sid, 6));
  assert.deepStrictEqual(clear.header, {
    cmd: CMD.CLEAR_CHANNEL,
    size: 0,
    type: 0,
    count: 0,
    p1: b.sid,
    p2: 6,
  });
  const [bad] = await h.exchange(clearChannelMessage(b.sid, 6));
  assert.deepStrictEqual([bad.header.cmd, bad.header.p2], [CMD.ERROR, ECA.BADCHID]);
  assert.deepStrictEqual(h.closed, []);
});

Deno.test("circuit: SEARCH over TCP, NOT_FOUND only with DO_REPLY; ECHO and READ_SYNC", async () => {
  const h = makeHarness();
  h.store.add({ name: "A", type: "double" });
  const out = await h.exchange(
    searchRequest("A", 3),
    searchRequest("nope", 4),
    searchRequest("nope", 5, DO_REPLY),
    echoMessage(),
    encodeMessage({ cmd: CMD.READ_SYNC, type: 0, p1: 0, p2: 0 }),
  );
  assert.deepStrictEqual(out.map((m) => [m.header.cmd, m.header.p2]), [
    [CMD.SEARCH, 3],
    [CMD.NOT_FOUND, 5],
    [CMD.ECHO, 0],
    [CMD.READ_SYNC, 0],
  ]);
  assert.equal(out[0].header.type, 5064);
  assert.equal(out[0].header.p1, 0xffffffff);
});

// ---- bad input ----------------------------------------------------------------------------------

Deno.test("circuit bad input: unknown command closes only this circuit", async () => {
  const h = makeHarness();
  const out = await h.exchange(encodeMessage({ cmd: 99, type: 0, p1: 0, p2: 0 }));
  assert.equal(h.closed.length, 1);
  assert.match(h.closed[0], /unsupported command 99/);
  assert.ok(h.circuit.closed);
  assert.deepStrictEqual(out, []);
  assert.ok(h.logs.some((l) => l.includes("Closing circuit")));
});

Deno.test("circuit bad input: truncated header waits, does not close", async () => {
  const h = makeHarness();
  await h.exchange(echoMessage().subarray(0, 9));
  assert.deepStrictEqual(h.closed, []);
  const out = await h.exchange(echoMessage().subarray(9));
  assert.equal(out[0].header.cmd, CMD.ECHO);
});

Deno.test("circuit bad input: 4 GiB declared size closes before allocating", async () => {
  const h = makeHarness();
  h.store.add({ name: "A", type: "double", writable: true, maxCount: 4 });
  const { sid } = await connect(h, "A");
  await h.exchange(
    encodeHeader({ cmd: CMD.WRITE, size: 0xfffffff8, type: 6, count: 4, p1: sid, p2: 1 }),
  );
  assert.match(h.closed[0], /exceeds limit/);
  const h2 = makeHarness();
  await h2.exchange(
    encodeHeader({ cmd: CMD.CLIENT_NAME, size: 0x7ffffff8, type: 0, count: 0, p1: 0, p2: 0 }),
  );
  assert.match(h2.closed[0], /exceeds limit/);
});

Deno.test("circuit bad input: misaligned payload closes", async () => {
  const h = makeHarness();
  const m = encodeMessage({ cmd: CMD.HOST_NAME, type: 0, p1: 0, p2: 0 }, new Uint8Array(8));
  new DataView(m.buffer).setUint16(2, 5);
  await h.exchange(m);
  assert.match(h.closed[0], /misaligned/);
});

Deno.test("circuit bad input: unknown SID and unreadable DBR types give ERROR, circuit stays", async () => {
  const h = makeHarness();
  h.store.add({ name: "A", type: "double", writable: true });
  const { sid } = await connect(h, "A", 4);
  const out = await h.exchange(
    readNotifyRequest(6, 1, 12345, 1),
    eventAddRequest(35, 1, sid, 3, DBE.VALUE),
    writeRequest(CMD.WRITE_NOTIFY, 6, 1, 999, 5, f64(1)),
  );
  assert.deepStrictEqual(out.map((m) => [m.header.cmd, m.header.p2]), [
    [CMD.ERROR, ECA.BADCHID],
    [CMD.ERROR, ECA.BADTYPE],
    [CMD.ERROR, ECA.BADCHID],
  ]);
  assert.equal(out[1].header.p1, 4, "ERROR p1 is the channel's CID");
  assert.deepStrictEqual(h.closed, []);
});

Deno.test("circuit bad input: a DBR type out of range closes the circuit without a reply (as rsrv)", async () => {
  const requests = (sid: number) => [
    readNotifyRequest(39, 1, sid, 2),
    readNotifyRequest(0xffff, 1, sid, 2),
    encodeMessage({ cmd: CMD.READ, type: 999, count: 1, p1: sid, p2: 2 }),
    eventAddRequest(500, 1, sid, 3, DBE.VALUE),
    writeRequest(CMD.WRITE, 77, 1, sid, 4, f64(1)),
    writeRequest(CMD.WRITE_NOTIFY, 39, 1, sid, 5, f64(1)),
  ];
  for (let i = 0; i < requests(0).length; i++) {
    const h = makeHarness();
    h.store.add({ name: "A", type: "double", writable: true });
    const { sid } = await connect(h, "A", 4);
    const out = await h.exchange(requests(sid)[i], readNotifyRequest(6, 1, sid, 9));
    assert.deepStrictEqual(out, [], `request ${i}: no reply, nothing after it`);
    assert.equal(h.closed.length, 1, `request ${i} closes`);
    assert.match(h.closed[0], /DBR type \d+ out of range/);
    assert.equal(h.circuit.channelCount, 0);
  }
  // The last valid type (38, DBR_CLASS_NAME) is answered, not a reason to close.
  const h = makeHarness({ codec: defaultCodec });
  h.store.add({ name: "A", type: "double" });
  const { sid } = await connect(h, "A", 4);
  const out = await h.exchange(readNotifyRequest(38, 1, sid, 2));
  assert.equal(out.length, 1);
  assert.deepStrictEqual(h.closed, []);
});

Deno.test("circuit bad input: channel and subscription limits close the circuit", async () => {
  const h = makeHarness({ limits: { maxChannels: 100, maxSubscriptions: 10 } });
  h.store.add({ name: "A", type: "double" });
  const requests = Array.from({ length: 5000 }, (_, i) => createChanRequest("A", i));
  await h.exchange(...requests);
  assert.match(h.closed[0], /too many channels/);
  assert.equal(h.circuit.channelCount, 0, "resources released on close");
  const s = makeHarness({ limits: { maxSubscriptions: 10 } });
  s.store.add({ name: "A", type: "double" });
  const { sid } = await connect(s, "A");
  await s.exchange(...Array.from({ length: 50 }, (_, i) => eventAddRequest(6, 1, sid, i, 1)));
  assert.match(s.closed[0], /too many subscriptions/);
  assert.equal(s.store.get("A")!.subscribers.size, 0);
});

Deno.test("circuit bad input: request queue is bounded (back-pressure)", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const h = makeHarness({ limits: { maxQueuedRequests: 64 } });
  h.store.add({ name: "A", type: "double", writable: true, onWrite: () => gate });
  const { sid } = await connect(h, "A");
  h.circuit.receive(writeRequest(CMD.WRITE, 6, 1, sid, 1, f64(1)));
  for (let i = 0; i < 100; i++) h.circuit.receive(echoMessage());
  assert.equal(h.circuit.wantsInput(), false);
  let roomed = false;
  const room = h.circuit.waitForRoom().then(() => (roomed = true));
  await Promise.resolve();
  assert.equal(roomed, false);
  release();
  await room;
  await h.circuit.idle();
  assert.equal(h.output().length, 100);
});

Deno.test("store: invalid definitions and oversized posts are refused", () => {
  const h = makeHarness();
  assert.throws(() => h.store.add({ name: "Z", type: "double", maxCount: 0 }), /maxCount/);
  assert.throws(() => h.store.add({ name: "bad name", type: "double" }), /invalid PV name/);
  const pv = h.store.add({ name: "Z", type: "long", maxCount: 3 });
  assert.throws(() => pv.post([1, 2, 3, 4]));
  assert.deepStrictEqual(Array.from(pv.value() as Int32Array), []);
  pv.post([1, 2]);
  assert.equal(pv.value().length, 2);
});

Deno.test("circuit: writes outside control limits get ECA_PUTFAIL", async () => {
  const h = makeHarness();
  const seen: number[] = [];
  h.store.add({
    name: "LIM",
    type: "double",
    writable: true,
    controlLimits: [0, 10],
    onWrite: (v) => void seen.push((v as Float64Array)[0]),
  });
  const { sid } = await connect(h, "LIM");
  const [bad] = await h.exchange(writeRequest(CMD.WRITE_NOTIFY, 6, 1, sid, 1, f64(11)));
  assert.equal(bad.header.p1, ECA.PUTFAIL);
  const [good] = await h.exchange(writeRequest(CMD.WRITE_NOTIFY, 6, 1, sid, 2, f64(10)));
  assert.equal(good.header.p1, ECA.NORMAL);
  assert.deepStrictEqual(seen, [10]);
});

Deno.test("circuit: deprecated READ replies with cmd 3 and the CID", async () => {
  const h = makeHarness();
  h.store.add({ name: "R", type: "double", initial: 2.5 });
  const { sid } = await connect(h, "R", 33);
  const [reply] = await h.exchange(
    encodeMessage({ cmd: CMD.READ, type: 6, count: 1, p1: sid, p2: 8 }),
  );
  assert.deepStrictEqual([reply.header.cmd, reply.header.p1, reply.header.p2], [CMD.READ, 33, 8]);
  assert.equal(readF64(reply.payload), 2.5);
});

Deno.test("circuit: full request queue and full reply queue do not deadlock", async () => {
  const h = makeHarness({ limits: { maxQueuedRequests: 8, maxQueuedReplyBytes: 256 } });
  for (let i = 0; i < 100; i++) h.circuit.receive(echoMessage());
  assert.equal(h.circuit.wantsInput(), false);
  let echoes = 0;
  for (let round = 0; round < 200 && echoes < 100; round++) {
    await Promise.resolve();
    echoes += h.output().length;
  }
  await h.circuit.idle();
  echoes += h.output().length;
  assert.equal(echoes, 100);
  assert.equal(h.circuit.wantsInput(), true);
});

Deno.test("circuit (real codec): write-only and read-only DBR types", async () => {
  const h = makeHarness({ codec: defaultCodec });
  h.store.add({ name: "T", type: "double", writable: true, initial: 1 });
  const { sid } = await connect(h, "T", 3);
  const [ackRead] = await h.exchange(readNotifyRequest(35, 1, sid, 1));
  assert.deepStrictEqual([ackRead.header.cmd, ackRead.header.p1], [CMD.READ_NOTIFY, ECA.GETFAIL]);
  const [classWrite] = await h.exchange(
    writeRequest(CMD.WRITE_NOTIFY, 38, 1, sid, 2, new Uint8Array(40)),
  );
  assert.deepStrictEqual([classWrite.header.cmd, classWrite.header.p1], [
    CMD.WRITE_NOTIFY,
    ECA.PUTFAIL,
  ]);
  const [ack] = await h.exchange(writeRequest(CMD.WRITE_NOTIFY, 36, 1, sid, 3, new Uint8Array(8)));
  assert.equal(ack.header.p1, ECA.NORMAL, "alarm acknowledgement accepted");
  const [str] = await h.exchange(
    writeRequest(CMD.WRITE_NOTIFY, 0, 1, sid, 4, new TextEncoder().encode("2.5\0\0\0\0\0")),
  );
  assert.equal(str.header.p1, ECA.NORMAL, "short scalar DBR_STRING write accepted");
  assert.equal((h.store.get("T")!.value() as Float64Array)[0], 2.5);
  const [bad] = await h.exchange(
    writeRequest(CMD.WRITE_NOTIFY, 0, 1, sid, 5, new TextEncoder().encode("abc\0\0\0\0\0")),
  );
  assert.equal(bad.header.p1, ECA.PUTFAIL, "unparsable string");
});
