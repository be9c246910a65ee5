/**
 * GigE backend against our own simulated camera (devices/gige_sim/camera.ts) on loopback: frames
 * equal the simulator's pattern (Mono8, Mono16, Mono12Packed, zipped description), resends fill
 * holes, and every fault of the bad-input list ends in an error naming its cause.
 */

import assert from "node:assert/strict";
import { GigeDevice } from "../devices/gige/backend.ts";
import { SimCamera, simPixel, SimRegister } from "../devices/gige_sim/camera.ts";
import { Bootstrap } from "../devices/gige/gvcp.ts";
import { GvcpClient } from "../devices/gige/gvcp_client.ts";
import type { DeviceEvent, ImageDataEvent } from "../devices/contract.ts";
import { recordingContext } from "./support/eiger.ts";
import { EXIT, runView } from "../lib/view/app.ts";
import { fakeTerminal } from "./support/view_terminal.ts";

interface Rig {
  camera: SimCamera;
  device: GigeDevice;
  events: DeviceEvent[];
  close(): Promise<void>;
}

async function rig(
  env: Record<string, string> = {},
  options: Parameters<typeof SimCamera.start>[0] = {},
  setup: (camera: SimCamera) => void = () => {},
): Promise<Rig> {
  const camera = await SimCamera.start(options);
  setup(camera);
  const rec = recordingContext({
    GIGE_DEVICE_HOST: camera.hostSpec,
    GIGE_IMAGE_OVERDUE: "30",
    ...env,
  });
  const device = new GigeDevice(rec.ctx);
  return {
    camera,
    device,
    events: rec.events,
    async close() {
      await device.teardown();
      rec.abort();
      await camera.close();
    },
  };
}

/** A drop rule that loses each chosen packet on its first transmission only. */
function dropOnce(lose: (block: number, pid: number) => boolean) {
  const dropped = new Set<string>();
  return (block: number, pid: number): boolean => {
    const key = `${block}/${pid}`;
    if (!lose(block, pid) || dropped.has(key)) return false;
    dropped.add(key);
    return true;
  };
}

function images(events: DeviceEvent[]): ImageDataEvent[] {
  return events.filter((e): e is ImageDataEvent => e.type === "image-data");
}

function expected(width: number, height: number, block: number, mask: number): number[] {
  const out: number[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out.push(simPixel(x, y, block) & mask);
  }
  return out;
}

Deno.test("gige backend: zipped description, Mono8 frames equal the pattern, facts and runtime", async () => {
  const r = await rig(
    { GIGE_NUM_IMAGES: "3", GIGE_FEATURES: "Width=40;Height=30;Gain=6.5;FanOn=true" },
    { zipped: true },
  );
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    const config = r.device.getConfig()!;
    assert.equal(config.width, 40);
    assert.equal(config.height, 30);
    assert.equal(config.pixelType, "uint8");
    assert.deepEqual(config.channels, [{
      name: "camera",
      meta: { gain: 6.5, pixel_format: "Mono8" },
    }]);
    assert.equal(config.extra?.description, "diss_sim.zip");
    assert.equal(r.camera.getFloat(SimRegister.GAIN), 6.5);
    assert.equal(r.camera.registers.get(SimRegister.STATUS_BITS)! & 1, 1, "FanOn bit 31 = LSB");
    assert.equal(r.device.getRuntime().temperature, 41.5);
    assert.equal(r.camera.registers.get(SimRegister.ACQUISITION_MODE), 2, "MultiFrame");
    assert.equal(r.camera.registers.get(SimRegister.FRAME_COUNT), 3);
    await r.device.acquire(0.002, AbortSignal.timeout(10_000));
    assert.deepEqual(r.events.filter((e) => e.type !== "image-data").map((e) => e.type), [
      "start-data",
      "end-data",
    ]);
    const got = images(r.events);
    assert.equal(got.length, 3);
    assert.equal(r.camera.getFloat(SimRegister.EXPOSURE), 2000, "duration → ExposureTime in µs");
    got.forEach((img, i) => {
      assert.equal(img.index, i);
      assert.equal(img.exposure, 0.002);
      const block = r.camera.framesSent[i];
      assert.deepEqual(Array.from(img.images.camera), expected(40, 30, block, 0xff), `frame ${i}`);
      // The camera's own timestamp (leader, 1 GHz ticks) and block id as per-image metadata.
      assert.equal(img.meta?.block_id, block);
      const ns = r.camera.timestampsSent[i];
      assert.ok(
        Math.abs((img.meta?.device_time as number) - Number(ns) / 1e9) < 1e-6,
        `${img.meta?.device_time} vs ${ns}`,
      );
    });
    await assert.rejects(r.device.adjustChannel("camera", { gain: 3 }), /read-only/);
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: Mono16 and Mono12Packed become uint16 with the pattern's values", async () => {
  for (const [format, mask] of [["Mono16", 0xffff], ["Mono12Packed", 0xfff]] as const) {
    const r = await rig({ GIGE_FEATURES: `Width=24;Height=5;PixelFormat=${format}` });
    try {
      await r.device.initialize(AbortSignal.timeout(10_000));
      assert.equal(r.device.getConfig()!.pixelType, "uint16");
      await r.device.acquire(0.001, AbortSignal.timeout(10_000));
      const [img] = images(r.events);
      assert.ok(img.images.camera instanceof Uint16Array);
      assert.deepEqual(
        Array.from(img.images.camera),
        expected(24, 5, r.camera.framesSent[0], mask),
        format,
      );
    } finally {
      await r.close();
    }
  }
});

