/**
 * Randomized decoder test: 100 000 mutated pvAccess messages (bit flips, truncations,
 * insertions, size-field corruption, splices) fed to server connections and to the UDP search
 * answerer. Nothing may escape as an exception: each connection either carries on or closes with
 * a reason, and its output stays bounded.
 */
import assert from "node:assert/strict";
import { PvStore } from "../ca/store.ts";
import { defaultCodec } from "../ca/codec_dbr.ts";
import { ServerConnection } from "../pva/connection.ts";
import { recordSource } from "../pva/source.ts";
import { buildMessage, Cmd } from "../pva/messages.ts";
import { BitSet, PvaProtocolError, type WireWriter } from "../pva/wire.ts";
import { writeFieldDesc, writeValue } from "../pva/pvdata.ts";
import { buildPvRequest } from "../pva/request.ts";
import { answerSearchDatagram, encodeSearch } from "../pva/search.ts";
import { createRandom } from "../core/random.ts";

const MESSAGES = 100_000;
const SID = 0x07050301;

/** A client message (pva/messages.ts buildMessage), little-endian unless told. */
function msg(command: number, body: (w: WireWriter) => void, little = true): Uint8Array {
  return buildMessage(command, false, little, body);
}

function corpus(): Uint8Array[] {
  const req = buildPvRequest();
  const piped = buildPvRequest(["value", "alarm.severity"], { pipeline: "true", queueSize: "4" });
  const withReq = (command: number, ioid: number, r = req, sub = 8, nfree?: number) =>
    msg(command, (w) => {
      w.u32(SID).u32(ioid).u8(sub);
      writeFieldDesc(w, r.type);
      writeValue(w, r.type, r.value);
      if (nfree !== undefined) w.u32(nfree);
    });
  return [
    msg(Cmd.CONNECTION_VALIDATION, (w) => {
      w.u32(0x10000).u16(0x7fff).u16(0).string("ca");
      w.u8(0xfd).i16(1).u8(0x80).string("").size(2).string("user").u8(0x60).string("host")
        .u8(0x60);
      w.string("u").string("h");
    }),
    msg(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(1).string("F:d")),
    msg(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(2).string("F:a")),
    withReq(Cmd.GET, 1),
    msg(Cmd.GET, (w) => w.u32(SID).u32(1).u8(0x40)),
    withReq(Cmd.PUT, 2),
    msg(Cmd.PUT, (w) => w.u32(SID).u32(2).u8(0).bitSet(BitSet.of(1)).f64(2.5)),
    msg(Cmd.PUT, (w) => w.u32(SID).u32(2).u8(0x40)),
    withReq(Cmd.MONITOR, 3, piped, 0x88, 4),
    msg(Cmd.MONITOR, (w) => w.u32(SID).u32(3).u8(0x44)),
    msg(Cmd.MONITOR, (w) => w.u32(SID).u32(3).u8(0x80).u32(2)),
    msg(Cmd.GET_FIELD, (w) => w.u32(SID).u32(4).string("")),
    msg(Cmd.DESTROY_REQUEST, (w) => w.u32(SID).u32(1)),
    msg(Cmd.CANCEL_REQUEST, (w) => w.u32(SID).u32(2)),
    msg(Cmd.ECHO, (w) => w.u32(7)),
    msg(Cmd.DESTROY_CHANNEL, (w) => w.u32(SID).u32(1)),
    msg(Cmd.RPC, (w) => w.u32(SID).u32(9).u8(8).u8(0xff)),
    encodeSearch(1, 0x81, 5076, [{ id: 1, name: "F:d" }, { id: 2, name: "F:zz" }]),
    msg(Cmd.GET, (w) => {
      w.u32(SID).u32(5).u8(8);
      w.u8(0x80).string("").size(3).string("a").u8(0x89).u8(0x81).string("").size(1)
        .string("x").u8(0x22).string("b").u8(0x8a).string("c").u8(0x88).u8(0x80).string("")
        .size(0);
      w.size(1).u8(1).size(0).u32(0).size(1).u8(1).u8(0xff).size(0);
    }),
  ];
}

