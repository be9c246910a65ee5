/**
 * Records the pvAccess bytes exchanged by the real PVXS tools into `tests/fixtures/pva/*.json`
 * (for CI, which cannot build PVXS). Needs a local PVXS build (docs/pva.md); nothing here builds
 * or contains PVXS code, the tools are only run.
 *
 * Two peers are recorded, each through a recording TCP proxy (and a UDP relay for searches):
 *
 * - `diss-*`: PVXS clients (`pvxget`, `pvxinfo`, `pvxput`, `pvxmonitor`) against our server,
 *   so the fixtures hold what PVXS clients send (our server's decoder must accept it) and what
 *   our server answered (accepted by PVXS: the tools exited 0 and printed the values).
 * - `pvxs-*`: the same tools against PVXS's own `softIocPVX`, so the fixtures hold what a PVXS
 *   server sends (our client's decoder must accept it).
 *
 * Everything stays on 127.0.0.1: searches go over TCP (`EPICS_PVA_NAME_SERVERS`) or unicast UDP
 * to the relay's port; no multicast, no broadcast, automatic address lists off.
 *
 * Usage: `PVXS_BIN=/path/to/pvxs/bin/linux-x86_64 ./node_modules/.bin/deno run -A
 * scripts/pva_record_fixtures.ts`
 *
 * @module
 */

import {
  FIXTURE_IMAGE,
  fixtureStore,
  startLoopbackPvaServer,
} from "../tests/support/pva_fixture_pvs.ts";

const BIN = Deno.env.get("PVXS_BIN") ?? "/work/ref/pvxs/bin/linux-x86_64";
const OUT = new URL("../tests/fixtures/pva/", import.meta.url).pathname;

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** Splits a recorded TCP byte stream into whole messages (header + payload). */
function splitMessages(stream: Uint8Array): string[] {
  const out: string[] = [];
  let at = 0;
  while (at + 8 <= stream.length) {
    const flags = stream[at + 2];
    const size = new DataView(stream.buffer, stream.byteOffset + at + 4, 4)
      .getUint32(0, (flags & 0x80) === 0);
    const len = flags & 0x01 ? 8 : 8 + size;
    if (at + len > stream.length) break;
    out.push(hex(stream.subarray(at, at + len)));
    at += len;
  }
  return out;
}

interface Recording {
  /** Client-to-server messages, in order. */
  client: string[];
  /** Server-to-client messages, in order. */
  server: string[];
}

/**
 * Copies `from` to `to`, recording the bytes. With `proxyPort`, SEARCH_RESPONSE messages get that
 * port, so that the client creates its channels through the proxy (on the same connection).
 */
async function pump(from: Deno.Conn, to: Deno.Conn, proxyPort?: number): Promise<Uint8Array> {
  const got: Uint8Array[] = [];
  const buf = new Uint8Array(1 << 20);
  let nextHeader = 0; // offset of the next message header relative to this chunk
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      while (proxyPort !== undefined && nextHeader + 8 <= n) {
        const at = nextHeader;
        const flags = buf[at + 2];
        const little = (flags & 0x80) === 0;
        const view = new DataView(buf.buffer, at);
        const size = flags & 1 ? 0 : view.getUint32(4, little);
        if (buf[at + 3] === 0x04 && !(flags & 1) && at + 8 + 34 <= n) {
          view.setUint16(8 + 32, proxyPort, little);
        }
        nextHeader = at + 8 + size;
      }
      nextHeader -= n;
      got.push(buf.slice(0, n));
      let at = 0;
      while (at < n) at += await to.write(buf.subarray(at, n));
    }
  } catch {
    // Closed.
  }
  try {
    to.close();
  } catch {
    // Closed.
  }
  const all = new Uint8Array(got.reduce((n, g) => n + g.length, 0));
  let o = 0;
  for (const g of got) {
    all.set(g, o);
    o += g.length;
  }
  return all;
}

/** A TCP proxy to `target` recording both directions of its first connection. */
function tcpRecorder(target: number): { port: number; stop(): Promise<Recording> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const sessions: Promise<Uint8Array[]>[] = [];
  const accepting = (async () => {
    for (;;) {
      let down: Deno.Conn;
      try {
        down = await listener.accept();
      } catch {
        return;
      }
      const up = await Deno.connect({ hostname: "127.0.0.1", port: target });
      sessions.push(Promise.all([pump(down, up), pump(up, down, port)]));
    }
  })();
  return {
    port,
    async stop() {
      listener.close();
      await accepting;
      if (sessions.length === 0) return { client: [], server: [] };
      const [c2s, s2c] = await sessions[0];
      return { client: splitMessages(c2s), server: splitMessages(s2c) };
    },
  };
}

/** A UDP relay to `target` recording datagrams both ways. */
function udpRecorder(target: number) {
  const front = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const back = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const client: string[] = [];
  const server: string[] = [];
  let peer: Deno.NetAddr | undefined;
  let running = true;
  void (async () => {
    while (running) {
      try {
        const [d, from] = await front.receive();
        peer = from as Deno.NetAddr;
        client.push(hex(d));
        // Rewrite nothing: the search carries the client's reply port; replies go straight to
        // it, so the relay also listens on the client side via `back` only for completeness.
        await back.send(d, { transport: "udp", hostname: "127.0.0.1", port: target });
      } catch {
        return;
      }
    }
  })();
  return {
    port: (front.addr as Deno.NetAddr).port,
    client,
    server,
    peer: () => peer,
    close() {
      running = false;
      front.close();
      back.close();
    },
  };
}

