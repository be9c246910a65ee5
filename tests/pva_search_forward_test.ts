/**
 * Local search forwarding (spec §4.5): a unicast SEARCH is forwarded with an ORIGIN_TAG and the
 * client's reply address filled in, byte-equal to what PVXS 1.5.2 forwards; forwarded datagrams
 * are answered to the original client under PVXS's rules; tests never send to multicast (the
 * forwarding destination is a loopback port the test owns), and the test helpers keep it off.
 */
import assert from "node:assert/strict";
import { PvStore } from "../ca/store.ts";
import { defaultCodec } from "../ca/codec_dbr.ts";
import {
  answerSearchDatagram,
  type DatagramAnswer,
  type DatagramContext,
  type DatagramRoute,
  decodeSearchResponse,
  encodeOriginTag,
  encodeSearch,
  LOCAL_FORWARD_GROUP,
  type ServerIdentity,
} from "../pva/search.ts";
import { HEADER_SIZE } from "../pva/messages.ts";
import { WireReader } from "../pva/wire.ts";
import { searchUdp } from "../pva/client.ts";
import { startLoopbackPvaServer } from "./support/pva_fixture_pvs.ts";
import { testPvaServerEnv } from "./support/epics_env.ts";
import { parseIocOptions } from "../lib/config.ts";
import { concat } from "./support/bytes.ts";

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.trim().split(/\s+/).map((p) => parseInt(p, 16)));
}

const IDENTITY: ServerIdentity = { guid: new Uint8Array(12).fill(7), tcpPort: 5075 };
const hosts = (name: string) => name === "demo:x";

/** What `pvxget demo:x` sent by unicast to 127.0.0.1 (reply port 0xde99, instance id 0x12345678). */
const UNICAST_SEARCH = encodeSearch(0x66696e64, 0x80, 0xde99, [{ id: 0x12345678, name: "demo:x" }]);

/** The datagram PVXS 1.5.2 forwarded for it to 224.0.0.128 (spec §4.5, observed). */
const PVXS_FORWARDED = hex(`
  ca 02 80 16 00 00 00 10  00 00 00 00 00 00 00 00 00 00 ff ff 7f 00 00 01
  ca 02 80 03 00 00 00 2c  66 69 6e 64 00 00 00 00
  00 00 00 00 00 00 00 00 00 00 ff ff 7f 00 00 01 de 99
  01 03 74 63 70 00 01 12 34 56 78 06 64 65 6d 6f 3a 78`);

/** Answers `datagram` as the server does, forwarding on, from 127.0.0.1 unless `context` says. */
function answer(
  datagram: Uint8Array,
  route: DatagramRoute,
  context: Partial<DatagramContext> = {},
): DatagramAnswer {
  return answerSearchDatagram(datagram, IDENTITY, hosts, {
    route,
    source: "127.0.0.1",
    forward: true,
    ...context,
  });
}

function replyOf(bytes: Uint8Array) {
  return decodeSearchResponse(new WireReader(bytes.subarray(HEADER_SIZE), false));
}

Deno.test("pva forwarding: a unicast search is forwarded byte-equal to PVXS, and still answered", () => {
  const got = answer(UNICAST_SEARCH, "direct", { destination: "127.0.0.1" });
  assert.deepEqual([...got.forward!], [...PVXS_FORWARDED]);
  assert.equal(got.replies.length, 1);
  assert.equal(got.replies[0].port, 0xde99);
  assert.deepEqual(replyOf(got.replies[0].bytes).ids, [0x12345678]);
  // The received datagram itself is not modified.
  assert.equal(UNICAST_SEARCH[8 + 4], 0x80);
});

Deno.test("pva forwarding: an explicit reply address is kept; unknown destination is all zero", () => {
  const search = encodeSearch(9, 0x80, 4000, [{ id: 1, name: "other" }]);
  search.set([0xff, 0xff, 10, 0, 0, 7], 8 + 8 + 10); // reply address ::ffff:10.0.0.7
  const got = answer(search, "direct");
  // Nothing hosted here, no reply required: no reply, but the others may host it.
  assert.equal(got.replies.length, 0);
  const expected = concat(encodeOriginTag(), search);
  expected[24 + 8 + 4] = 0x00; // unicast flag cleared
  assert.deepEqual([...got.forward!], [...expected]);
  assert.deepEqual(
    [...encodeOriginTag()].slice(8),
    new Array(10).fill(0).concat([0xff, 0xff, 0, 0, 0, 0]),
  );
});

Deno.test("pva forwarding: nothing is forwarded when off, for broadcasts, or from a multicast source", () => {
  const off = answer(UNICAST_SEARCH, "direct", { forward: false });
  assert.equal(off.forward, undefined);
  assert.equal(off.replies.length, 1);
  const broadcast = encodeSearch(1, 0x00, 4000, [{ id: 1, name: "demo:x" }]);
  const b = answer(broadcast, "direct");
  assert.equal(b.forward, undefined);
  assert.equal(b.replies.length, 1);
  const m = answer(UNICAST_SEARCH, "direct", { source: "224.0.0.9" });
  assert.deepEqual(m, { replies: [], forward: undefined });
});