function mutate(rand: () => number, base: Uint8Array, all: Uint8Array[]): Uint8Array {
  const pick = (n: number) => Math.floor(rand() * n);
  let out = base.slice();
  const rounds = 1 + pick(4);
  for (let i = 0; i < rounds; i++) {
    switch (pick(6)) {
      case 0: // flip a bit
        if (out.length > 0) out[pick(out.length)] ^= 1 << pick(8);
        break;
      case 1: // random byte
        if (out.length > 0) out[pick(out.length)] = pick(256);
        break;
      case 2: // truncate
        out = out.subarray(0, pick(out.length + 1));
        break;
      case 3: { // insert random bytes
        const at = pick(out.length + 1);
        const extra = Uint8Array.from({ length: 1 + pick(8) }, () => pick(256));
        const next = new Uint8Array(out.length + extra.length);
        next.set(out.subarray(0, at));
        next.set(extra, at);
        next.set(out.subarray(at), at + extra.length);
        out = next;
        break;
      }
      case 4: // corrupt the size field or a Size escape
        if (out.length >= 8) {
          new DataView(out.buffer, out.byteOffset).setUint32(4, pick(2 ** 32), rand() < 0.5);
        }
        break;
      case 5: { // splice with another message
        const other = all[pick(all.length)];
        const cut = pick(out.length + 1);
        const next = new Uint8Array(cut + other.length);
        next.set(out.subarray(0, cut));
        next.set(other, cut);
        out = next;
        break;
      }
    }
  }
  return out;
}

Deno.test("pva fuzz: 100k mutated messages never escape, never grow output unbounded", () => {
  const store = new PvStore(defaultCodec);
  store.add({ name: "F:d", type: "double", writable: true });
  store.add({ name: "F:a", type: "double", maxCount: 100, writable: true });
  const sources = new Map([...["F:d", "F:a"]].map((n) => [n, recordSource(store.get(n)!)]));
  const all = corpus();
  const rand = createRandom(20261202);
  const internal: string[] = [];
  let closed = 0;
  let open = 0;
  let conn: ServerConnection | undefined;
  let isClosed = false;
  const fresh = () => {
    isClosed = false;
    conn = new ServerConnection({
      resolve: (n) => sources.get(n),
      identity: { guid: new Uint8Array(12), tcpPort: 1 },
      address: "127.0.0.1",
      limits: { maxMessage: 1 << 20 },
      wake: () => {},
      onClose: () => {
        isClosed = true;
      },
      log: (level, message, fields) => {
        if (level === "error") internal.push(`${message} ${JSON.stringify(fields)}`);
      },
    });
    // A valid prefix so that deeper states are reached.
    for (const m of all.slice(0, 3)) conn.receive(m);
    conn.takeOutput();
  };
  fresh();
  let searches = 0;
  const started = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    const base = all[Math.floor(rand() * all.length)];
    const bytes = mutate(rand, base, all);
    if (i % 10 === 0) {
      // The UDP path: only PvaProtocolError may come out.
      try {
        // Both routes, forwarding on: the forwarding rules see mutated datagrams too.
        const answer = answerSearchDatagram(
          bytes,
          { guid: new Uint8Array(12), tcpPort: 1 },
          (n) => sources.has(n),
          { route: i % 20 === 0 ? "forwarded" : "direct", source: "127.0.0.1", forward: true },
        );
        assert.ok((answer.forward?.length ?? 0) <= bytes.length + 24, "forward bounded");
        searches++;
      } catch (err) {
        assert.ok(err instanceof PvaProtocolError, `search threw ${err}`);
      }
    }
    conn!.receive(bytes); // must not throw
    const out = conn!.takeOutput();
    assert.ok(out.reduce((n, p) => n + p.length, 0) < 4 * 1024 * 1024, "output bounded");
    if (isClosed) {
      closed++;
      fresh();
    } else if (rand() < 0.02) {
      open++;
      fresh();
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`pva fuzz: ${MESSAGES} messages in ${seconds.toFixed(1)} s, ${closed} closes`);
  assert.deepEqual(internal.slice(0, 5), [], "only protocol errors close connections");
  // Both outcomes happen: the corpus reaches real handling, not only the framer's rejects.
  assert.ok(closed > 1000, `closed ${closed}`);
  assert.ok(open > 100, `kept ${open}`);
  assert.ok(searches > 100, `search answered ${searches}`);
});