Deno.test("gige backend: lost packets (leader, payload, trailer) are resent and frames are whole", async () => {
  const r = await rig(
    {
      GIGE_NUM_IMAGES: "4",
      GIGE_PACKET_SIZE: "576",
      GIGE_FEATURES: "Width=64;Height=40",
      GIGE_RESEND_WINDOW: "5000", // resends may take long on a loaded machine; only absence fails
    },
    {},
    (camera) => {
      // First transmission only: leader of frame 1, payloads 2-3 of frame 2, trailer of frame 3.
      camera.dropPacket = dropOnce((block, pid) =>
        (block === 1 && pid === 0) || (block === 2 && (pid === 2 || pid === 3)) ||
        (block === 3 && pid === 6)
      );
    },
  );
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    await r.device.acquire(0.001, AbortSignal.timeout(10_000));
    const got = images(r.events);
    assert.equal(got.length, 4);
    got.forEach((img, i) => {
      assert.deepEqual(
        Array.from(img.images.camera),
        expected(64, 40, r.camera.framesSent[i], 0xff),
      );
    });
    assert.ok(
      r.camera.resendRequests.some((q) => q.blockId === 2 && q.first === 2 && q.last === 3),
    );
    assert.ok(r.camera.resendRequests.some((q) => q.blockId === 3 && q.first <= 6 && q.last >= 6));
    assert.ok(r.camera.resendRequests.some((q) => q.blockId === 1 && q.first === 0));
    assert.ok(r.device.streamStats().resentReceived >= 4, JSON.stringify(r.device.streamStats()));
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: 64-bit block ids on a GigE Vision 2.0 camera, across 2^32, with resends", async () => {
  const first = 2 ** 32 - 2;
  const r = await rig(
    {
      GIGE_NUM_IMAGES: "4",
      GIGE_PACKET_SIZE: "576",
      GIGE_FEATURES: "Width=64;Height=40",
      GIGE_RESEND_WINDOW: "5000",
    },
    { version: 0x00020000, firstBlock: first },
    (camera) => {
      camera.dropPacket = dropOnce((block, pid) =>
        (block === first && pid === 0) || (block === first + 2 && pid === 3)
      );
    },
  );
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    assert.equal(
      (r.camera.registers.get(Bootstrap.GVSP_CONFIGURATION) ?? 0) & 0x40000000,
      0x40000000,
      "extended ids enabled",
    );
    await r.device.acquire(0.001, AbortSignal.timeout(10_000));
    const got = images(r.events);
    assert.deepEqual(r.camera.framesSent, [first, first + 1, first + 2, first + 3]);
    assert.equal(got.length, 4);
    got.forEach((img, i) => {
      assert.deepEqual(Array.from(img.images.camera), expected(64, 40, first + i, 0xff));
    });
    assert.ok(r.camera.resendRequests.some((q) => q.blockId === first + 2 && q.first === 3));
    assert.ok(r.camera.resendRequests.some((q) => q.blockId === first && q.first === 0));
    assert.ok(r.device.streamStats().resentReceived >= 2);
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: chunk data (image + timestamp chunk) stripped; a damaged layout is an error naming the block", async () => {
  const r = await rig({
    GIGE_NUM_IMAGES: "2",
    GIGE_FEATURES: "Width=40;Height=30;PixelFormat=Mono16;ChunkModeActive=true",
  });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    await r.device.acquire(0.001, AbortSignal.timeout(10_000));
    const got = images(r.events);
    assert.equal(got.length, 2);
    got.forEach((img, i) => {
      assert.equal(img.images.camera.length, 40 * 30);
      assert.deepEqual(
        Array.from(img.images.camera),
        expected(40, 30, r.camera.framesSent[i], 0xffff),
      );
    });
    r.camera.brokenChunks = true;
    const err = await r.device.acquire(0.001, AbortSignal.timeout(10_000)).then(
      () => undefined,
      (e: Error) => e.message,
    );
    assert.equal(
      err?.replace(/ \(.*$|: chunk 0x.*$/, ""),
      `block ${r.camera.framesSent[2]}: chunk layout not understood`,
    );
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: packets missing beyond the resend window → error naming block and packets; clear recovers", async () => {
  const r = await rig(
    { GIGE_NUM_IMAGES: "2", GIGE_PACKET_SIZE: "576", GIGE_RESEND_WINDOW: "30" },
    {},
    (camera) => {
      camera.honourResend = false;
      camera.dropPacket = (block, pid) => block === 2 && (pid === 3 || pid === 4);
    },
  );
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    await assert.rejects(
      r.device.acquire(0.001, AbortSignal.timeout(10_000)),
      /block 2 incomplete: missing packets 3-4 of/,
    );
    assert.equal(images(r.events).length, 1, "the whole first frame only, no torn image");
    assert.ok(r.camera.resendRequests.length > 0, "resends were asked for");
    r.camera.dropPacket = () => false;
    await r.device.clear();
    const from = r.events.length;
    await r.device.acquire(0.001, AbortSignal.timeout(10_000));
    assert.equal(images(r.events.slice(from)).length, 2);
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: a camera that does not answer → error naming its address", async () => {
  const r = await rig({}, {}, (camera) => {
    camera.silent = true;
  });
  try {
    await assert.rejects(
      r.device.initialize(AbortSignal.timeout(10_000)),
      new RegExp(`camera at ${r.camera.hostSpec} did not answer DISCOVERY`),
    );
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: control held by another application → refused", async () => {
  const r = await rig({}, {}, (camera) => camera.grabControl());
  try {
    await assert.rejects(
      r.device.initialize(AbortSignal.timeout(10_000)),
      /refused control: another application holds it .*ACCESS_DENIED/,
    );
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: PENDING_ACK extends the deadline instead of failing", async () => {
  const camera = await SimCamera.start();
  const client = new GvcpClient({
    host: "127.0.0.1",
    port: camera.port,
    timeoutMs: 500,
    attempts: 1,
  });
  try {
    camera.pendingAckMs = 3000; // real ack after 1500 ms, beyond the single 500 ms attempt
    assert.equal(await client.readRegister(Bootstrap.VERSION), 0x00010002);
    camera.pendingAckMs = 0;
    camera.silent = true;
    await assert.rejects(client.readRegister(Bootstrap.VERSION), /did not answer READREG 0x0/);
  } finally {
    await client.close();
    await camera.close();
  }
});

Deno.test("gige backend: heartbeat lost mid-acquisition → error; READY again after clear once the camera is back", async () => {
  const r = await rig({ GIGE_TRIGGER: "external", GIGE_GVCP_TIMEOUT: "200" }, {}, (camera) => {
    camera.registers.set(Bootstrap.HEARTBEAT_TIMEOUT, 1500);
  });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    assert.equal(r.camera.registers.get(SimRegister.TRIGGER_MODE), 1);
    const acquiring = r.device.acquire(0.001, AbortSignal.timeout(20_000));
    // Wait until the camera got AcquisitionStart (its acknowledge leaves in the same turn).
    while (r.camera.registers.get(SimRegister.ACQUISITION_COMMAND) !== 1) {
      await new Promise((res) => setTimeout(res, 5));
    }
    r.camera.silent = true; // no frames come (external trigger) and the camera stops answering
    await assert.rejects(
      acquiring,
      /camera control lost: heartbeat lost: camera at .* did not answer READREG 0xa00/,
    );
    assert.ok(r.events.some((e) => e.type === "error" && /control lost/.test(e.message)));
    assert.equal(r.device.isInitialized(), false);
    await assert.rejects(r.device.acquire(0.001, AbortSignal.timeout(1000)), /control lost/);
    r.camera.restart(); // the camera is back
    await r.device.clear();
    await r.device.initialize(AbortSignal.timeout(10_000));
    assert.equal(r.device.isInitialized(), true);
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: GIGE_FEATURES with an unknown feature or a value out of range is refused naming it", async () => {
  for (
    const [features, pattern] of [
      [
        "Width=32;Frobnicate=1",
        /GIGE_FEATURES Frobnicate=1 refused: feature Frobnicate does not exist/,
      ],
      ["Gain=99", /GIGE_FEATURES Gain=99 refused: Gain: 99 is out of range 0..24/],
      ["Width=33", /GIGE_FEATURES Width=33 refused: Width: 33 is not 8 \+ a multiple of 4/],
      [
        "PixelFormat=Mono99",
        /GIGE_FEATURES PixelFormat=Mono99 refused: PixelFormat has no entry "Mono99"/,
      ],
      ["PayloadSize=5", /GIGE_FEATURES PayloadSize=5 refused: PayloadSize is a IntSwissKnife node/],
    ] as const
  ) {
    const r = await rig({ GIGE_FEATURES: features });
    try {
      await assert.rejects(r.device.initialize(AbortSignal.timeout(10_000)), pattern);
      assert.equal(r.camera.controlled, false, "control released after the refusal");
    } finally {
      await r.close();
    }
  }
  assert.throws(
    () =>
      new GigeDevice(
        recordingContext({ GIGE_DEVICE_HOST: "127.0.0.1", GIGE_FEATURES: "Width" }).ctx,
      ),
    /GIGE_FEATURES item "Width" is not Name=Value/,
  );
});

Deno.test("gige backend: colour pixel format refused at initialization", async () => {
  const r = await rig({ GIGE_FEATURES: "PixelFormat=RGB8" });
  try {
    await assert.rejects(
      r.device.initialize(AbortSignal.timeout(10_000)),
      /pixel format RGB8 is not supported/,
    );
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: a frame of the wrong size or format → error naming the block", async () => {
  for (const override of [{ width: 32 }, { pixelFormat: 0x01100007 }]) {
    const r = await rig({}, {}, (camera) => {
      camera.leaderOverride = override;
    });
    try {
      await r.device.initialize(AbortSignal.timeout(10_000));
      await assert.rejects(
        r.device.acquire(0.001, AbortSignal.timeout(10_000)),
        /block 1: frame \d+x48 format 0x[0-9a-f]+, expected 64x48 Mono8/,
      );
      assert.equal(images(r.events).length, 0);
    } finally {
      await r.close();
    }
  }
});

Deno.test("gige backend: malformed stream packets are dropped and counted; images unaffected", async () => {
  const r = await rig({ GIGE_NUM_IMAGES: "2" }, {}, (camera) => {
    camera.junkPerFrame = 3;
  });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    await r.device.acquire(0.001, AbortSignal.timeout(10_000));
    assert.equal(images(r.events).length, 2);
    assert.ok(r.device.streamStats().malformed >= 6, JSON.stringify(r.device.streamStats()));
    assert.deepEqual(
      Array.from(images(r.events)[1].images.camera),
      expected(64, 48, r.camera.framesSent[1], 0xff),
    );
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: cancel stops the camera and emits cancel-data", async () => {
  const r = await rig({ GIGE_TRIGGER: "external" });
  try {
    await r.device.initialize(AbortSignal.timeout(10_000));
    const acquiring = r.device.acquire(0.001, AbortSignal.timeout(10_000));
    while (!r.events.some((e) => e.type === "start-data")) {
      await new Promise((res) => setTimeout(res, 5));
    }
    await r.device.cancel();
    await acquiring;
    assert.deepEqual(r.events.map((e) => e.type).filter((t) => t.endsWith("-data")), [
      "start-data",
      "cancel-data",
    ]);
    assert.equal(r.camera.registers.get(SimRegister.ACQUISITION_COMMAND), 0, "AcquisitionStop");
  } finally {
    await r.close();
  }
});

Deno.test("gige backend: `view --backend gige` shows the camera's frames", async () => {
  const camera = await SimCamera.start({ width: 48, height: 32 });
  try {
    const term = fakeTerminal({ input: false, cols: 120, rows: 40 });
    const messages: string[] = [];
    const code = await runView(
      ["--backend", "gige", "--auto-acquire", "0.001", "--frames", "2", "--output", "halfblock"],
      {
        io: term,
        env: { GIGE_DEVICE_HOST: camera.hostSpec, GIGE_NUM_IMAGES: "2" },
        message: (m) => messages.push(m),
      },
    );
    assert.equal(code, EXIT.OK, messages.join("\n"));
    const status = term.text().split("\x1b[7m").at(-1)!;
    assert.ok(status.includes("48x32"), status);
    assert.ok(term.text().includes("camera"));
    assert.ok(camera.framesSent.length >= 4, `${camera.framesSent.length} frames sent`);
  } finally {
    await camera.close();
  }
});
