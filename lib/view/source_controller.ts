/**
 * View source that runs a backend under the same controller as the IOC, with the viewer as the
 * application (the original `diss-view`): every finished series is shown; auto-acquire keeps
 * acquiring.
 *
 * @module
 */

import type { DeviceClass } from "../../devices/contract.ts";
import { type Controller, createController, type Frame } from "../controller.ts";
import { defaultMaskValues, type MaskValues } from "./contrast.ts";
import type { ChannelData, SourceChange, ViewSnapshot, ViewSource } from "./source.ts";

/** Options of {@link createControllerSource}. */
export interface ControllerSourceOptions {
  /** Backend class to run. */
  backend: DeviceClass;
  /** Auto-acquire duration in seconds (undefined = off; then nothing is acquired). */
  autoAcquire?: number;
  /** Environment for the backend; default the process environment. */
  env?: Record<string, string | undefined>;
  /** Mask values overriding the per-pixel-type default. */
  mask?: MaskValues;
}

/** Creates a source around a fresh controller and backend. */
export function createControllerSource(options: ControllerSourceOptions): ViewSource {
  let listener: (change: SourceChange, message?: string) => void = () => {};
  let controller: Controller | undefined;
  let snapshot: ViewSnapshot = { state: "INIT", seriesId: "", ssqcnt: undefined, channels: [] };
  /** Gives back the pixels of the frame on screen (Frame.retain), once a newer one replaces it. */
  let giveBackShown: (() => void) | undefined;

  function showNothing(): void {
    const giveBack = giveBackShown;
    giveBackShown = undefined;
    giveBack?.();
  }

  function onFrame(frame: Frame): void {
    const cfg = frame.config;
    const mask = options.mask ?? defaultMaskValues(cfg.pixelType);
    const channels: ChannelData[] = cfg.channels.map((ch) => ({
      name: ch.name,
      // Pixels are lent to data hooks: retained below (no copy) until the next frame replaces them.
      data: frame.images[ch.name],
      numImages: cfg.numImages,
      width: cfg.width,
      height: cfg.height,
      mask,
    }));
    const giveBack = frame.retain();
    showNothing();
    giveBackShown = giveBack;
    snapshot = { ...snapshot, seriesId: frame.uuid, ssqcnt: frame.ssqcnt, channels };
    listener("image");
  }

  return {
    async start(signal) {
      const c = createController({
        device: (ctx) => new options.backend(ctx),
        autoAcquire: options.autoAcquire,
        env: options.env,
      });
      controller = c;
      const ready = new Promise<void>((resolve, reject) => {
        c.subscribe({
          state: ({ state }) => {
            snapshot = { ...snapshot, state };
            listener("status");
            if (state === "READY") resolve();
            if (state === "FAIL") reject(new Error(`backend failed: ${c.errors.join("; ")}`));
          },
          config: (cfg) => {
            const mask = options.mask ?? defaultMaskValues(cfg.pixelType);
            showNothing();
            snapshot = {
              ...snapshot,
              channels: cfg.channels.map((ch) => ({
                name: ch.name,
                data: new Uint8Array(0),
                numImages: 0,
                width: cfg.width,
                height: cfg.height,
                mask,
              })),
            };
          },
          seriesStart: (s) => {
            snapshot = { ...snapshot, seriesId: s.uuid, ssqcnt: s.ssqcnt };
          },
          data: onFrame,
          errors: (errs) => {
            if (errs.length > 0) listener("status", errs[0]);
          },
        });
        signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true });
      });
      await c.start();
      await ready;
    },
    snapshot: () => snapshot,
    onChange(l) {
      listener = l;
    },
    async close() {
      await controller?.stop();
      showNothing();
    },
  };
}
