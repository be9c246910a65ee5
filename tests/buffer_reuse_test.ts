/**
 * Buffer reuse along the image path: DBR payloads recycled by the store once writers released
 * them, `post({copy})`, the controller's image release and series stacks, and the sim's pool.
 * Each test checks both that buffers are reused and that the bytes served stay exact.
 */
import assert from "node:assert/strict";
import { DBR, encodeDbr } from "../ca/dbr.ts";
import { defaultCodec } from "../ca/codec_dbr.ts";
import {
  CMD,
  createChanRequest,
  DBE,
  eventAddRequest,
  MessageReader,
  versionMessage,
} from "../ca/messages.ts";
import { startCaServer } from "../ca/server.ts";
import { closeRaw, connectRaw, type RawClient } from "./support/raw_client.ts";
import { testServerEnv } from "./support/epics_env.ts";
import { PvRecord, PvStore } from "../ca/store.ts";
import type { DeviceEvent, PixelArray } from "../devices/contract.ts";
import { ManualClock } from "../core/clock.ts";
import { getLog } from "../core/log.ts";
import { resolveSimSettings, SimDevice, simGenerator } from "../devices/sim.ts";
import { acquire, startHarness } from "./support/controller_harness.ts";
import { fakeConfig, fakeImages } from "./support/fake_device.ts";
import { makeHarness } from "./support/circuit_harness.ts";
import { assertSameBytes, concat } from "./support/bytes.ts";

const N = 64 * 1024; // large enough to be recycled (≥ 64 KiB as DOUBLE or LONG)

function source(value: Float64Array | Int32Array | string[], type: "double" | "long" | "string") {
  return {
    value,
    type,
    timestamp: 1_700_000_000_123,
    severity: 1,
    status: 3,
    metadata: { units: "cts", precision: 2, displayLimits: [0, 10] as [number, number] },
  };
}

Deno.test("encodeDbr: a reused dirty buffer comes out byte-identical to a fresh encode", () => {
  const cases: [number, number, ReturnType<typeof source>][] = [
    [DBR.DOUBLE, 100, source(Float64Array.from({ length: 100 }, (_, i) => i * 1.5), "double")],
    [DBR.TIME_LONG, 100, source(Int32Array.from({ length: 100 }, (_, i) => -i), "long")],
    [DBR.CTRL_DOUBLE, 100, source(Float64Array.from({ length: 100 }, (_, i) => i), "double")],
    // Count beyond the value: the tail must be zeroed.
    [DBR.TIME_DOUBLE, 100, source(new Float64Array(10).fill(2), "double")],
    // Conversion to another type, and strings (only partly written fields).
    [DBR.SHORT, 100, source(Int32Array.from({ length: 100 }, (_, i) => i), "long")],
    [DBR.STS_STRING, 3, source(["a", "bb", "ccc"], "string")],
    [DBR.CLASS_NAME, 1, source(new Float64Array(1), "double")],
  ];
  for (const [type, count, src] of cases) {
    const fresh = encodeDbr(type, count, src);
    const dirty = new Uint8Array(fresh.length).fill(0xa5);
    const reused = encodeDbr(type, count, src, 0, dirty);
    assert.equal(reused, dirty, `type ${type}: the given buffer is filled`);
    assertSameBytes(reused, fresh, `type ${type}: same bytes`);
  }
  const wrongSize = new Uint8Array(8);
  const out = encodeDbr(DBR.DOUBLE, 4, source(new Float64Array(4), "double"), 0, wrongSize);
  assert.notEqual(out, wrongSize, "a buffer of another length is ignored");
});

Deno.test("store: payloads are recycled only after every holder released them", () => {
  const pv = new PvRecord({ name: "R:img", type: "double", maxCount: N }, defaultCodec);
  const target = pv.target("VAL")!;
  const fill = (x: number) => pv.post(new Float64Array(N).fill(x));
  const expect = (x: number) =>
    encodeDbr(DBR.DOUBLE, N, source(new Float64Array(N).fill(x), "double"));

  fill(1);
  const p1 = target.encoded(DBR.DOUBLE, N);
  const releaseA = target.hold(p1);
  const releaseB = target.hold(p1); // a second circuit sends the same payload
  fill(2);
  const p2 = target.encoded(DBR.DOUBLE, N);
  assert.notEqual(p2, p1, "a held payload is not reused");
  releaseA();
  releaseA(); // releasing twice counts once
  const releaseP2 = target.hold(p2);
  fill(3);
  const p3 = target.encoded(DBR.DOUBLE, N);
  assert.notEqual(p3, p1, "still held by B");
  assert.notEqual(p3, p2, "p2 is held too");
  assertSameBytes(p1, expect(1), "held payload unchanged");
  releaseB();
  releaseP2();
  fill(4);
  const p4 = target.encoded(DBR.DOUBLE, N);
  assert.ok(p4 === p1 || p4 === p2, "a released, superseded payload is filled again");
  assertSameBytes(p4, expect(4), "with the new value");

  // A payload nobody held is never reused: whoever asked for it may still read it.
  const unheld = p4;
  fill(5);
  const p5 = target.encoded(DBR.DOUBLE, N);
  assert.notEqual(p5, unheld);
  assertSameBytes(unheld, expect(4));
});

