/**
 * Example application on the controller (besides the IOC and the viewer): runs a backend under
 * the controller, acquires `count` series and writes every series to files in `dir`:
 *
 * - `<ssqcnt>-<seriesNumber>-<channel>.raw`: the channel's pixels as they are in memory
 *   (`numImages*height*width` elements, row-major `[image][y][x]`, little-endian);
 * - `series.jsonl`: one JSON line per series (uuid, ids, duration, geometry, pixel type,
 *   timestamps, exposures, file names).
 *
 * Do or die: an ERROR or FAIL of the controller ends the program with its error text.
 *
 * ```sh
 * ./node_modules/.bin/deno run -A examples/series_to_file.ts --backend sim --dir out --count 3
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import type { Device, DeviceContext } from "../devices/contract.ts";
import { resolveBackend } from "../devices/registry.ts";
import { createController, type Frame } from "../lib/controller.ts";
import { errorMessage } from "../core/errors.ts";

/** Options of {@link writeSeries}. */
export interface SeriesToFileOptions {
  /** Creates the backend (e.g. `(ctx) => new SimDevice(ctx)`). */
  device: (ctx: DeviceContext) => Device;
  /** Output folder (created if missing). */
  dir: string;
  /** Number of series to acquire. */
  count: number;
  /** Exposure duration of each series, seconds. */
  duration: number;
  /** Environment handed to the backend; default the process environment. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Acquires `count` series and writes each to `dir`; resolves with the files written. */
export async function writeSeries(options: SeriesToFileOptions): Promise<string[]> {
  await Deno.mkdir(options.dir, { recursive: true });
  const files: string[] = [];
  const controller = createController({
    device: options.device,
    env: options.env,
    runtimeInterval: 0,
  });
  let wake: () => void = () => {};
  let written = 0;
  controller.subscribe({
    state: () => wake(),
    // The pixels are readable until this promise settles: write them, then let go.
    data: async (frame) => {
      files.push(...await writeFrame(options.dir, frame));
      written++;
    },
  });
  /** Waits until `done()` holds; throws when the controller reports ERROR or FAIL. */
  const until = async (done: () => boolean) => {
    while (!done()) {
      const state = controller.state;
      if (state === "ERROR" || state === "FAIL") {
        throw new Error(`controller ${state}: ${controller.errors.join("; ")}`);
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  try {
    await controller.start();
    await until(() => controller.state === "READY");
    for (let i = 0; i < options.count; i++) {
      await controller.request({ kind: "command", command: "Acquire", duration: options.duration });
      await until(() => written === i + 1 && controller.state === "READY");
    }
  } finally {
    await controller.stop();
  }
  return files;
}

/** Writes one frame: a raw file per channel and a line in `series.jsonl`. */
async function writeFrame(dir: string, frame: Frame): Promise<string[]> {
  const names: string[] = [];
  for (const [channel, pixels] of Object.entries(frame.images)) {
    const name = `${frame.ssqcnt}-${frame.seriesNumber}-${channel}.raw`;
    await Deno.writeFile(
      join(dir, name),
      new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength),
    );
    names.push(name);
  }
  const { config } = frame;
  const line = JSON.stringify({
    uuid: frame.uuid,
    ssqcnt: frame.ssqcnt,
    seriesId: frame.seriesId,
    seriesNumber: frame.seriesNumber,
    duration: frame.duration,
    numImages: config.numImages,
    width: config.width,
    height: config.height,
    pixelType: config.pixelType,
    timestamps: [...frame.timestamps],
    exposures: [...frame.exposures],
    files: names,
  });
  await Deno.writeTextFile(join(dir, "series.jsonl"), line + "\n", { append: true });
  return names.map((n) => join(dir, n));
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      backend: { type: "string", default: "sim" },
      dir: { type: "string", default: "series" },
      count: { type: "string", default: "1" },
      duration: { type: "string", default: "0.1" },
    },
  });
  try {
    const Backend = await resolveBackend(values.backend!);
    const files = await writeSeries({
      device: (ctx) => new Backend(ctx),
      dir: values.dir!,
      count: Number(values.count),
      duration: Number(values.duration),
    });
    console.log(`series_to_file: wrote ${files.length} files to ${values.dir}`);
  } catch (err) {
    console.error(`series_to_file: ${errorMessage(err)}`);
    Deno.exit(1);
  }
}
