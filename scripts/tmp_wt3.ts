import { StreamDecoder } from "../devices/eiger/decode_pool.ts";
import { encodeStreamMessage } from "../devices/eiger/stream2.ts";
const t0 = performance.now();
const d = new StreamDecoder(
  { workers: Number(Deno.args[0] ?? 2) },
  (e) => console.log(performance.now() - t0, JSON.stringify(e).slice(0, 200)),
);
const img = new Uint32Array(1028 * 512).map((_, i) => i % 7);
for (let i = 0; i < 3; i++) {
  d.push(
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
await d.idle();
d.close();