Deno.test("store: post with copy keeps its own array, reused in place", () => {
  const pv = new PvRecord({ name: "R:copy", type: "long", maxCount: N }, defaultCodec);
  const mine = new Int32Array(N).fill(7);
  pv.post(mine, { copy: true });
  const own = pv.value();
  assert.notEqual(own, mine, "a copy is stored");
  mine.fill(8); // the caller reuses its buffer
  assert.equal((own as Int32Array)[0], 7, "the PV's value did not change");
  pv.post(mine, { copy: true });
  assert.equal(pv.value(), own, "copied into the same array");
  assert.equal((own as Int32Array)[N - 1], 8);
  // Without copy the caller's array is kept as documented.
  pv.post(mine);
  assert.equal(pv.value(), mine);
  // A copy after that must not write into the caller's array.
  pv.post(new Int32Array(N).fill(9), { copy: true });
  assert.equal(mine[0], 8, "an array handed over earlier is never written");
});

Deno.test("circuit: monitor payloads are held until the output was written or the circuit closed", async () => {
  const store = new PvStore(defaultCodec);
  const pv = store.add({ name: "R:mon", type: "double", maxCount: N });
  pv.post(new Float64Array(N).fill(1));
  const h = makeHarness({ store, codec: defaultCodec });
  const out = await h.exchange(createChanRequest("R:mon", 1));
  const sid = out.find((m) => m.header.cmd === CMD.CREATE_CHAN)!.header.p2;
  h.circuit.receive(eventAddRequest(DBR.DOUBLE, N, sid, 1, DBE.VALUE));
  await h.circuit.idle();
  const pieces = h.circuit.takeOutput();
  const sent = pieces.find((p) => p.length >= N * 8)!;
  assert.ok(sent, "update taken");
  pv.post(new Float64Array(N).fill(2));
  const target = store.resolve("R:mon")!;
  const next = target.encoded(DBR.DOUBLE, N);
  assert.notEqual(next, sent, "not reused while the writer has it");
  assert.equal(new DataView(sent.buffer, sent.byteOffset).getFloat64(0), 1, "bytes intact");
  h.circuit.releaseOutput();
  pv.post(new Float64Array(N).fill(3));
  assert.equal(target.encoded(DBR.DOUBLE, N), sent, "released: reused for a later version");

  // close() releases what is still out.
  const h2 = makeHarness({ store, codec: defaultCodec });
  const out2 = await h2.exchange(createChanRequest("R:mon", 1));
  const sid2 = out2.find((m) => m.header.cmd === CMD.CREATE_CHAN)!.header.p2;
  h2.circuit.receive(eventAddRequest(DBR.DOUBLE, N, sid2, 1, DBE.VALUE));
  await h2.circuit.idle();
  const held = h2.circuit.takeOutput().find((p) => p.length >= N * 8)!;
  pv.post(new Float64Array(N).fill(4));
  h2.circuit.close();
  pv.post(new Float64Array(N).fill(5));
  const again = target.encoded(DBR.DOUBLE, N);
  assert.ok(again === held || again === sent, "released by close()");
  assert.equal(new DataView(again.buffer, again.byteOffset).getFloat64(0), 5);
});

Deno.test("controller: a single image is released after the data hooks settled", async () => {
  const config = fakeConfig({ numImages: 1 });
  const released: string[] = [];
  let hookSawRelease = true;
  const h = await startHarness({
    initialized: true,
    config,
    acquire: (dev) => {
      dev.ctx.emit({ type: "start-data", seriesId: "s", seriesNumber: 1 });
      dev.ctx.emit({
        type: "image-data",
        seriesId: "s",
        index: 0,
        timestamp: 1,
        exposure: 0,
        images: fakeImages(config, 3),
        release: () => released.push("s"),
      });
      dev.ctx.emit({ type: "end-data", seriesId: "s" });
      return Promise.resolve();
    },
  });
  h.controller.subscribe({
    data: async () => {
      await Promise.resolve();
      hookSawRelease = released.length > 0;
    },
  });
  await h.controller.request(acquire(0));
  await h.advance(0);
  assert.equal(h.controller.state, "READY");
  assert.equal(hookSawRelease, false, "not released while a hook ran");
  assert.deepEqual(released, ["s"], "released once afterwards");
  await h.close();
});

