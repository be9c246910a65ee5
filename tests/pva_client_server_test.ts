/**
 * pvAccess server and our client end to end through real loopback sockets: UDP and TCP search,
 * GET_FIELD, GET, PUT with refusals, monitors (plain and pipelined), NTNDArray images, and a
 * client vanishing mid-message.
 */
import assert from "node:assert/strict";
import { PvStore } from "../ca/store.ts";
import { defaultCodec } from "../ca/codec_dbr.ts";
import { WriteRefusedError } from "../ca/pv.ts";
import type { PvaServer, PvaServerOptions } from "../pva/server.ts";
import { startLoopbackPvaServer } from "./support/pva_fixture_pvs.ts";
import { PvaClient, PvaStatusError, searchUdp } from "../pva/client.ts";
import { beginMessage, Cmd, endMessage, HEADER_SIZE } from "../pva/messages.ts";
import { WireReader, WireWriter } from "../pva/wire.ts";
import { decodeSearchResponse, encodeSearch } from "../pva/search.ts";
import type { StructValue, UnionValue } from "../pva/pvdata.ts";
import { NT_NDARRAY } from "../pva/nt.ts";
import { ManualClock } from "../core/clock.ts";

async function setup(
  extra: Partial<PvaServerOptions> = {},
): Promise<{ store: PvStore; server: PvaServer }> {
  const store = new PvStore(defaultCodec);
  store.add({
    name: "E:d",
    type: "double",
    initial: 1.5,
    writable: true,
    units: "s",
    precision: 3,
    onWrite: (v) => {
      if (Number(v[0]) < 0) throw new WriteRefusedError("Invalid duration: must be >= 0");
    },
  });
  store.add({ name: "E:s", type: "string", initial: "READY" });
  store.add({ name: "E:img", type: "double", maxCount: 6 * 4 * 2 });
  const server = await startLoopbackPvaServer(store, extra);
  return { store, server };
}

/** Waits (bounded) until `check` holds, polling on the event loop. */
async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("pva e2e: UDP search finds hosted names only; unknown names stay silent", async () => {
  const { server } = await setup();
  try {
    const hit = await searchUdp(["E:zz", "E:d"], "127.0.0.1", server.udpPort);
    assert.ok(hit);
    assert.equal(hit.found, true);
    assert.deepEqual(hit.ids, [2]);
    assert.equal(hit.port, server.tcpPort);
    assert.deepEqual(hit.guid, server.guid);
    assert.equal(await searchUdp(["E:none"], "127.0.0.1", server.udpPort, 300), undefined);
  } finally {
    await server.close();
  }
});

