import assert from "node:assert/strict";
import { startCaServer } from "../ca/server.ts";
import {
  CMD,
  createChanRequest,
  datagramMessages,
  DBE,
  encodeHeader,
  eventAddRequest,
  readNotifyRequest,
  searchRequest,
  versionMessage,
} from "../ca/messages.ts";
import { concat } from "./support/bytes.ts";
import type { BeaconClock } from "../ca/beacon.ts";
import { ECA } from "../ca/codec.ts";
import { closeRaw, connectRaw } from "./support/raw_client.ts";
import { testServerEnv } from "./support/epics_env.ts";

/**
 * Sends a search datagram to `to` (default 127.0.0.1) and returns the reply and its source (or
 * undefined after `timeoutMs`).
 */
async function searchFrom(udpPort: number, names: string[], timeoutMs = 2000, to = "127.0.0.1") {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const request = concat(versionMessage(1, 42), ...names.map((n, i) => searchRequest(n, i + 1)));
    await socket.send(request, { transport: "udp", hostname: to, port: udpPort });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((
      r,
    ) => (timer = setTimeout(() => r(undefined), timeoutMs)));
    const reply = await Promise.race([socket.receive(), timeout]);
    clearTimeout(timer);
    return reply && { data: reply[0], from: reply[1] as Deno.NetAddr };
  } finally {
    socket.close();
  }
}

/**
 * Sends one search datagram and returns the [command, cid] of every reply message, sorted, once
 * `expected` SEARCH replies arrived (the search worker answers the names it knows at once and
 * may leave names it does not know yet, e.g. just added, to the main thread's own datagram), or
 * what arrived after `timeoutMs`.
 */
