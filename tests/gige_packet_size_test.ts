/**
 * Packet size negotiation with test packets: the bisection on its own, the register protocol
 * against an in-memory camera, and the backend against our simulated camera with a path MTU that
 * drops larger packets (negotiated size = the MTU; frames whole) or without test packets at all
 * (fallback to GIGE_PACKET_SIZE, else the camera's size, with a warning). The aravis fake's
 * behaviour (no test packets) is covered in tests/gige_fake_camera_test.ts.
 */

import assert from "node:assert/strict";
import {
  negotiatePacketSize,
  PacketSizeSearch,
  SCPS_DO_NOT_FRAGMENT,
  SCPS_FIRE_TEST_PACKET,
  SCPS_PIXEL_BIG_ENDIAN,
  type ScpsRegister,
  type TestPacketWatch,
} from "../devices/gige/packet_size.ts";
import { Bootstrap } from "../devices/gige/gvcp.ts";
import { GigeDevice } from "../devices/gige/backend.ts";
import { SimCamera, simPixel } from "../devices/gige_sim/camera.ts";
import type { ImageDataEvent } from "../devices/contract.ts";
import { recordingContext } from "./support/eiger.ts";

/** Runs a search against a path that carries sizes up to `mtu`. */
function search(min: number, max: number, inc: number, mtu: number): PacketSizeSearch {
  const s = new PacketSizeSearch({ min, max, inc });
  for (let size = s.next(); size !== undefined; size = s.next()) s.report(size, size <= mtu);
  return s;
}

Deno.test("packet size search: upper bound first, lower bound second, then bisection on the grid", () => {
  const jumbo = search(576, 9000, 4, 9000);
  assert.deepEqual(jumbo.trials, [{ size: 9000, arrived: true }]);
  assert.equal(jumbo.result, 9000);

  const none = search(576, 9000, 4, 0);
  assert.deepEqual(none.trials.map((t) => t.size), [9000, 576]);
  assert.equal(none.result, undefined, "no test packet at all: nothing negotiated");

  for (const mtu of [576, 1500, 4000, 8996, 1501]) {
    const s = search(576, 9000, 4, mtu);
    const expected = 576 + Math.floor((mtu - 576) / 4) * 4; // largest grid size that fits
    assert.equal(s.result, expected, `path MTU ${mtu}`);
    assert.ok(s.trials.length <= 2 + Math.ceil(Math.log2((9000 - 576) / 4)) + 1, `${mtu}`);
    assert.ok(s.trials.every((t) => t.arrived === t.size <= mtu));
  }
  assert.equal(search(1000, 1000, 4, 1500).result, 1000);
  assert.equal(search(1000, 1000, 4, 900).result, undefined);
  assert.throws(() => new PacketSizeSearch({ min: 2000, max: 1000, inc: 4 }), RangeError);
});

/** An in-memory camera: SCPS register, test packets up to `mtu`, sizes above `limit` refused. */
function memoryCamera(scps: number, mtu: number, limit = 16404) {
  const writes: number[] = [];
  let pending: number | undefined;
  const control: ScpsRegister = {
    readRegister: (address) => {
      assert.equal(address, Bootstrap.SCPS0);
      return Promise.resolve(scps);
    },
    writeRegister: (address, value) => {
      assert.equal(address, Bootstrap.SCPS0);
      writes.push(value);
      const size = value & 0xffff;
      if (size > limit) return Promise.reject(new Error("INVALID_PARAMETER"));
      scps = (value & ~SCPS_FIRE_TEST_PACKET) >>> 0;
      if ((value & SCPS_FIRE_TEST_PACKET) !== 0 && size <= mtu) pending = size - 28;
      return Promise.resolve();
    },
  };
  const stream: TestPacketWatch = {
    watchTestPacket(length) {
      pending = undefined;
      return { wait: () => Promise.resolve(pending === length) };
    },
  };
  return { control, stream, writes, scps: () => scps };
}