async function run(tool: string, args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(`${BIN}/${tool}`, {
    args,
    env: {
      PATH: "/usr/bin:/bin",
      EPICS_PVA_ADDR_LIST: "",
      EPICS_PVA_AUTO_ADDR_LIST: "NO",
      EPICS_PVA_BROADCAST_PORT: "15076",
      ...env,
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

async function save(name: string, data: unknown) {
  await Deno.mkdir(OUT, { recursive: true });
  await Deno.writeTextFile(`${OUT}${name}.json`, JSON.stringify(data, null, 1) + "\n");
  console.log(`wrote ${name}.json`);
}

type Case = { name: string; tool: string; args: string[]; timeout?: number };

async function recordCases(peer: string, tcpPort: number, cases: Case[]) {
  for (const c of cases) {
    const rec = tcpRecorder(tcpPort);
    const args = c.timeout !== undefined ? ["-w", String(c.timeout), ...c.args] : c.args;
    let result;
    if (c.tool === "pvxmonitor") {
      const child = new Deno.Command(`${BIN}/${c.tool}`, {
        args: c.args,
        env: {
          PATH: "/usr/bin:/bin",
          EPICS_PVA_ADDR_LIST: "",
          EPICS_PVA_AUTO_ADDR_LIST: "NO",
          EPICS_PVA_NAME_SERVERS: `127.0.0.1:${rec.port}`,
        },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await new Promise((r) => setTimeout(r, 1500));
      child.kill("SIGINT");
      const out = await child.output();
      result = { code: 0, text: new TextDecoder().decode(out.stdout) };
    } else {
      result = await run(c.tool, args, { EPICS_PVA_NAME_SERVERS: `127.0.0.1:${rec.port}` });
    }
    const messages = await rec.stop();
    await save(`${peer}-${c.name}`, {
      peer,
      tool: c.tool,
      args: c.args,
      exitCode: result.code,
      output: result.text.split("\n").slice(0, 40),
      ...messages,
    });
  }
}

const CASES: Case[] = [
  { name: "get-double", tool: "pvxget", args: ["R:d"] },
  { name: "get-array", tool: "pvxget", args: ["R:arr"] },
  { name: "get-string", tool: "pvxget", args: ["R:s"] },
  { name: "get-enum", tool: "pvxget", args: ["R:e"] },
  { name: "info-double", tool: "pvxinfo", args: ["R:d"] },
  { name: "put-double", tool: "pvxput", args: ["R:d", "2.25"] },
  { name: "put-refused", tool: "pvxput", args: ["R:d", "--", "-1"] },
  {
    name: "monitor-pipeline",
    tool: "pvxmonitor",
    args: ["-r", "record[pipeline=true,queueSize=4]", "R:l"],
  },
];

// ---- our server ---------------------------------------------------------------------------------
const store = fixtureStore();
const counter = store.get("R:l")!;
const server = await startLoopbackPvaServer(store);
const nd = server.serveImage("R:img", { width: 4, height: 3, images: 1, pixel: "ushort" })!;
nd.setFrame({ uniqueId: 42, dataTime: 1700000000005, attributes: [] });
store.get("R:img")!.post(FIXTURE_IMAGE);
let n = 0;
const ticker = setInterval(() => counter.post(++n), 100);

await recordCases("diss", server.tcpPort, [
  ...CASES,
  { name: "get-ndarray", tool: "pvxget", args: ["R:img"] },
]);

// UDP search (unicast to a relay port only we bind).
const relay = udpRecorder(server.udpPort);
const udp = await run("pvxget", ["-w", "3", "R:d"], {
  EPICS_PVA_ADDR_LIST: `127.0.0.1:${relay.port}`,
});
relay.close();
await save("diss-search-udp", {
  peer: "diss",
  tool: "pvxget",
  args: ["R:d"],
  exitCode: udp.code,
  output: udp.text.split("\n").slice(0, 20),
  client: relay.client,
});
clearInterval(ticker);
await server.close();

// ---- PVXS's own server (softIocPVX) ------------------------------------------------------------
const dir = await Deno.makeTempDir({ prefix: "pva_fixtures_" });
await Deno.writeTextFile(
  `${dir}/r.db`,
  `record(ai, "R:d") { field(VAL, "1.5") field(EGU, "s") field(PREC, "3") field(PINI, "YES") }
record(calc, "R:l") { field(SCAN, ".1 second") field(CALC, "A+1") field(INPA, "R:l") }
record(stringin, "R:s") { field(VAL, "READY") field(PINI, "YES") }
record(waveform, "R:arr") { field(FTVL, "DOUBLE") field(NELM, "5") }
record(mbbo, "R:e") { field(ZRST, "Off") field(ONST, "On") field(VAL, "1") field(PINI, "YES") }
`,
);
const iocTcp = 15000 + Math.floor(Math.random() * 1000);
const ioc = new Deno.Command(`${BIN}/softIocPVX`, {
  args: ["-d", `${dir}/r.db`],
  env: {
    PATH: "/usr/bin:/bin",
    EPICS_PVAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_PVAS_SERVER_PORT: String(iocTcp),
    EPICS_PVAS_BROADCAST_PORT: String(iocTcp + 1),
    EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_PVAS_BEACON_ADDR_LIST: "127.0.0.1",
    EPICS_PVA_ADDR_LIST: "",
    EPICS_PVA_AUTO_ADDR_LIST: "NO",
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_SERVER_PORT: String(iocTcp + 2),
    EPICS_CA_SERVER_PORT: String(iocTcp + 2),
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1",
    EPICS_CA_REPEATER_PORT: String(iocTcp + 3),
  },
  clearEnv: true,
  stdin: "piped",
  stdout: "null",
  stderr: "null",
}).spawn();
await new Promise((r) => setTimeout(r, 3000));
try {
  await recordCases("pvxs", iocTcp, CASES);
} finally {
  ioc.kill("SIGTERM");
  await ioc.status;
  await Deno.remove(dir, { recursive: true });
}
