/**
 * End to end for the EIGER backend: `diss-ioc --backend eiger` (a subprocess, as a user runs it)
 * against the in-process DCU simulator (real SIMPLON HTTP and ZMTP stream on loopback); images
 * read through real libca (pyepics) must equal, pixel for pixel, what the simulator streamed.
 */
import assert from "node:assert/strict";
import { PYEPICS_ACQUIRE_ONCE, runPyepics } from "./support/epics_env.ts";
import { startIoc } from "./support/ioc_process.ts";
import { startTestSim } from "./support/eiger.ts";
import type { SimImage, SimMessage } from "../devices/eiger_sim/detector.ts";

/** A simulator of 16-bit 40×24 images that records every image message it streams. */
async function recordingSim() {
  const sim = await startTestSim({ width: 40, height: 24, bitDepth: 16 });
  const sent: SimImage[] = [];
  const output = sim.detector.output!;
  sim.detector.output = {
    send(message: SimMessage) {
      if (message.type === "image") sent.push(message);
      output.send(message);
    },
    drop: () => output.drop(),
  };
  return { sim, sent };
}

/** pyepics: one acquisition, then per channel the array sizes and the image PV (and `extra` reads). */
function acquireAndReadScript(extra = ""): string {
  return `
P = sys.argv[1]
res = {}
${PYEPICS_ACQUIRE_ONCE}res['channels'] = list(epics.caget(P + 'channels'))
for c in res['channels']:
    n = [int(epics.caget(P + c + ':asize%d' % i)) for i in range(3)]
    img = epics.caget(P + c + ':image', use_monitor=False)
    res[c] = {'asize': n, 'image': [int(v) for v in img]${extra}}
out(res)
`;
}

Deno.test("eiger e2e: IOC against eiger-sim, two thresholds, images equal what was streamed", async () => {
  const { sim, sent } = await recordingSim();
  try {
    const ioc = await startIoc(
      ["--backend", "eiger", "--prefix", "EIG:e2e:"],
      sim.env({
        EIGER_DEVICE_MODE: "snapshot",
        EIGER_X2_THRESHOLD1_ENERGY: "8000",
        EIGER_X2_THRESHOLD2_ENERGY: "12000",
      }),
    );
    try {
      const r = await runPyepics(
        acquireAndReadScript(
          ",\n              'energy': float(epics.caget(P + c + ':threshold_energy'))",
        ),
        { udpPort: ioc.udpPort, args: ["EIG:e2e:"], timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stderr + r.stdout + ioc.lines.join("\n"));
      const res = JSON.parse(r.stdout);
      assert.equal(res.ready, true, ioc.lines.join("\n"));
      assert.equal(res.done, true, ioc.lines.join("\n"));
      assert.equal(res.state, "READY");
      assert.deepEqual(res.channels, ["threshold_1", "threshold_2"]);
      assert.equal(sent.length, 1, "one image message streamed");
      for (const ch of res.channels) {
        assert.deepEqual(res[ch].asize, [1, 24, 40]);
        const streamed = sent[0].data[ch];
        assert.ok(streamed !== undefined, `simulator streamed ${ch}`);
        assert.deepEqual(res[ch].image, Array.from(streamed), `${ch} pixels`);
      }
      assert.equal(res.threshold_1.energy, 8000);
      assert.equal(res.threshold_2.energy, 12000);
      assert.equal(await ioc.stop("SIGTERM"), 0);
    } finally {
      await ioc.stop("SIGKILL");
    }
  } finally {
    await sim.close();
  }
});

Deno.test("eiger e2e: a 3-image series decoded in place by the workers into the series stacks equals what was streamed", async () => {
  const { sim, sent } = await recordingSim();
  try {
    const ioc = await startIoc(
      ["--backend", "eiger", "--prefix", "EIG:inplace:"],
      sim.env({
        EIGER_DEVICE_MODE: "snapshot",
        EIGER_NUM_IMAGES: "3",
        EIGER_DECODE_WORKERS: "2",
        EIGER_X2_THRESHOLD1_ENERGY: "8000",
        EIGER_X2_THRESHOLD2_ENERGY: "12000",
      }),
    );
    try {
      // Stacks are lent only once prepared.
      await ioc.waitForLine(/msg="Series stack ready"/, 60_000);
      const r = await runPyepics(
        acquireAndReadScript(),
        { udpPort: ioc.udpPort, args: ["EIG:inplace:"], timeoutMs: 60_000 },
      );
      const log = () => ioc.lines.join("\n");
      assert.equal(r.code, 0, r.stderr + r.stdout + log());
      const res = JSON.parse(r.stdout);
      assert.equal(res.state, "READY", log());
      const received = await ioc.waitForLine(/msg="Series received"/, 30_000);
      assert.match(
        received,
        /images=3 .*in_place=3\b/,
        `all three decoded into the stack: ${received}`,
      );
      // Three frames: at most three were ever waiting, and the bound is the default.
      assert.match(received, /max_backlog=[123] backlog_bound=256\b/, received);
      assert.equal(sent.length, 3, "three image messages streamed");
      assert.deepEqual(res.channels, ["threshold_1", "threshold_2"]);
      for (const ch of res.channels) {
        assert.deepEqual(res[ch].asize, [3, 24, 40]);
        const streamed = sent.flatMap((image) => Array.from(image.data[ch]!));
        assert.deepEqual(res[ch].image, streamed, `${ch} pixels of the three images`);
      }
      assert.equal(await ioc.stop("SIGTERM"), 0);
    } finally {
      await ioc.stop("SIGKILL");
    }
  } finally {
    await sim.close();
  }
});