Deno.test("packet size negotiation: fire + do-not-fragment per probe, DNF restored, refusals count as lost", async () => {
  // DNF off and pixel big-endian on before: probes set DNF, the end restores DNF off.
  const cam = memoryCamera((SCPS_PIXEL_BIG_ENDIAN | 1500) >>> 0, 3000, 8000);
  const result = await negotiatePacketSize(cam.control, cam.stream, {
    min: 576,
    max: 9000,
    inc: 4,
    timeoutMs: 1,
  });
  assert.equal(result.size, 3000);
  for (const w of cam.writes.slice(0, -1)) {
    assert.equal(
      (w & 0xe0000000) >>> 0,
      (0x80000000 | 0x40000000 | 0x20000000) >>> 0,
      w.toString(16),
    );
  }
  assert.equal(cam.scps(), (SCPS_PIXEL_BIG_ENDIAN | 3000) >>> 0, "DNF as before, fire cleared");
  assert.deepEqual(result.trials[0], { size: 9000, arrived: false }, "9000 refused by the camera");
  assert.equal(cam.writes[0] & 0xffff, 9000);
  assert.equal(cam.writes[1] & 0xffff, 576, "a refused size is not fired twice");

  // A camera that never sends test packets: its size stays, DNF as it was (on).
  const mute = memoryCamera((SCPS_DO_NOT_FRAGMENT | 1400) >>> 0, 0);
  const none = await negotiatePacketSize(mute.control, mute.stream, {
    min: 576,
    max: 9000,
    inc: 4,
    timeoutMs: 1,
    tries: 3,
  });
  assert.equal(none.size, undefined);
  assert.deepEqual(none.trials.map((t) => t.size), [9000, 576]);
  assert.equal(mute.writes.length, 7, "3 tries per size, then the restore");
  assert.equal(mute.scps(), (SCPS_DO_NOT_FRAGMENT | 1400) >>> 0);
});

async function acquireOne(env: Record<string, string>, setup: (c: SimCamera) => void) {
  const camera = await SimCamera.start({ width: 200, height: 100 });
  setup(camera);
  const rec = recordingContext({
    GIGE_DEVICE_HOST: camera.hostSpec,
    GIGE_IMAGE_OVERDUE: "30",
    GIGE_TEST_PACKET_TIMEOUT: "100",
    ...env,
  });
  const device = new GigeDevice(rec.ctx);
  try {
    await device.initialize(AbortSignal.timeout(30_000));
    await device.acquire(0.001, AbortSignal.timeout(30_000));
    const img = rec.events.find((e): e is ImageDataEvent => e.type === "image-data");
    const expected: number[] = [];
    for (let y = 0; y < 100; y++) {
      for (let x = 0; x < 200; x++) expected.push(simPixel(x, y, camera.framesSent[0]) & 0xff);
    }
    assert.deepEqual(Array.from(img?.images.camera ?? []), expected, "the frame is whole");
    return {
      packetSize: (camera.registers.get(Bootstrap.SCPS0) ?? 0) >>> 0,
      camera,
      warnings: rec.warnings,
    };
  } finally {
    await device.teardown();
    rec.abort();
    await camera.close();
  }
}

Deno.test("gige backend: the packet size is the largest the path carries (sim with a 4000-byte MTU)", async () => {
  const r = await acquireOne({}, (c) => {
    c.pathMtu = 4000;
  });
  assert.equal(r.packetSize, 4000, "negotiated between 576 and 9000; DNF and fire bits clear");
  assert.ok(r.camera.testPacketsSent.includes(9000) && r.camera.testPacketsSent.includes(4000));
  assert.ok(r.camera.mtuDrops > 0, "larger test packets were dropped on the way");
  assert.deepEqual(r.warnings, []);

  // Bounded by GIGE_PACKET_SIZE: a path that carries more is not used beyond it.
  const bounded = await acquireOne({ GIGE_PACKET_SIZE: "2000" }, () => {});
  assert.equal(bounded.packetSize, 2000);
  assert.deepEqual(bounded.camera.testPacketsSent, [2000]);
});

Deno.test("gige backend: a camera without test packets gets GIGE_PACKET_SIZE, else keeps its own, with a warning", async () => {
  const configured = await acquireOne({ GIGE_PACKET_SIZE: "2000" }, (c) => {
    c.fireTestPackets = false;
  });
  assert.equal(configured.packetSize, 2000);
  assert.equal(configured.warnings.length, 1);
  assert.match(configured.warnings[0].message, /Camera sent no test packet/);
  assert.equal(configured.warnings[0].fields.packet_size, 2000);
  assert.equal(configured.warnings[0].fields.from, "GIGE_PACKET_SIZE");

  const own = await acquireOne({}, (c) => {
    c.fireTestPackets = false;
  });
  assert.equal(own.packetSize, 1500, "the simulator's own size");
  assert.equal(own.warnings[0].fields.from, "camera");
});
