/**
 * Benchmark: render one 1028×512 uint32 EIGER-like frame (module gaps masked) for a 120×40-cell
 * terminal with 10×20-pixel cells, to sixel and to half blocks; stage timings; and our sixel
 * encoder against the `sixel` package's `sixelEncodeIndexed` (baseline) on the same indices.
 *
 * Run: ./node_modules/.bin/deno run -A scripts/bench/view_render.ts
 *
 * @module
 */

import { sixelEncodeIndexed } from "sixel/lib/SixelEncoder.js";
import { getColormap, paletteTriples } from "../../lib/view/colormap.ts";
import { imageStats } from "../../lib/view/contrast.ts";
import { indexImage, renderFrame } from "../../lib/view/render.ts";
import { resample, toIndices } from "../../lib/view/scale.ts";
import { encodeSixel } from "../../lib/view/sixel.ts";

const W = 1028;
const H = 512;
const data = new Uint32Array(W * H);
let seed = 1;
for (let i = 0; i < data.length; i++) {
  seed = (seed * 1103515245 + 12345) >>> 0;
  const x = i % W;
  const y = (i / W) | 0;
  const r = Math.hypot(x - 500, y - 260);
  data[i] = Math.round(1000 / (1 + r / 20) + (seed % 7));
  if (x % 258 === 256 || y === 255) data[i] = 0xffffffff; // module gaps
}
const mask = [0xffffffff];

/** Runs `fn` `n` times after a warm-up; prints median and best time per call. */
function bench(label: string, fn: () => number, n = 30): number {
  for (let i = 0; i < 10; i++) fn();
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    bytes = fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(n / 2)];
  console.log(
    `${label.padEnd(44)} median ${median.toFixed(2).padStart(6)} ms, best ${
      times[0].toFixed(2).padStart(6)
    } ms  ${bytes} bytes`,
  );
  return median;
}

const frame = { name: "threshold_1", data, offset: 0, width: W, height: H, mask };
const sixelScreen = { cols: 120, rows: 40, cellWidth: 10, cellHeight: 20 };
console.log(`frame ${W}x${H} uint32, terminal 120x40 cells (10x20 px): shown at 1028x512`);
for (const scale of ["linear", "log"] as const) {
  bench(`full pipeline → sixel, ${scale}`, () =>
    renderFrame([frame], {
      output: "sixel",
      screen: sixelScreen,
      scale,
      colormap: "viridis",
      contrastLevel: 2,
    }).bytes.length);
}
bench("full pipeline → half blocks 120x78 px", () =>
  renderFrame([frame], {
    output: "halfblock",
    screen: { cols: 120, rows: 40, cellWidth: 1, cellHeight: 2 },
    scale: "linear",
    colormap: "viridis",
    contrastLevel: 2,
  }).bytes.length);
bench("  stage: stats + percentiles (histogram)", () => {
  imageStats(data, 0, W * H, mask, 0.05, 99.9);
  return 0;
});
bench("  stage: resample 1:1", () => resample(frame, W, H, mask).length);
bench("  stage: resample area 1028x512 → 600x299", () => resample(frame, 600, 299, mask).length);
const values = resample(frame, W, H, mask);
bench("  stage: values → indices (log)", () => toIndices(values, W * H, 0, 1000, "log").length);
const { indices } = indexImage(frame, W, H, "linear", 2);
const map = getColormap("viridis");
const ours = bench("  stage: sixel encode (ours)", () => encodeSixel(indices, W, H, map).length);
const palette = paletteTriples(map);
const base = bench(
  "  baseline: sixel package sixelEncodeIndexed",
  () => sixelEncodeIndexed(indices, W, H, palette, true).length,
  10,
);
console.log(`sixel encoder speed-up vs sixel package: ${(base / ours).toFixed(1)}x`);
