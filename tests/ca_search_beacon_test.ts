import assert from "node:assert/strict";
import { answerSearchDatagram, MAX_UDP_REPLY } from "../ca/search.ts";
import { type BeaconClock, beaconDelay, beaconTimes, startBeacons } from "../ca/beacon.ts";
import {
  beaconMessage,
  CMD,
  datagramMessages,
  DO_REPLY,
  encodeMessage,
  searchReplyUdp,
  searchRequest,
  versionMessage,
} from "../ca/messages.ts";
import { concat } from "./support/bytes.ts";
import {
  broadcastAddresses,
  broadcastSearchBindings,
  CaEnvError,
  parseHostPortList,
  readServerEnv,
} from "../ca/env.ts";
import { startCaServer } from "../ca/server.ts";
import { readClientEnv } from "../ca/client_env.ts";

const served = new Set(["A", "B:1", "C"]);
const has = (name: string) => served.has(name);

Deno.test("search: several names per datagram, unknown names get no reply", () => {
  const request = concat(
    versionMessage(1, 77),
    searchRequest("A", 1),
    searchRequest("nope", 2),
    searchRequest("B:1", 3, DO_REPLY),
  );
  const replies = answerSearchDatagram(request, 5064, has);
  assert.equal(replies.length, 1);
  assert.deepStrictEqual(
    replies[0],
    concat(versionMessage(1, 77), searchReplyUdp(5064, 1), searchReplyUdp(5064, 3)),
  );
});

Deno.test("search: nothing found (even with DO_REPLY) → no datagram", () => {
  const request = concat(versionMessage(1, 1), searchRequest("nope", 2, DO_REPLY));
  assert.deepStrictEqual(answerSearchDatagram(request, 5064, has), []);
});

Deno.test("search: old client without VERSION gets no VERSION prefix", () => {
  const old = encodeMessage(
    { cmd: CMD.SEARCH, type: 5, count: 10, p1: 4, p2: 4 },
    new TextEncoder().encode("C\0"),
  );
  assert.deepStrictEqual(answerSearchDatagram(old, 5064, has), [searchReplyUdp(5064, 4)]);
});

Deno.test("search: other commands end parsing, truncated tail ignored", () => {
  const request = concat(
    versionMessage(1, 5),
    searchRequest("A", 1),
    encodeMessage({ cmd: CMD.EVENT_ADD, type: 0, p1: 0, p2: 0 }),
    searchRequest("C", 2),
  );
  const replies = answerSearchDatagram(request, 1000, has);
  assert.equal([...datagramMessages(replies[0])].length, 2);
  const truncated = concat(versionMessage(1, 5), searchRequest("A", 1)).subarray(0, 30);
  assert.deepStrictEqual(answerSearchDatagram(truncated, 1000, has), []);
});

Deno.test("search: many replies are split into datagrams of at most 1024 bytes", () => {
  const names = Array.from({ length: 100 }, (_, i) => `N${i}`);
  const request = concat(versionMessage(1, 9), ...names.map((n, i) => searchRequest(n, i)));
  const replies = answerSearchDatagram(request, 1000, () => true);
  assert.ok(replies.length > 1);
  let count = 0;
  for (const d of replies) {
    assert.ok(d.length <= MAX_UDP_REPLY);
    const messages = [...datagramMessages(d)];
    assert.equal(messages[0].header.cmd, CMD.VERSION);
    assert.equal(messages[0].header.p1, 9);
    count += messages.length - 1;
  }
  assert.equal(count, 100);
});

Deno.test("beacon: fast start then back-off to the period", () => {
  assert.deepStrictEqual(
    [0, 1, 2, 3].map((r) => beaconDelay(r, 15)),
    [0.02, 0.04, 0.08, 0.16],
  );
  assert.equal(beaconDelay(9, 15), 10.24);
  assert.equal(beaconDelay(10, 15), 15);
  assert.equal(beaconDelay(100, 15), 15);
  const times = beaconTimes(4, 15);
  assert.deepStrictEqual(times.map((t) => Math.round(t * 1000)), [0, 20, 60, 140]);
});