Deno.test("controller: images of a multi-image series are released once copied; stacks are reused", async () => {
  const config = fakeConfig({ numImages: 2 });
  const released: number[] = [];
  let series = 0;
  const h = await startHarness({
    initialized: true,
    config,
    acquire: (dev) => {
      const id = `s${series++}`;
      dev.ctx.emit({ type: "start-data", seriesId: id, seriesNumber: series });
      for (let index = 0; index < 2; index++) {
        const images = fakeImages(config, 10 * series + index);
        dev.ctx.emit({
          type: "image-data",
          seriesId: id,
          index,
          timestamp: 1,
          exposure: 0,
          images,
          release: () => released.push(index),
        });
      }
      dev.ctx.emit({ type: "end-data", seriesId: id });
      return Promise.resolve();
    },
  });
  const seen: PixelArray[] = [];
  const values: number[][] = [];
  h.controller.subscribe({
    data: (frame) => {
      seen.push(frame.images.a);
      values.push([frame.images.a[0], frame.images.a[12]]);
    },
  });
  await h.controller.request(acquire(0));
  await h.advance(0);
  assert.deepEqual(released, [0, 1], "each image released after its copy");
  await h.controller.request(acquire(0));
  await h.advance(0);
  assert.equal(h.controller.state, "READY");
  assert.equal(seen.length, 2);
  assert.equal(seen[1], seen[0], "the second series reuses the first one's stack");
  assert.deepEqual(values, [[10, 11], [20, 21]], "with the new pixels");
  await h.close();
});

Deno.test("sim device: released image buffers are reused, content still exact", async () => {
  const clock = new ManualClock();
  const events: DeviceEvent[] = [];
  const env = { SIM_SEED: "5", SIM_CHANNELS: "u,v", SIM_NUM_IMAGES: "1", SIM_IMAGE_SIZE: "32x16" };
  const dev = new SimDevice({
    emit: (e) => events.push(e),
    log: getLog("test.sim"),
    env,
    signal: new AbortController().signal,
  }, clock);
  await dev.initialize();
  const gen = simGenerator(resolveSimSettings(env));
  const images = () =>
    events.filter((e) => e.type === "image-data") as Extract<DeviceEvent, { type: "image-data" }>[];
  await dev.acquire(0, new AbortController().signal);
  const first = images()[0];
  const buffers = new Set<PixelArray>(Object.values(first.images));
  first.release?.();
  first.release?.(); // a second release must not hand the same buffer out twice
  await clock.advance(0); // the next series is computed ahead, into the released buffers
  await dev.acquire(0, new AbortController().signal);
  const second = images()[1];
  assert.ok(Object.values(second.images).every((img) => buffers.has(img)), "buffers reused");
  assert.notEqual(second.images.u, second.images.v, "each channel has its own buffer");
  assert.deepEqual(second.images.u, gen.image(1, 0, 0, 0));
  assert.deepEqual(second.images.v, gen.image(1, 0, 1, 0));
  await dev.teardown();
});

Deno.test("server: a payload stuck in a stalled client's socket is never recycled under it", async () => {
  // 16 MiB updates: more than loopback socket buffers absorb, so the write to a client that does
  // not read stays pending while a live client's circuit encodes newer values. A recycled buffer
  // under the pending write would reach the stalled client as a torn update (mixed values).
  const n = 4 * 1024 * 1024;
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  const stalled = await Deno.connect({ hostname: "127.0.0.1", port: server.tcpPort });
  let live: RawClient | undefined;
  try {
    const pv = server.add({ name: "BIG", type: "long", maxCount: n });
    pv.post(new Int32Array(n).fill(0));
    await stalled.write(
      concat(versionMessage(0, 0), createChanRequest("BIG", 1), eventAddRequest(5, 0, 1, 1, 1)),
    );
    live = await connectRaw(server.tcpPort);
    const sid = await live.createChannel("BIG", 2);
    await live.send(eventAddRequest(5, 0, sid, 7, DBE.VALUE));
    const valueOf = (m: { payload: Uint8Array }) =>
      new DataView(m.payload.buffer, m.payload.byteOffset).getInt32(0);
    const posts = 8;
    const image = new Int32Array(n);
    for (let v = 1; v <= posts; v++) {
      pv.post(image.fill(v), { copy: true });
      // The live client receives each value: its circuit encodes every version.
      await live.waitFor((m) => m.header.cmd === CMD.EVENT_ADD && valueOf(m) === v, 20_000);
      live.inbox.length = 0;
    }
    // Now the stalled client reads: every update it gets must be uniform, ending on the newest.
    const reader = new MessageReader({ maxPayload: 1 << 30 });
    const buffer = new Uint8Array(1 << 20);
    const seen: number[] = [];
    while (seen.at(-1) !== posts) {
      const got = await stalled.read(buffer);
      assert.ok(got !== null, "connection open");
      for (const m of reader.push(buffer.subarray(0, got))) {
        if (m.header.cmd !== CMD.EVENT_ADD || m.payload.length < 4 * n) continue;
        const view = new DataView(m.payload.buffer, m.payload.byteOffset, 4 * n);
        const first = view.getInt32(0);
        for (let i = 0; i < n; i += 1021) {
          if (view.getInt32(4 * i) !== first) {
            assert.fail(`torn update: element ${i} is ${view.getInt32(4 * i)}, first ${first}`);
          }
        }
        assert.equal(view.getInt32(4 * (n - 1)), first, "last element");
        seen.push(first);
      }
    }
    assert.ok(seen.length >= 2, `updates ${seen}`);
    assert.deepEqual([...seen].sort((a, b) => a - b), seen, "never older");
  } finally {
    stalled.close();
    if (live) await closeRaw(live);
    await server.close();
  }
});