async function searchReplies(udpPort: number, names: string[], expected: number, timeoutMs = 2000) {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const got: [number, number][] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const request = concat(versionMessage(1, 42), ...names.map((n, i) => searchRequest(n, i + 1)));
    await socket.send(request, { transport: "udp", hostname: "127.0.0.1", port: udpPort });
    const timeout = new Promise<undefined>((
      r,
    ) => (timer = setTimeout(() => r(undefined), timeoutMs)));
    while (got.filter(([cmd]) => cmd === CMD.SEARCH).length < expected) {
      const reply = await Promise.race([socket.receive(), timeout]);
      if (!reply) break;
      for (const m of datagramMessages(reply[0])) {
        if (m.header.cmd === CMD.VERSION) assert.equal(m.header.p1, 42);
        got.push([m.header.cmd, m.header.p2]);
      }
    }
  } finally {
    clearTimeout(timer);
    socket.close();
  }
  const unique = new Map(got.map((g) => [g.join(), g]));
  return [...unique.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** Sends a search datagram and returns the reply (or undefined after `timeoutMs`). */
async function search(udpPort: number, names: string[], timeoutMs = 2000) {
  return (await searchFrom(udpPort, names, timeoutMs))?.data;
}

for (const searchWorker of [true, false]) {
  Deno.test(`server: UDP search over a real socket, port 0 gives distinct UDP/TCP ports (search worker ${searchWorker})`, async () => {
    const server = await startCaServer({ env: testServerEnv(), port: 0, searchWorker });
    try {
      server.add({ name: "S:A", type: "double" });
      server.add({ name: "S:B", type: "long" });
      server.add({ name: "S:C", type: "long" });
      server.remove("S:C");
      assert.ok(server.udpPort > 0 && server.tcpPort > 0);
      assert.deepStrictEqual(await searchReplies(server.udpPort, ["S:A", "nope", "S:B"], 2), [
        [CMD.VERSION, 0],
        [CMD.SEARCH, 1],
        [CMD.SEARCH, 3],
      ]);
      const reply = await search(server.udpPort, ["S:A"]);
      assert.ok(reply);
      assert.equal([...datagramMessages(reply)][1].header.type, server.tcpPort);
      // Field channels are resolved by the main thread (the worker knows record names only).
      assert.deepStrictEqual(await searchReplies(server.udpPort, ["nope", "S:B.EGU"], 1), [
        [CMD.VERSION, 0],
        [CMD.SEARCH, 2],
      ]);
      assert.equal(await search(server.udpPort, ["nope"], 200), undefined);
      assert.equal(await search(server.udpPort, ["S:C"], 200), undefined, "removed PV not found");
      assert.deepStrictEqual(server.names(), ["S:A", "S:B"]);
      assert.throws(() => server.add({ name: "S:A", type: "double" }), /already exists/);
    } finally {
      await server.close();
    }
  });
}

Deno.test("server: two servers share a UDP port; TCP falls back when taken", async () => {
  const first = await startCaServer({ env: testServerEnv(), port: 0 });
  const second = await startCaServer({ env: testServerEnv(), port: first.udpPort });
  try {
    assert.equal(second.udpPort, first.udpPort);
    assert.notEqual(second.tcpPort, first.tcpPort);
    second.add({ name: "TWO", type: "double" });
    const client = await connectRaw(second.tcpPort);
    assert.ok((await client.createChannel("TWO", 1)) > 0);
    await closeRaw(client);
  } finally {
    await second.close();
    await first.close();
  }
});

Deno.test("server: env port and options override; ignore list drops searches", async () => {
  const server = await startCaServer({
    env: { ...testServerEnv(), EPICS_CAS_IGNORE_ADDR_LIST: "127.0.0.1" },
    port: 0,
  });
  try {
    server.add({ name: "IGN", type: "double" });
    assert.equal(await search(server.udpPort, ["IGN"], 300), undefined);
  } finally {
    await server.close();
  }
});

Deno.test("server: beacons go only to the configured loopback address with injected clock", async () => {
  const sink = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const sinkPort = (sink.addr as Deno.NetAddr).port;
  const timers: { fn: () => void; ms: number; cleared: boolean }[] = [];
  const clock: BeaconClock = {
    setTimeout: (fn, ms) => timers.push({ fn, ms, cleared: false }) - 1,
    clearTimeout: (h) => void (timers[h as number].cleared = true),
  };
  const server = await startCaServer({
    env: testServerEnv(),
    port: 0,
    beaconAddresses: [`127.0.0.1:${sinkPort}`],
    autoBeacon: false,
    beaconPeriod: 0.05,
    clock,
  });
  try {
    const [first] = await sink.receive();
    timers[timers.length - 1].fn();
    const [second] = await sink.receive();
    assert.deepStrictEqual(
      [...datagramMessages(first)].map((m) => m.header),
      [{ cmd: CMD.RSRV_IS_UP, size: 0, type: 13, count: server.tcpPort, p1: 0, p2: 0 }],
    );
    assert.equal([...datagramMessages(second)][0].header.p1, 1);
    assert.deepStrictEqual(timers.map((t) => t.ms), [20, 40]);
  } finally {
    await server.close();
    sink.close();
  }
  assert.ok(timers[timers.length - 1].cleared, "beacon timer stopped on close");
});

Deno.test("server: client vanishing mid-array leaves the server serving", async () => {
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  try {
    server.add({ name: "BIG", type: "long", writable: true, maxCount: 1_000_000 });
    const a = await connectRaw(server.tcpPort);
    const sid = await a.createChannel("BIG", 1);
    const header = encodeHeader({
      cmd: CMD.WRITE,
      size: 4_000_000,
      type: 5,
      count: 1_000_000,
      p1: sid,
      p2: 1,
    });
    await a.send(header, new Uint8Array(1_000_000));
    await closeRaw(a);
    const b = await connectRaw(server.tcpPort);
    const sidB = await b.createChannel("BIG", 2);
    await b.send(readNotifyRequest(5, 0, sidB, 9));
    const reply = await b.waitFor((m) => m.header.cmd === CMD.READ_NOTIFY);
    assert.deepStrictEqual([reply.header.p1, reply.header.count], [ECA.NORMAL, 0]);
    await closeRaw(b);
  } finally {
    await server.close();
  }
});

Deno.test("server: oversized request closes only that circuit", async () => {
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  try {
    server.add({ name: "X", type: "double" });
    const bad = await connectRaw(server.tcpPort);
    const good = await connectRaw(server.tcpPort);
    await bad.send(
      encodeHeader({ cmd: CMD.CLIENT_NAME, size: 0xfffffff8, type: 0, count: 0, p1: 0, p2: 0 }),
    );
    await bad.done;
    assert.ok((await good.createChannel("X", 1)) > 0);
    await closeRaw(bad);
    await closeRaw(good);
  } finally {
    await server.close();
  }
});

Deno.test("server: removing a PV sends SERVER_DISCONN over TCP", async () => {
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  try {
    server.add({ name: "GONE", type: "double" });
    const c = await connectRaw(server.tcpPort);
    await c.createChannel("GONE", 77);
    server.remove("GONE");
    const m = await c.waitFor((m) => m.header.cmd === CMD.SERVER_DISCONN);
    assert.equal(m.header.p1, 77);
    assert.equal(server.get("GONE"), undefined);
    await closeRaw(c);
  } finally {
    await server.close();
  }
});

Deno.test("server: tight posting loop with a stalled subscriber stays reachable and bounded", async () => {
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  try {
    const pv = server.add({ name: "FAST", type: "long", maxCount: 262_144 }); // 1 MiB
    // A client that subscribes and never reads (the first SID of a circuit is 1).
    const stalled = await Deno.connect({ hostname: "127.0.0.1", port: server.tcpPort });
    await stalled.write(
      concat(
        versionMessage(0, 0),
        createChanRequest("FAST", 1),
        eventAddRequest(5, 0, 1, 1, DBE.VALUE),
      ),
    );
    const reader = await connectRaw(server.tcpPort);
    const sidR = await reader.createChannel("FAST", 2);
    await reader.send(eventAddRequest(5, 0, sidR, 5, DBE.VALUE));
    const images = [new Int32Array(262_144), new Int32Array(262_144)];
    const rssBefore = Deno.memoryUsage().rss;
    let searchesAnswered = 0;
    for (let i = 1; i <= 400; i++) {
      // Alternate two buffers: the one not currently posted may be refilled.
      const next = images[i % 2];
      next[0] = i;
      pv.post(next);
      if (i % 50 === 0) {
        // New name searches and connections are served while posting.
        if (await search(server.udpPort, ["FAST"], 2000)) searchesAnswered++;
        await new Promise((r) => setTimeout(r, 0));
      }
    }
    const rssAfter = Deno.memoryUsage().rss;
    assert.equal(searchesAnswered, 8);
    const last = await reader.waitFor((m) => {
      if (m.header.cmd !== CMD.EVENT_ADD || m.payload.length < 4) return false;
      return new DataView(m.payload.buffer, m.payload.byteOffset).getInt32(0) === 400;
    }, 30_000);
    assert.equal(last.header.count, 262_144);
    assert.ok(
      rssAfter - rssBefore < 200 * 1024 * 1024,
      `RSS grew ${(rssAfter - rssBefore) / 1e6} MB for 400 MB posted`,
    );
    stalled.close();
    await closeRaw(reader);
  } finally {
    await server.close();
  }
});

Deno.test("server: client vanishing while a large reply is being sent", async () => {
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  try {
    const pv = server.add({ name: "HUGE", type: "double", maxCount: 2_500_000 }); // 20 MB
    pv.post(new Float64Array(2_500_000));
    for (let i = 0; i < 3; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: server.tcpPort });
      await c.write(concat(versionMessage(0, 0), createChanRequest("HUGE", 1)));
      await c.write(concat(readNotifyRequest(6, 0, 1, 1), readNotifyRequest(6, 0, 1, 2)));
      const buffer = new Uint8Array(4096);
      await c.read(buffer);
      c.close();
    }
    const b = await connectRaw(server.tcpPort);
    const sid = await b.createChannel("HUGE", 2);
    await b.send(readNotifyRequest(6, 10, sid, 9));
    const reply = await b.waitFor((m) => m.header.cmd === CMD.READ_NOTIFY);
    assert.deepStrictEqual([reply.header.p1, reply.header.count], [ECA.NORMAL, 10]);
    await closeRaw(b);
  } finally {
    await server.close();
  }
});