Deno.test("beacon: injected clock drives rounds with increasing sequence", () => {
  const timers: { fn: () => void; ms: number }[] = [];
  const clock: BeaconClock = {
    setTimeout: (fn, ms) => timers.push({ fn, ms }),
    clearTimeout: () => {},
  };
  const sent: { to: string; bytes: Uint8Array }[] = [];
  const stop = startBeacons(
    5064,
    [{ hostname: "127.0.0.1", port: 15999 }],
    1,
    (to, bytes) => void sent.push({ to: `${to.hostname}:${to.port}`, bytes }),
    clock,
  );
  assert.equal(sent.length, 1);
  for (let i = 0; i < 8; i++) timers[timers.length - 1].fn();
  stop();
  assert.equal(sent.length, 9);
  assert.deepStrictEqual(sent[0].bytes, beaconMessage(5064, 0));
  assert.deepStrictEqual(sent[8].bytes, beaconMessage(5064, 8));
  assert.equal(sent[0].to, "127.0.0.1:15999");
  assert.deepStrictEqual(timers.map((t) => t.ms), [20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
});

Deno.test("env: server variables and defaults", () => {
  const config = readServerEnv({
    EPICS_CA_SERVER_PORT: "6000",
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1 bogus",
    EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1 10.0.0.255:7000",
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "no",
    EPICS_CAS_BEACON_PERIOD: "-1",
    EPICS_CA_REPEATER_PORT: "6001",
    EPICS_CAS_IGNORE_ADDR_LIST: "10.1.1.1",
  });
  assert.deepStrictEqual(config, {
    serverPort: 6000,
    interfaces: ["127.0.0.1"],
    beaconAddresses: [{ hostname: "127.0.0.1", port: 6001 }, {
      hostname: "10.0.0.255",
      port: 7000,
    }],
    autoBeacon: false,
    beaconPort: 6001,
    beaconPeriod: 15,
    ignoreAddresses: ["10.1.1.1"],
  });
  const defaults = readServerEnv({ EPICS_CAS_SERVER_PORT: "7000", EPICS_CA_SERVER_PORT: "6000" });
  assert.equal(defaults.serverPort, 7000);
  assert.equal(defaults.autoBeacon, true);
  assert.equal(defaults.beaconPort, 5065);
  assert.equal(readServerEnv({}).serverPort, 5064);
  assert.equal(readServerEnv({ EPICS_CAS_BEACON_PERIOD: "2.5" }).beaconPeriod, 2.5);
});

Deno.test("env: one host:port parser; beacon destinations refuse an invalid entry by name", async () => {
  assert.deepStrictEqual(parseHostPortList(["ioc:7000", "10.0.0.1", " 127.0.0.1:6000 "], 5065), [
    { hostname: "ioc", port: 7000 },
    { hostname: "10.0.0.1", port: 5065 },
    { hostname: "127.0.0.1", port: 6000 },
  ]);
  // Lenient (client address lists): bad entries are skipped.
  assert.deepStrictEqual(parseHostPortList("a:0 b:99999 c:x :5 d:1:2 e", 5064), [
    { hostname: "e", port: 5064 },
  ]);
  for (const entry of ["ioc:99999", "ioc:abc", "ioc:", ":6000", "a:1:2"]) {
    assert.throws(
      () => parseHostPortList([entry], 5065, { refuseInvalidAs: "beaconAddresses" }),
      (error: Error) =>
        error instanceof CaEnvError && error.message.includes("beaconAddresses") &&
        error.message.includes(JSON.stringify(entry)),
      entry,
    );
  }
  for (const list of ["127.0.0.1 10.0.0.255:99999", "127.0.0.1 x:", "127.0.0.1 :5065"]) {
    assert.throws(
      () => readServerEnv({ EPICS_CAS_BEACON_ADDR_LIST: list }),
      /EPICS_CAS_BEACON_ADDR_LIST: invalid entry .*expected a host/,
      list,
    );
  }
  // Host names are accepted, as EPICS's servers accept them.
  assert.deepEqual(
    readServerEnv({ EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1 beamline-gw:7000" })
      .beaconAddresses,
    [{ hostname: "127.0.0.1", port: 5065 }, {
      hostname: "beamline-gw",
      port: 7000,
    }],
  );
  // The server refuses to start, before binding anything (no socket left open: test sanitizers).
  await assert.rejects(
    startCaServer({
      port: 0,
      interfaces: ["127.0.0.1"],
      autoBeacon: false,
      beaconAddresses: ["127.0.0.1:99999"],
      tuneMalloc: false,
    }),
    /beaconAddresses: invalid entry "127.0.0.1:99999"/,
  );
});

Deno.test("env: client address list and YES/NO flags share the server's parsers", () => {
  const nics = () =>
    [
      { family: "IPv4" as const, address: "127.0.0.1", netmask: "255.0.0.0" },
      { family: "IPv4" as const, address: "10.0.0.5", netmask: "255.255.255.0" },
    ] as Deno.NetworkInterfaceInfo[];
  const config = readClientEnv({
    EPICS_CA_SERVER_PORT: "6000",
    EPICS_CA_ADDR_LIST: "127.0.0.1 ioc-host:7000 10.0.0.9:99999 :5",
    EPICS_CA_AUTO_ADDR_LIST: " yes ",
    EPICS_CA_AUTO_ARRAY_BYTES: "no",
    EPICS_CA_MAX_ARRAY_BYTES: "100000",
  }, nics);
  assert.deepStrictEqual(config.addresses, [
    { hostname: "127.0.0.1", port: 6000 },
    { hostname: "ioc-host", port: 7000 },
    { hostname: "10.0.0.255", port: 6000 },
  ]);
  assert.equal(config.maxArrayBytes, 100000);
  const off = readClientEnv({ EPICS_CA_AUTO_ADDR_LIST: "NO", EPICS_CA_MAX_ARRAY_BYTES: "1" }, nics);
  assert.deepStrictEqual(off.addresses, []);
  assert.equal(off.maxArrayBytes, 256 * 1024 * 1024, "AUTO_ARRAY_BYTES unset: the default");
});

/** Interfaces of a multi-homed detector PC, as `Deno.networkInterfaces()` lists them. */
const INTERFACES = [
  { family: "IPv4" as const, address: "127.0.0.1", netmask: "255.0.0.0" },
  { family: "IPv4" as const, address: "192.168.1.17", netmask: "255.255.255.0" },
  { family: "IPv4" as const, address: "192.168.1.18", netmask: "255.255.255.0" },
  { family: "IPv4" as const, address: "10.2.3.4", netmask: "255.255.0.0" },
  { family: "IPv6" as const, address: "::1", netmask: "ffff::" },
];

Deno.test("env: automatic beacon list = broadcast of non-loopback IPv4 interfaces", () => {
  assert.deepStrictEqual(broadcastAddresses(INTERFACES), ["192.168.1.255", "10.2.255.255"]);
  assert.deepStrictEqual(broadcastAddresses(INTERFACES, ["10.2.3.4"]), ["10.2.255.255"]);
});

Deno.test("env: specific interfaces also get a search socket on their broadcast address", () => {
  assert.deepStrictEqual(
    broadcastSearchBindings(["192.168.1.17", "192.168.1.18", "127.0.0.1"], INTERFACES),
    [
      { broadcast: "192.168.1.255", host: "192.168.1.17" }, // once per broadcast address
      { broadcast: "127.255.255.255", host: "127.0.0.1" },
    ],
  );
  assert.deepStrictEqual(broadcastSearchBindings(["0.0.0.0"], INTERFACES), [], "wildcard sees all");
  assert.deepStrictEqual(broadcastSearchBindings(["172.16.0.1"], INTERFACES), [], "unknown");
  const pointToPoint = [{
    family: "IPv4" as const,
    address: "10.9.9.9",
    netmask: "255.255.255.255",
  }];
  assert.deepStrictEqual(broadcastSearchBindings(["10.9.9.9"], pointToPoint), [], "/32: none");
});

Deno.test("search: answerSearchDatagram runs from its source text alone (as in the search worker)", () => {
  const standalone = new Function(
    `return (${answerSearchDatagram.toString()});`,
  )() as typeof answerSearchDatagram;
  const request = concat(
    versionMessage(1, 77),
    searchRequest("A", 1),
    searchRequest("nope", 2),
    searchRequest("B:1", 3, DO_REPLY),
  );
  assert.deepStrictEqual(
    standalone(request, 5064, has),
    [concat(versionMessage(1, 77), searchReplyUdp(5064, 1), searchReplyUdp(5064, 3))],
  );
});
