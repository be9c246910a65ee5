import { StreamDecoder } from "../devices/eiger/decode_pool.ts";
import { encodeStreamMessage } from "../devices/eiger/stream2.ts";
const t0 = performance.now();
let n = 0;
const d = new StreamDecoder({ workers: Number(Deno.args[0] ?? 2) }, (e) => {
  n++;
  if (n === 1 || n % 20 === 0) console.log(n, (performance.now() - t0).toFixed(0), e.kind);
});
const img = new Uint32Array(1028 * 512).map((_, i) => (i * 2654435761 >>> 28) & 3);
const frames = [];
for (let i = 0; i < 101; i++) {
  frames.push(
    encodeStreamMessage({
      type: "image",
      seriesId: 1,
      seriesUniqueId: "u",
      imageId: i,
      realTime: [1, 1],
      seriesDate: "2020-01-01T00:00:00Z",
      startTime: [0, 1],
      stopTime: [1, 1],
      data: new Map([["threshold_1", { dims: [512, 1028], data: img }]]),
    }),
  );
}
console.log("encoded", (performance.now() - t0).toFixed(0), frames[0].length);
d.push(frames[0]);
await d.idle();
const t1 = performance.now();
for (let i = 1; i < 101; i++) d.push(frames[i]);
await d.idle();
console.log("100 frames", (performance.now() - t1).toFixed(0), "ms");
d.close();