Deno.test("server: a specific interface also answers searches sent to its broadcast address", async () => {
  // Loopback stands in for a LAN interface: 127.0.0.2/24, "broadcast" address 127.0.0.255. The
  // datagram is an ordinary loopback unicast to 127.0.0.255; it must reach the extra socket, and
  // the reply must come from the interface's own address.
  const server = await startCaServer({
    env: { ...testServerEnv(), EPICS_CAS_INTF_ADDR_LIST: "127.0.0.2" },
    port: 0,
    networkInterfaces: () => [{ family: "IPv4", address: "127.0.0.2", netmask: "255.255.255.0" }],
  });
  try {
    server.add({ name: "BC:A", type: "double" });
    const viaBroadcast = await searchFrom(server.udpPort, ["BC:A"], 2000, "127.0.0.255");
    assert.ok(viaBroadcast, "answered on the broadcast address");
    assert.equal(viaBroadcast.from.hostname, "127.0.0.2", "reply sent from the interface address");
    assert.equal(viaBroadcast.from.port, server.udpPort);
    const messages = [...datagramMessages(viaBroadcast.data)];
    assert.deepStrictEqual(messages.map((m) => m.header.cmd), [CMD.VERSION, CMD.SEARCH]);
    assert.equal(messages[1].header.type, server.tcpPort);
    const direct = await searchFrom(server.udpPort, ["BC:A"], 2000, "127.0.0.2");
    assert.ok(direct, "unicast searches still answered");
  } finally {
    await server.close();
  }
});