Deno.test("pva e2e: GET_FIELD, GET, PUT (refusal text), TCP search on the connection", async () => {
  const { store, server } = await setup();
  const client = await PvaClient.connect("127.0.0.1", server.tcpPort);
  try {
    const type = await client.getField("E:d");
    assert.equal(type?.kind, "structure");
    assert.equal((type as { id: string }).id, "epics:nt/NTScalar:1.0");
    const { value } = await client.get("E:d");
    assert.equal(value.value, 1.5);
    assert.equal((value.display as StructValue).units, "s");
    assert.equal((value.display as StructValue).precision, 3);
    assert.equal((await client.get("E:s")).value.value, "READY");
    await client.put("E:d", { value: 2.25 }, { process: "true" });
    assert.equal(store.get("E:d")!.value()[0], 2.25);
    await assert.rejects(
      client.put("E:d", { value: -1 }),
      (e) => e instanceof PvaStatusError && e.message === "Invalid duration: must be >= 0",
    );
    await assert.rejects(client.put("E:s", { value: "x" }), /E:s is read-only/);
    await assert.rejects(client.get("E:missing"), /Refused to create Channel/);

    // SEARCH over the TCP connection (EPICS_PVA_NAME_SERVERS), big-endian as PVXS sends it.
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: server.tcpPort });
    const search = encodeSearch(7, 0x81, 0, [{ id: 42, name: "E:d" }]);
    await raw.write(search);
    const buf = new Uint8Array(4096);
    let got = new Uint8Array(0);
    let reply: ReturnType<typeof decodeSearchResponse> | undefined;
    while (reply === undefined) {
      const n = await raw.read(buf);
      assert.ok(n !== null);
      got = new Uint8Array([...got, ...buf.subarray(0, n)]);
      for (let at = 0; at + HEADER_SIZE <= got.length;) {
        const size = new DataView(got.buffer, at + 4, 4).getUint32(0, (got[at + 2] & 0x80) === 0);
        if (at + HEADER_SIZE + size > got.length) break;
        if (got[at + 3] === Cmd.SEARCH_RESPONSE) {
          reply = decodeSearchResponse(
            new WireReader(got.subarray(at + 8, at + 8 + size), (got[at + 2] & 0x80) === 0),
          );
        }
        at += HEADER_SIZE + (got[at + 2] & 1 ? 0 : size);
      }
    }
    raw.close();
    assert.equal(reply.sequence, 7);
    assert.deepEqual(reply.ids, [42]);
    assert.equal(reply.port, server.tcpPort);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("pva e2e: pipelined monitor sees every change in order with acks", async () => {
  const { store, server } = await setup();
  const client = await PvaClient.connect("127.0.0.1", server.tcpPort);
  try {
    const rec = store.get("E:d")!;
    const seen: number[] = [];
    const sub = await client.monitor("E:d", (u) => seen.push(u.value.value as number), {
      pipeline: true,
      queueSize: 4,
    });
    await until(() => seen.length === 1, "first update");
    for (let i = 1; i <= 20; i++) {
      rec.post(i);
      await until(() => seen.at(-1) === i, `update ${i}`);
    }
    assert.equal(seen[0], 1.5);
    assert.deepEqual(seen.slice(1), Array.from({ length: 20 }, (_, i) => i + 1));
    sub.close();
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("pva e2e: images as NTNDArray with dimensions, attributes and exact pixels", async () => {
  const { store, server } = await setup();
  const nd = server.serveImage("E:img", { width: 6, height: 4, images: 2, pixel: "uint" })!;
  const client = await PvaClient.connect("127.0.0.1", server.tcpPort);
  try {
    const type = await client.getField("E:img");
    assert.deepEqual(type, NT_NDARRAY);
    const frames: StructValue[] = [];
    const sub = await client.monitor("E:img", (u) => frames.push(structuredClone(u.value)));
    await until(() => frames.length === 1, "first image");
    const pixels = Uint32Array.from({ length: 48 }, (_, i) => 4294967295 - i * 1000);
    nd.setFrame({ uniqueId: 7, dataTime: 1700000000500, attributes: [] });
    store.get("E:img")!.post(pixels, { timestamp: 1700000000500 });
    await until(() => frames.length === 2, "second image");
    const f = frames[1];
    const union = f.value as UnionValue;
    assert.equal(union.index, 7); // uintValue
    assert.deepEqual(union.value, pixels);
    assert.deepEqual(
      (f.dimension as StructValue[]).map((d) => d.size),
      [6, 4, 2],
    );
    assert.equal(f.uniqueId, 7);
    assert.equal(f.uncompressedSize, 48n * 4n);
    assert.equal((f.codec as StructValue).name, "");
    assert.equal((f.attribute as StructValue[])[0].name, "ColorMode");
    sub.close();
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("pva e2e: a client vanishing mid-message closes only its own connection", async () => {
  const { server } = await setup();
  const good = await PvaClient.connect("127.0.0.1", server.tcpPort);
  try {
    const bad = await PvaClient.connect("127.0.0.1", server.tcpPort);
    const w = new WireWriter(true);
    const at = beginMessage(w, Cmd.CREATE_CHANNEL, false);
    w.u16(1).u32(1).string("E:d");
    endMessage(w, at);
    const bytes = w.toBytes();
    await bad.sendRaw(bytes.subarray(0, 11)); // header and half the body
    bad.close();
    await until(() => server.connectionCount() === 1, "server dropped the vanished client");
    assert.equal((await good.get("E:d")).value.value, 1.5);
  } finally {
    good.close();
    await server.close();
  }
});

Deno.test("PVA server closes a connection idle for longer than the timeout (manual clock)", async () => {
  const clock = new ManualClock();
  const { server } = await setup({ idleTimeout: 30, clock });
  const client = await PvaClient.connect("127.0.0.1", server.tcpPort);
  try {
    await until(() => server.connectionCount() === 1, "the connection");
    await clock.advance(20_000);
    // Traffic restarts the count: a GET's reply proves the server read the request.
    assert.equal((await client.get("E:d")).value.value, 1.5);
    await clock.advance(20_000); // 40 s since connecting, 20 s since the GET
    assert.equal(client.error, undefined);
    assert.equal(server.connectionCount(), 1);
    // Checked every timeout/4 (7.5 s): closed by the first check after 30 s of silence.
    await clock.advance(20_000);
    await client.done;
    assert.match(String(client.error), /closed by server/);
    await until(() => server.connectionCount() === 0, "the connection to go");
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("pva e2e: reusable-buffer decode gives exact large images in one recycled buffer", async () => {
  const { store, server } = await setup();
  const count = 256 * 128; // 128 KiB of uint32: a large message, read straight into its buffer
  store.add({ name: "E:big", type: "double", maxCount: count });
  server.serveImage("E:big", { width: 256, height: 128, images: 1, pixel: "uint" });
  const client = await PvaClient.connect("127.0.0.1", server.tcpPort, {
    recycleLargeMessages: true,
  });
  try {
    const seen: { first: number; last: number; sum: number; buffer: ArrayBufferLike }[] = [];
    const sub = await client.monitor("E:big", (u) => {
      // Views of the recycled buffer are valid during this call only: read them here.
      const px = (u.value.value as UnionValue).value as Uint32Array;
      let sum = 0;
      for (let i = 0; i < px.length; i++) sum = (sum + px[i]) >>> 0;
      seen.push({ first: px[0], last: px[px.length - 1], sum, buffer: px.buffer });
    });
    await until(() => seen.length === 1, "first image");
    const expected: number[] = [];
    for (let k = 1; k <= 3; k++) {
      const pixels = Uint32Array.from({ length: count }, (_, i) => (i * 2654435761 + k) >>> 0);
      let sum = 0;
      for (const p of pixels) sum = (sum + p) >>> 0;
      expected.push(sum);
      store.get("E:big")!.post(pixels);
      await until(() => seen.length === k + 1, `image ${k}`);
      assert.equal(seen[k].first, k);
      assert.equal(seen[k].last, pixels[count - 1]);
      assert.equal(seen[k].sum, sum);
    }
    // One buffer serves every large update once the first was handled.
    assert.equal(seen[2].buffer, seen[1].buffer);
    assert.equal(seen[3].buffer, seen[1].buffer);
    sub.close();
  } finally {
    client.close();
    await server.close();
  }
});
