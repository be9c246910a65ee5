/**
 * Round-trip cost of one EIGER snapshot acquisition through backend + simulator over loopback
 * (SIMPLON HTTP, ZMTP, stream v2 CBOR, bslz4 both ways), 1028×512 uint16, two thresholds.
 * Baseline in the same run: the simulator's own render+encode of one image message.
 *
 * Run: ./node_modules/.bin/deno run -A scripts/bench/eiger_acquire_bench.ts [count]
 *
 * @module
 */

import { EigerDevice } from "../../devices/eiger/backend.ts";
import { makePattern, renderImage } from "../../devices/eiger_sim/images.ts";
import { encodeSimMessage } from "../../devices/eiger_sim/encode.ts";
import { startEigerSim } from "../../devices/eiger_sim/main.ts";
import { getLog } from "../../core/log.ts";

const count = Number(Deno.args[0] ?? 20);
const sim = await startEigerSim({ width: 1028, height: 512 });
const stop = new AbortController();
const device = new EigerDevice({
  emit: () => {},
  log: getLog("bench"),
  env: {
    EIGER_DEVICE_HOST: "127.0.0.1",
    EIGER_API_PORT: String(sim.apiPort),
    EIGER_STREAM_PORT: String(sim.streamPort),
    EIGER_X2_THRESHOLD2_ENERGY: "9000",
  },
  signal: stop.signal,
});
await device.startup();
await device.initialize(AbortSignal.timeout(30_000));

const pattern = makePattern(1028, 512);
let t = performance.now();
for (let i = 0; i < count; i++) {
  const data = {
    threshold_1: renderImage(pattern, "uint16", 0.001, 100, i),
    threshold_2: renderImage(pattern, "uint16", 0.001, 30, i + 1),
  };
  encodeSimMessage({
    type: "image",
    seriesId: 1,
    uniqueId: "X",
    imageId: 0,
    seriesDate: new Date(),
    realTime: [1, 1000],
    startTime: [0, 1000],
    stopTime: [1, 1000],
    width: 1028,
    height: 512,
    dtype: "uint16",
    data,
  });
}
const produce = (performance.now() - t) / count;

await device.acquire(0.001, AbortSignal.timeout(30_000)); // warm-up
t = performance.now();
for (let i = 0; i < count; i++) await device.acquire(0.001, AbortSignal.timeout(30_000));
const acquire = (performance.now() - t) / count;

console.log(`sim render+encode of one 2-channel image message: ${produce.toFixed(1)} ms`);
console.log(`full snapshot acquisition (0.001 s exposure):      ${acquire.toFixed(1)} ms`);
console.log(`ratio acquisition / produce: ${(acquire / produce).toFixed(2)}`);
await device.teardown();
stop.abort();
await sim.close();
