/**
 * CA client (ca/client.ts) against our CA server and, on the same PVs, libca via pyepics.
 */

import assert from "node:assert/strict";
import { type CaValue, createCaClient } from "../ca/client.ts";
import { DBR } from "../ca/dbr.ts";
import { startCaServer } from "../ca/server.ts";
import { freeUdpPort, runPyepics, testServerEnv } from "./support/epics_env.ts";

function clientEnv(udpPort: number): Record<string, string> {
  return { EPICS_CA_AUTO_ADDR_LIST: "NO", EPICS_CA_ADDR_LIST: `127.0.0.1:${udpPort}` };
}

/** Resolves with the first value for which `pred` holds. */
function nextValue(
  subscribe: (l: (v: CaValue) => void) => () => void,
  pred: (v: CaValue) => boolean,
): Promise<CaValue> {
  return new Promise((resolve) => {
    const off = subscribe((v) => {
      if (pred(v)) {
        queueMicrotask(off);
        resolve(v);
      }
    });
  });
}

const W = 1028;
const H = 512;

Deno.test("CA client: search, read, monitor and a large array with extended header", async () => {
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  const client = createCaClient({ env: clientEnv(server.udpPort) });
  try {
    server.add({ name: "V:state", type: "string", initial: "READY" });
    const image = server.add({ name: "V:a:image", type: "long", maxCount: W * H });
    const state = client.channel("V:state");
    await state.connected(AbortSignal.timeout(5000));
    assert.equal(state.nativeType, DBR.STRING);
    const got = await state.get();
    assert.deepEqual(got.value, ["READY"]);
    assert.ok(typeof got.timestamp === "number" && Math.abs(got.timestamp - Date.now()) < 60_000);

    const img = client.channel("V:a:image");
    await img.connected(AbortSignal.timeout(5000));
    assert.equal(img.nativeCount, W * H);
    const pixels = new Int32Array(W * H).map((_, i) => (i * 7) % 100_003);
    pixels[5] = -1; // 2^32-1 of a uint32 image travels as -1
    const update = nextValue((l) => img.subscribe(l), (v) => v.count === W * H);
    image.post(pixels);
    const v = await update;
    assert.ok(v.value instanceof Int32Array);
    assert.equal(v.type, DBR.TIME_LONG);
    assert.deepEqual(v.value, pixels);

    const states: string[] = [];
    const ready = nextValue((l) =>
      state.subscribe((x) => {
        states.push((x.value as string[])[0]);
        l(x);
      }), (x) => (x.value as string[])[0] === "INTEGRATE");
    server.get("V:state")!.post("INTEGRATE");
    await ready;
    assert.deepEqual(states.slice(-1), ["INTEGRATE"]);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("CA client: reconnects and resubscribes after the server restarts", async () => {
  let server = await startCaServer({ env: testServerEnv(), port: 0 });
  const udpPort = server.udpPort;
  server.add({ name: "R:count", type: "long", initial: 1 });
  const client = createCaClient({ env: clientEnv(udpPort), maxSearchIntervalMs: 200 });
  try {
    const ch = client.channel("R:count");
    const seen: number[] = [];
    let wake: (() => void) | undefined;
    ch.subscribe((v) => {
      seen.push((v.value as Int32Array)[0]);
      wake?.();
    });
    const events: boolean[] = [];
    const waitConn = (up: boolean) =>
      new Promise<void>((resolve) => {
        const off = ch.onConnection((c) => {
          events.push(c);
          if (c === up) {
            off();
            resolve();
          }
        });
      });
    await ch.connected(AbortSignal.timeout(5000));
    while (!seen.includes(1)) await new Promise<void>((r) => (wake = r));

    const down = waitConn(false);
    await server.close();
    await down;
    assert.equal(ch.state === "searching" || ch.state === "connecting", true);

    const up = waitConn(true);
    server = await startCaServer({ env: testServerEnv(), port: udpPort });
    server.add({ name: "R:count", type: "long", initial: 2 });
    await up;
    while (!seen.includes(2)) await new Promise<void>((r) => (wake = r));
    server.get("R:count")!.post(3);
    while (!seen.includes(3)) await new Promise<void>((r) => (wake = r));
    assert.deepEqual(events, [false, true]);
    assert.deepEqual(seen.filter((x) => x >= 1), [1, 2, 3]);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("CA client: a name nobody serves times out with a clear error", async () => {
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (silent.addr as Deno.NetAddr).port;
  const client = createCaClient({ env: clientEnv(port) });
  try {
    const ch = client.channel("NOBODY:state");
    await assert.rejects(
      ch.connected(AbortSignal.timeout(300)),
      /timed out: no server answered for NOBODY:state/,
    );
    assert.equal(ch.state, "searching");
    // the searches really went out (to our silent socket)
    const [data] = await silent.receive();
    assert.ok(new TextDecoder().decode(data).includes("NOBODY:state"));
  } finally {
    await client.close();
    silent.close();
  }
});

Deno.test("CA client and libca (pyepics) read the same PVs identically", async () => {
  const server = await startCaServer({ env: testServerEnv(freeUdpPort()), port: 0 });
  const client = createCaClient({ env: clientEnv(server.udpPort) });
  try {
    server.add({ name: "P:state", type: "string", initial: "READY" });
    const n = 300 * 200;
    const pixels = new Int32Array(n).map((_, i) => (i * 13) % 65_536);
    server.add({ name: "P:a:image", type: "long", maxCount: n, initial: pixels });
    const py = runPyepics(
      `s = epics.caget("P:state", timeout=10)
a = epics.caget("P:a:image", timeout=10)
out({"state": s, "n": len(a), "sum": int(a.sum()), "head": [int(x) for x in a[:5]]})`,
      { udpPort: server.udpPort, timeoutMs: 30_000 },
    );
    const img = client.channel("P:a:image");
    await img.connected(AbortSignal.timeout(5000));
    const ours = (await img.get()).value as Int32Array;
    const st = client.channel("P:state");
    await st.connected(AbortSignal.timeout(5000));
    const ourState = (await st.get()).value as string[];
    const result = await py;
    assert.equal(result.code, 0, result.stderr);
    const theirs = result.json as { state: string; n: number; sum: number; head: number[] };
    assert.equal(theirs.state, ourState[0]);
    assert.equal(theirs.n, ours.length);
    assert.equal(theirs.sum, ours.reduce((a, b) => a + b, 0));
    assert.deepEqual(theirs.head, [...ours.subarray(0, 5)]);
  } finally {
    await client.close();
    await server.close();
  }
});