Deno.test("pva forwarding: a forwarded search is answered to the original client, never re-forwarded", () => {
  const got = answer(PVXS_FORWARDED, "forwarded");
  assert.equal(got.forward, undefined);
  assert.equal(got.replies.length, 1);
  assert.equal(got.replies[0].address, "127.0.0.1");
  assert.equal(got.replies[0].port, 0xde99);
  assert.deepEqual(replyOf(got.replies[0].bytes).ids, [0x12345678]);
  // Even if a forwarder left the unicast flag set, a forwarded search is not forwarded again.
  const flagged = PVXS_FORWARDED.slice();
  flagged[24 + 8 + 4] = 0x80;
  const again = answer(flagged, "forwarded");
  assert.equal(again.forward, undefined);
  assert.equal(again.replies.length, 1);
});

Deno.test("pva forwarding: PVXS's receiving rules (zero reply address, tags, sources)", () => {
  const forwarded = { route: "forwarded", source: "127.0.0.1" } as const;
  // A forwarded search without a reply address cannot reach its client: dropped.
  const zero = concat(encodeOriginTag("127.0.0.1"), UNICAST_SEARCH);
  assert.deepEqual(answerSearchDatagram(zero, IDENTITY, hosts, forwarded).replies, []);
  // Without a tag (some implementations forward bare searches) it is still answered.
  const bare = PVXS_FORWARDED.subarray(24);
  assert.equal(answerSearchDatagram(bare, IDENTITY, hosts, forwarded).replies.length, 1);
  // A second ORIGIN_TAG ends the datagram.
  const twoTags = concat(PVXS_FORWARDED.subarray(0, 24), PVXS_FORWARDED);
  assert.deepEqual(answerSearchDatagram(twoTags, IDENTITY, hosts, forwarded).replies, []);
  // Forwarded copies come over loopback only.
  assert.deepEqual(
    answerSearchDatagram(PVXS_FORWARDED, IDENTITY, hosts, { ...forwarded, source: "10.1.2.3" }),
    { replies: [], forward: undefined },
  );
  // An ORIGIN_TAG arriving directly (not through the loopback group) is not trusted.
  const direct = answer(PVXS_FORWARDED, "direct");
  assert.deepEqual(direct, { replies: [], forward: undefined });
});

Deno.test("pva forwarding e2e: the server forwards a unicast search to a configured loopback port", async () => {
  const store = new PvStore(defaultCodec);
  store.add({ name: "F:x", type: "double", initial: 1 });
  // The forwarding destination: a unicast loopback port this test owns (never multicast).
  const sink = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const sinkPort = (sink.addr as Deno.NetAddr).port;
  const server = await startLoopbackPvaServer(store, {
    forwardSearches: true,
    forwardDestination: { hostname: "127.0.0.1", port: sinkPort },
  });
  try {
    assert.deepEqual(server.searchForwarding, { hostname: "127.0.0.1", port: sinkPort });
    const received = sink.receive();
    const hit = await searchUdp(["F:x"], "127.0.0.1", server.udpPort);
    assert.equal(hit?.found, true, "the client is answered directly");
    const [datagram, from] = await received;
    assert.equal((from as Deno.NetAddr).hostname, "127.0.0.1");
    // ORIGIN_TAG: sent to 127.0.0.1 (the server's interface), then the search.
    assert.deepEqual([...datagram.subarray(0, 24)], [...encodeOriginTag("127.0.0.1")]);
    const search = datagram.subarray(24);
    assert.equal(search[3], 0x03, "SEARCH");
    assert.equal(search[8 + 4], 0x00, "unicast flag cleared");
    // Reply address = the client's (127.0.0.1), reply port unchanged (the client's socket).
    assert.deepEqual(
      [...search.subarray(8 + 8, 8 + 24)],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1],
    );
    const name = new TextDecoder().decode(search.subarray(search.length - 3));
    assert.equal(name, "F:x");
  } finally {
    sink.close();
    await server.close();
  }
});

Deno.test("pva forwarding: on by default, off in every test helper and the tests' IOC environment", async () => {
  // Production defaults: the IOC forwards unless told otherwise.
  assert.equal(parseIocOptions(["--backend", "sim"], {}).pvaForward, true);
  assert.equal(
    parseIocOptions(["--backend", "sim", "--pva-forward", "off"], { DISS_PVA_FORWARD: "on" })
      .pvaForward,
    false,
  );
  assert.throws(() => parseIocOptions(["--backend", "sim"], { DISS_PVA_FORWARD: "maybe" }));
  // The tests' IOC environment (tests/support/ioc_process.ts) switches it off.
  assert.equal(parseIocOptions(["--backend", "sim"], testPvaServerEnv()).pvaForward, false);
  // The loopback server helper (tests and benchmarks) starts with forwarding off.
  const server = await startLoopbackPvaServer(new PvStore(defaultCodec));
  try {
    assert.equal(server.searchForwarding, undefined);
  } finally {
    await server.close();
  }
  assert.equal(LOCAL_FORWARD_GROUP, "224.0.0.128");
});
