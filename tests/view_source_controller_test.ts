/**
 * The viewer's controller source shows frames without copying them: it retains each frame's
 * pixels (Frame.retain) until the next frame replaces it, so a backend that recycles released
 * buffers never overwrites the image on screen.
 */

import assert from "node:assert/strict";
import { SimDevice } from "../devices/sim.ts";
import { createControllerSource } from "../lib/view/source_controller.ts";
import type { PixelArray } from "../devices/contract.ts";

Deno.test("view source: the shown frame stays intact while the backend recycles buffers", async () => {
  const source = createControllerSource({
    backend: SimDevice,
    autoAcquire: 0.001,
    env: { SIM_CHANNELS: "a", SIM_IMAGE_SIZE: "64x48", SIM_NUM_IMAGES: "1", SIM_SEED: "3" },
  });
  const shown: { data: PixelArray; copy: PixelArray }[] = [];
  const checks: string[] = [];
  let done!: () => void;
  const enough = new Promise<void>((resolve) => done = resolve);
  source.onChange((change) => {
    if (change !== "image" || shown.length >= 4) return;
    const data = source.snapshot().channels[0].data as PixelArray;
    // Checked synchronously when the next frame arrives: the previous one must be untouched.
    const previous = shown.at(-1);
    if (previous !== undefined) {
      if (previous.data === data) checks.push("same array shown twice");
      else if (!previous.data.every((v, i) => v === previous.copy[i])) {
        checks.push(`frame ${shown.length} was overwritten before it was replaced`);
      }
    }
    shown.push({ data, copy: data.slice() });
    if (shown.length === 4) done();
  });
  const ac = new AbortController();
  await source.start(ac.signal);
  await enough;
  await source.close();
  assert.deepEqual(checks, []);
  // The frames differ, so an overwrite would have been seen.
  assert.ok(shown.some((s, i) => i > 0 && !s.copy.every((v, j) => v === shown[0].copy[j])));
});
