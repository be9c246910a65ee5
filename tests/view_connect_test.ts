/**
 * `diss-ioc view --connect` end to end against our CA server serving IOC-like PVs: channel
 * discovery, frames, nobody serving the prefix, and the IOC restarting under the viewer.
 */

import assert from "node:assert/strict";
import type { CaServer, PvHandle } from "../ca/pv.ts";
import { startCaServer } from "../ca/server.ts";
import { EXIT, runView } from "../lib/view/app.ts";
import { testServerEnv } from "./support/epics_env.ts";
import { fakeTerminal } from "./support/view_terminal.ts";

const W = 64;
const H = 48;
const N = 2;

interface FakeIoc {
  server: CaServer;
  images: PvHandle[];
  post(k: number): void;
}

async function startFakeIoc(prefix: string, port = 0, channelList = true): Promise<FakeIoc> {
  const server = await startCaServer({ env: testServerEnv(), port });
  const names = ["threshold_1", "threshold_2"];
  server.add({ name: `${prefix}state`, type: "string", initial: "READY" });
  server.add({ name: `${prefix}uuid`, type: "string", initial: "" });
  server.add({ name: `${prefix}ssqcnt`, type: "long", initial: 0 });
  if (channelList) {
    server.add({ name: `${prefix}channels`, type: "string", maxCount: 16, initial: names });
  }
  const images = names.map((ch) => {
    server.add({ name: `${prefix}${ch}:asize0`, type: "long", initial: N });
    server.add({ name: `${prefix}${ch}:asize1`, type: "long", initial: H });
    server.add({ name: `${prefix}${ch}:asize2`, type: "long", initial: W });
    // uint32 pixels are served as DOUBLE (lib/ioc_pvs.ts)
    return server.add({ name: `${prefix}${ch}:image`, type: "double", maxCount: N * W * H });
  });
  return {
    server,
    images,
    post(k) {
      server.get(`${prefix}uuid`)!.post(`0000000${k}-aaaa-bbbb-cccc-dddddddddddd`);
      server.get(`${prefix}ssqcnt`)!.post(k % 16);
      for (const img of images) {
        const px = new Float64Array(N * W * H).map((_, i) => ((i + k) * 7) % 1000);
        px[5] = 0xffffffff; // a defective pixel (uint32 all ones)
        img.post(px);
      }
    },
  };
}

function caEnv(udpPort: number): Record<string, string> {
  return { EPICS_CA_AUTO_ADDR_LIST: "NO", EPICS_CA_ADDR_LIST: `127.0.0.1:${udpPort}` };
}

Deno.test("view --connect: discovers channels via {prefix}channels and draws new images", async () => {
  const ioc = await startFakeIoc("VC:");
  let k = 0;
  let drawn = 0;
  try {
    const term = fakeTerminal({
      input: false,
      onWrite: (t) => {
        const n = t.split("\u2580").length;
        if (n !== drawn || t.endsWith("waiting for images...\x1b[K")) {
          drawn = n;
          queueMicrotask(() => ioc.post(++k));
        }
      },
    });
    const code = await runView(["--connect", "VC:", "--output", "halfblock", "--frames", "3"], {
      io: term,
      env: caEnv(ioc.server.udpPort),
      message: (m) => assert.fail(m),
    });
    assert.equal(code, EXIT.OK);
    const text = term.text();
    assert.ok(text.includes("threshold_1") && text.includes("threshold_2"));
    const status = text.split("\x1b[7m").at(-1)!;
    assert.ok(status.startsWith("READY"), status);
    assert.ok(status.includes(`${W}x${H}`) && status.includes("img=1/2"), status);
    assert.ok(/uuid=0000000\d/.test(status), status);
    assert.ok(/max=99\d /.test(status), `masked pixel excluded: ${status}`);
  } finally {
    await ioc.server.close();
  }
});

Deno.test("view --connect: a prefix nobody serves gives a clear timeout and exit code 3", async () => {
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const messages: string[] = [];
  try {
    const code = await runView(
      ["--connect", "NOBODY:", "--timeout", "0.3", "--output", "halfblock"],
      {
        io: fakeTerminal({ input: false }),
        env: caEnv((silent.addr as Deno.NetAddr).port),
        message: (m) => messages.push(m),
      },
    );
    assert.equal(code, EXIT.UNREACHABLE);
    assert.match(messages.join("\n"), /no IOC answers for NOBODY:state within 0\.3 s/);
  } finally {
    silent.close();
  }
});

Deno.test("view --connect: an IOC without {prefix}channels asks for --channels", async () => {
  const ioc = await startFakeIoc("NC:", 0, false);
  const messages: string[] = [];
  try {
    const code = await runView(["--connect", "NC:", "--output", "halfblock", "--timeout", "0.5"], {
      io: fakeTerminal({ input: false }),
      env: caEnv(ioc.server.udpPort),
      message: (m) => messages.push(m),
    });
    assert.equal(code, EXIT.ERROR);
    assert.match(messages.join("\n"), /--channels a,b/);
  } finally {
    await ioc.server.close();
  }
});

Deno.test("view --connect: the IOC restarting under the viewer is reported and survived", async () => {
  let ioc = await startFakeIoc("RS:", 0, false);
  const udpPort = ioc.server.udpPort;
  let phase = "first";
  let restarted: Promise<void> | undefined;
  try {
    const term = fakeTerminal({
      input: false,
      onWrite: (t) => {
        if (phase === "first" && t.includes("waiting for images")) {
          phase = "shown";
          queueMicrotask(() => ioc.post(1));
        } else if (phase === "shown" && t.includes("\u2580")) {
          phase = "closing";
          restarted = ioc.server.close();
        } else if (phase === "closing" && t.includes("IOC connection lost")) {
          phase = "restarting";
          restarted = restarted!.then(async () => {
            ioc = await startFakeIoc("RS:", udpPort, false);
          });
        } else if (phase === "restarting" && t.includes("IOC reconnected")) {
          phase = "done";
          queueMicrotask(() => ioc.post(2));
        }
      },
    });
    const code = await runView(
      [
        "--connect",
        "RS:",
        "--channels",
        "threshold_1,threshold_2",
        "--output",
        "halfblock",
        "--frames",
        "2",
      ],
      { io: term, env: caEnv(udpPort), message: (m) => assert.fail(m) },
    );
    assert.equal(code, EXIT.OK);
    assert.equal(phase, "done");
    assert.ok(term.text().includes("DISCONNECTED"));
  } finally {
    await restarted;
    await ioc.server.close();
  }
});
