/**
 * A scriptable fake device backend for controller tests: every command delegates to a function
 * the test provides, and calls are recorded.
 *
 * @module
 */

import type {
  Device,
  DeviceConfig,
  DeviceContext,
  LentSeriesStacks,
  MetaValue,
  PixelArray,
} from "../../devices/contract.ts";

/** Test configuration: two channels, 2 images of 4x3 uint16. */
export function fakeConfig(overrides: Partial<DeviceConfig> = {}): DeviceConfig {
  return {
    channels: [{ name: "a", meta: { enerj: 1 } }, { name: "b", meta: { enerj: 2 } }],
    numImages: 2,
    width: 4,
    height: 3,
    pixelType: "uint16",
    ...overrides,
  };
}

/** One image per channel of `config`, filled with `value + channel index`. */
export function fakeImages(config: DeviceConfig, value: number): Record<string, PixelArray> {
  const images: Record<string, PixelArray> = {};
  config.channels.forEach((ch, i) => {
    images[ch.name] = new Uint16Array(config.width * config.height).fill(value + i);
  });
  return images;
}

/** Behaviour of a {@link FakeDevice}; unset commands resolve at once. */
export interface FakeScript {
  initialized?: boolean;
  config?: DeviceConfig;
  /** What {@link FakeDevice.overdueSeconds} answers; undefined = the method is absent. */
  overdue?: number;
  startup?: (dev: FakeDevice) => Promise<void>;
  initialize?: (dev: FakeDevice) => Promise<void>;
  acquire?: (dev: FakeDevice, duration: number, signal: AbortSignal) => Promise<void>;
  cancel?: (dev: FakeDevice) => Promise<void>;
  clear?: (dev: FakeDevice) => Promise<void>;
  adjustChannel?: (
    dev: FakeDevice,
    channel: string,
    values: Record<string, MetaValue>,
  ) => Promise<void>;
  /** Makes the device take lent series stacks (`Device.lendSeriesStacks`); absent otherwise. */
  lendSeriesStacks?: (dev: FakeDevice, stacks: LentSeriesStacks | undefined) => void;
}

/** The fake backend; `calls` lists command names in call order. */
export class FakeDevice implements Device {
  readonly calls: string[] = [];
  initialized: boolean;
  config: DeviceConfig | undefined;
  tornDown = false;

  constructor(readonly ctx: DeviceContext, readonly script: FakeScript = {}) {
    this.initialized = script.initialized ?? false;
    this.config = this.initialized ? (script.config ?? fakeConfig()) : undefined;
    if (script.overdue !== undefined) {
      const overdue = script.overdue;
      this.overdueSeconds = () => overdue;
    }
    const lend = script.lendSeriesStacks;
    if (lend !== undefined) this.lendSeriesStacks = (stacks) => lend(this, stacks);
  }

  /** Present only when the script sets `lendSeriesStacks`. */
  lendSeriesStacks?: (stacks: LentSeriesStacks | undefined) => void;

  /** Present only when the script sets `overdue` (like a backend with its own allowance). */
  overdueSeconds?: () => number;

  /** Emits a full valid series `id` of `config.numImages` images. */
  emitSeries(id: string): void {
    const cfg = this.config!;
    this.ctx.emit({ type: "start-data", seriesId: id, seriesNumber: 7 });
    for (let i = 0; i < cfg.numImages; i++) {
      this.ctx.emit({
        type: "image-data",
        seriesId: id,
        index: i,
        timestamp: 100 + i,
        exposure: 0.5,
        images: fakeImages(cfg, 10 * i),
      });
    }
    this.ctx.emit({ type: "end-data", seriesId: id });
  }

  startup(): Promise<void> {
    this.calls.push("startup");
    return this.script.startup?.(this) ?? Promise.resolve();
  }
  teardown(): Promise<void> {
    this.tornDown = true;
    return Promise.resolve();
  }
  isInitialized(): boolean {
    return this.initialized;
  }
  getConfig(): DeviceConfig | undefined {
    return this.config === undefined ? undefined : structuredClone(this.config);
  }
  getRuntime(): Record<string, MetaValue | boolean> {
    return { temperature: 21 };
  }
  async initialize(): Promise<void> {
    this.calls.push("initialize");
    if (this.script.initialize) await this.script.initialize(this);
    else {
      this.initialized = true;
      this.config = this.script.config ?? fakeConfig();
    }
  }
  acquire(duration: number, signal: AbortSignal): Promise<void> {
    this.calls.push("acquire");
    if (this.script.acquire) return this.script.acquire(this, duration, signal);
    this.emitSeries(`s${this.calls.length}`);
    return Promise.resolve();
  }
  cancel(): Promise<void> {
    this.calls.push("cancel");
    return this.script.cancel?.(this) ?? Promise.resolve();
  }
  clear(): Promise<void> {
    this.calls.push("clear");
    return this.script.clear?.(this) ?? Promise.resolve();
  }
  adjustChannel(channel: string, values: Record<string, MetaValue>): Promise<void> {
    this.calls.push("adjustChannel");
    if (this.script.adjustChannel) return this.script.adjustChannel(this, channel, values);
    this.ctx.emit({ type: "channel-state", channel, values });
    return Promise.resolve();
  }
}
