/**
 * The series assembler: the one place that checks a backend's data events against the data
 * protocol of the contract — StartData, exactly `numImages` ImageData in index order
 * ({@link imageOrderProblem}), then EndData or CancelData, all of one series id, images of the
 * configured channels, geometry and pixel type — and assembles the accepted images into a
 * {@link Frame}. Free of I/O: the controller's runner feeds it events and turns its outcomes into
 * inputs of the state table (`lib/controller_table.ts`).
 *
 * Pixels follow the ownership rule of the contract (`devices/contract.ts`): a single-image series
 * hands the backend's arrays on as they are; a multi-image series is copied into one stack per
 * channel (reused by the next series of the same geometry once the frame is released), and each
 * image is released to its backend right after its copy.
 *
 * Stacks are big (100 images of 1028×512 uint32: 210 MB), and the first write to fresh memory is
 * what costs: measured here, copying an image into a new stack took 8 ms against 0.12 ms into one
 * already written (page faults). So stacks are never given back while the geometry stays, and
 * {@link SeriesAssembler.warm} touches new ones ahead of use in small steps (the runner calls it
 * on idle turns): a spare stack for the next series while none is open, the open series' stack
 * ahead of its images. Two sets of stacks are kept: while idle, the assembler prepares stacks until
 * two sets exist, counting those a reader still holds (the image PVs serve the last series until
 * the next one replaces it), so the next two series find their stacks ready. Prepared spare stacks
 * are read again every few seconds while idle ({@link SeriesAssembler.refresh}): memory left alone
 * can be slow to write again.
 *
 * Stacks live in shared memory (SharedArrayBuffer), so a backend's decode threads can write
 * images straight into them: {@link SeriesAssembler.lendable} gives the open series' stacks for
 * that once they are fully prepared (never while {@link SeriesAssembler.warm} may still write to
 * them), and an image that arrives as a view of exactly its slot is not copied.
 *
 * @module
 */

import {
  type DataEvent,
  type DeviceConfig,
  imageOrderProblem,
  type MetaValue,
  PIXEL_ARRAY_TYPES,
  type PixelArray,
} from "../devices/contract.ts";

/** The acquisition currently running (or last started). */
export interface SeriesInfo {
  /** Locally generated UUID of the series. */
  uuid: string;
  /** Short sequence counter 0..15, incremented per started acquisition. */
  ssqcnt: number;
  /** Requested exposure duration in seconds. */
  duration: number;
  /** The device's series id (from StartData), undefined before StartData. */
  seriesId?: string;
  /** The device's numeric series number (from StartData), -1 when unknown. */
  seriesNumber: number;
  /** Start of the acquisition (clock ms). */
  startedAt: number;
}

/** A complete image series handed to data hooks in PROCESS. */
export interface Frame extends Readonly<SeriesInfo> {
  /** Configuration the images follow. */
  config: DeviceConfig;
  /** Pixels by channel, `numImages*height*width` elements each, row-major [image][y][x]. */
  images: Record<string, PixelArray>;
  /** Start time of each image, Unix seconds. */
  timestamps: Float64Array;
  /** Real exposure time of each image, seconds. */
  exposures: Float64Array;
  /** Per-image facts the device sent with each image (`ImageDataEvent.meta`), if any. */
  imageMeta: readonly (Readonly<Record<string, MetaValue>> | undefined)[];
  /**
   * Keeps the pixels readable beyond the data hook (see the ownership rule in
   * `devices/contract.ts`): returns the function that gives them back. Until every such function
   * was called (at most once each counts), nobody writes to `images`.
   */
  retain(): () => void;
}

/**
 * Sets of series stacks kept: the one the last frame's readers (the image PVs) still hold plus
 * the one the next series fills.
 */
const STACK_SETS = 2;
/** The page size {@link SeriesAssembler.refresh} reads one element of. */
const PAGE_BYTES = 4096;

/** What an accepted or refused data event means for the state table. */
export type AssemblyOutcome =
  | { kind: "series-start" }
  | { kind: "image" }
  | { kind: "series-end" }
  | { kind: "series-cancel" }
  | { kind: "data-violation"; detail: string };

const DATA_NAMES: Record<DataEvent["type"], string> = {
  "start-data": "StartData",
  "image-data": "ImageData",
  "end-data": "EndData",
  "cancel-data": "CancelData",
};

interface OpenSeries {
  info: SeriesInfo;
  config: DeviceConfig;
  received: number;
  images: Record<string, PixelArray>;
  /** Backend releases of images the frame holds without a copy (single-image series). */
  releases: (() => void)[];
  timestamps: Float64Array;
  exposures: Float64Array;
  imageMeta: (Readonly<Record<string, MetaValue>> | undefined)[];
  closed?: "end" | "cancel";
}

/** Assembles one series at a time; see the module doc. */
export class SeriesAssembler {
  #open: OpenSeries | undefined;
  #lastClosed: { seriesId: string; how: string } | undefined;
  /** Stacks (by channel) nobody uses, for the next series; at most {@link STACK_SETS}. */
  #spares: Record<string, PixelArray>[] = [];
  /** Ended series whose frame someone still holds (its stacks are in use). */
  #lent = new Set<OpenSeries>();
  /** Elements of each stack written at least once (absent: all of it). */
  #warmed = new WeakMap<PixelArray, number>();
  /** Where the running {@link refresh} pass goes on. */
  #refreshAt: { stack: PixelArray; from: number } | undefined;
  /** The sum of the last refresh reads (never used; it keeps the reads). */
  #refreshSum = 0;
  #onReleaseError: (err: unknown) => void;

  /** `onReleaseError` hears of a backend release function that threw (the images are done). */
  constructor(onReleaseError: (err: unknown) => void = () => {}) {
    this.#onReleaseError = onReleaseError;
  }

  /** The open series (until {@link close} or {@link abort}). */
  get series(): Readonly<SeriesInfo> | undefined {
    return this.#open?.info;
  }

  /** Images accepted in the open series. */
  get received(): number {
    return this.#open?.received ?? 0;
  }

  /** Opens a series (an acquisition started); a still open one is aborted first. */
  open(info: SeriesInfo, config: DeviceConfig): void {
    if (this.#open !== undefined) this.abort();
    const images: Record<string, PixelArray> = config.numImages > 1
      ? { ...this.#stacksFor(config) }
      : {};
    this.#open = {
      info,
      config,
      received: 0,
      images,
      releases: [],
      timestamps: new Float64Array(config.numImages),
      exposures: new Float64Array(config.numImages),
      imageMeta: [],
    };
  }

  /**
   * The stacks of the open multi-image series, to lend to the backend to write images in place
   * (`Device.lendSeriesStacks`), or undefined: no series open, a single-image series, or stacks
   * that are not fully prepared yet (warming still writes to them) or not shared memory.
   */
  lendable(): { config: DeviceConfig; images: Record<string, PixelArray> } | undefined {
    const s = this.#open;
    if (s === undefined || s.closed !== undefined || s.config.numImages <= 1) return undefined;
    if (s.received > 0) return undefined; // lent before the first image, or not at all
    const stacks = Object.values(s.images);
    const ready = stacks.every((stack) =>
      stack.buffer instanceof SharedArrayBuffer && !this.#warmed.has(stack)
    );
    return ready ? { config: s.config, images: { ...s.images } } : undefined;
  }

  /**
   * Writes (zeros) up to `maxBytes` of stack memory that was never written: of the open series'
   * stacks ahead of its images, or — while no series is open — of spare stacks for the next series
   * of `config` (allocating them). Returns true while more remains to be done.
   */
  warm(config: DeviceConfig, maxBytes: number): boolean {
    if (config.numImages <= 1) return false;
    const s = this.#open;
    if (s !== undefined && s.closed === undefined) {
      return this.#warmStacks(Object.values(s.images), maxBytes);
    }
    if (s !== undefined) return false; // PROCESS: the frame's stacks are in use
    // Idle: the next two series should find stacks ready (the last frame may still be held).
    const stacks: PixelArray[] = [];
    const fits = this.#spares.filter((set) => this.#fits(set, config));
    if (fits.length + this.#lent.size < STACK_SETS) {
      const set: Record<string, PixelArray> = {};
      for (const ch of config.channels) set[ch.name] = this.#newStack(config);
      this.#keepSpare(set);
      fits.push(set);
    }
    for (const set of fits) stacks.push(...Object.values(set));
    return this.#warmStacks(stacks, maxBytes) || fits.length + this.#lent.size < STACK_SETS;
  }

  /**
   * Reads one element per 4 KiB page of the prepared spare stacks that fit `config`, about
   * `maxBytes` of stack per call, where the last call stopped; true while the pass goes on, false
   * at its end (the next call starts a new pass) and while a series is open. Memory left alone
   * for a while can be slow to write again (measured on this project's VM: a 2 MB image written
   * into stack memory idle for 40 s took 0.67–1.6 ms against 0.09 ms), and the next series' decode
   * threads would pay that at detector speed; the runner calls this on idle turns every few
   * seconds while idle.
   */
  refresh(config: DeviceConfig, maxBytes: number): boolean {
    if (config.numImages <= 1 || (this.#open !== undefined && this.#open.closed === undefined)) {
      this.#refreshAt = undefined;
      return false;
    }
    const stacks = this.#spares.filter((set) => this.#fits(set, config))
      .flatMap((set) => Object.values(set)).filter((stack) => !this.#warmed.has(stack));
    let i = 0;
    let from = 0;
    const at = this.#refreshAt === undefined ? -1 : stacks.indexOf(this.#refreshAt.stack);
    if (at >= 0) [i, from] = [at, this.#refreshAt!.from];
    let budget = maxBytes;
    for (; i < stacks.length; i++, from = 0) {
      const stack = stacks[i];
      const step = PAGE_BYTES / stack.BYTES_PER_ELEMENT;
      const to = Math.min(stack.length, from + Math.ceil(budget / stack.BYTES_PER_ELEMENT));
      let sum = 0;
      for (let e = from; e < to; e += step) sum += stack[e];
      this.#refreshSum = sum; // kept, so that no engine can drop the reads
      budget -= (to - from) * stack.BYTES_PER_ELEMENT;
      if (to < stack.length) {
        this.#refreshAt = { stack, from: to };
        return true;
      }
    }
    this.#refreshAt = undefined;
    return false;
  }

  #warmStacks(stacks: PixelArray[], maxBytes: number): boolean {
    let budget = maxBytes;
    for (const stack of stacks) {
      const from = this.#warmed.get(stack);
      if (from === undefined) continue;
      const to = Math.min(stack.length, from + Math.floor(budget / stack.BYTES_PER_ELEMENT));
      stack.fill(0, from, to);
      budget -= (to - from) * stack.BYTES_PER_ELEMENT;
      if (to >= stack.length) this.#warmed.delete(stack);
      else {
        this.#warmed.set(stack, to);
        return true;
      }
    }
    return false;
  }

  /** A stack for `config` that was never written yet (shared memory, see the module doc). */
  #newStack(config: DeviceConfig): PixelArray {
    const Ctor = PIXEL_ARRAY_TYPES[config.pixelType];
    const elements = config.width * config.height * config.numImages;
    const stack = new Ctor(new SharedArrayBuffer(elements * Ctor.BYTES_PER_ELEMENT));
    this.#warmed.set(stack, 0);
    return stack;
  }

  /** Whether a set of stacks has one of the right type and length for every channel of `config`. */
  #fits(set: Record<string, PixelArray>, config: DeviceConfig): boolean {
    const Ctor = PIXEL_ARRAY_TYPES[config.pixelType];
    const length = config.width * config.height * config.numImages;
    return config.channels.every((ch) => {
      const stack = set[ch.name];
      return stack instanceof Ctor && stack.length === length;
    });
  }

  /** Spare stacks that fit `config` (taken from the spares), else new ones. */
  #stacksFor(config: DeviceConfig): Record<string, PixelArray> {
    const i = this.#spares.findLastIndex((set) => this.#fits(set, config));
    if (i >= 0) return this.#spares.splice(i, 1)[0];
    const set: Record<string, PixelArray> = {};
    for (const ch of config.channels) set[ch.name] = this.#newStack(config);
    return set;
  }

  /** Keeps a set of stacks for later series (the oldest beyond the bound is dropped). */
  #keepSpare(set: Record<string, PixelArray>): void {
    this.#spares.push(set);
    if (this.#spares.length > STACK_SETS) this.#spares.shift();
  }

  /** Checks one data event and stores its images; the outcome says what it meant. */
  accept(ev: DataEvent): AssemblyOutcome {
    const name = DATA_NAMES[ev.type];
    const s = this.#open;
    if (s === undefined || s.closed !== undefined) {
      const closed = s?.closed !== undefined
        ? { seriesId: s.info.seriesId ?? "", how: s.closed }
        : this.#lastClosed;
      if (closed !== undefined && closed.seriesId === ev.seriesId) {
        const after = closed.how === "cancel"
          ? "CancelData"
          : closed.how === "end"
          ? "EndData"
          : "abort";
        return violation(`${name} after ${after} of series ${ev.seriesId}`);
      }
      return violation(`${name} outside an acquisition (series ${ev.seriesId})`);
    }
    const cfg = s.config;
    if (ev.type === "start-data") {
      if (s.info.seriesId !== undefined) {
        return violation(`Second StartData (series ${ev.seriesId}) in series ${s.info.seriesId}`);
      }
      s.info.seriesId = ev.seriesId;
      s.info.seriesNumber = ev.seriesNumber;
      return { kind: "series-start" };
    }
    if (s.info.seriesId === undefined) {
      return violation(`${name} before StartData (series ${ev.seriesId})`);
    }
    if (ev.seriesId !== s.info.seriesId) {
      return violation(`${name} of wrong series ${ev.seriesId} (expected ${s.info.seriesId})`);
    }
    if (ev.type === "image-data") {
      const order = imageOrderProblem(ev.index, s.received, cfg.numImages);
      if (order !== undefined) {
        return violation(
          s.received >= cfg.numImages ? `${order} in series ${s.info.seriesId}` : order,
        );
      }
      const problem = this.#store(s, ev.images);
      if (problem !== undefined) return violation(problem);
      if (ev.release !== undefined) {
        // A single image is handed on as is; more were copied into the series stack.
        if (cfg.numImages === 1) s.releases.push(ev.release);
        else this.#release(ev.release);
      }
      s.timestamps[s.received] = ev.timestamp;
      s.exposures[s.received] = ev.exposure;
      s.imageMeta[s.received] = ev.meta;
      s.received++;
      return { kind: "image" };
    }
    if (ev.type === "end-data") {
      if (s.received < cfg.numImages) {
        return violation(`Series ended after ${s.received} of ${cfg.numImages} images`);
      }
      s.closed = "end";
      this.#lastClosed = { seriesId: s.info.seriesId, how: "end" };
      return { kind: "series-end" };
    }
    s.closed = "cancel";
    this.#lastClosed = { seriesId: s.info.seriesId, how: "cancel" };
    return { kind: "series-cancel" };
  }

  /**
   * The frame of the open, regularly ended series. When the last reference taken with
   * {@link Frame.retain} is given back, the backend's images are released and a multi-image stack
   * becomes a spare for the next series (the runner holds one reference while data hooks run).
   */
  frame(): Frame {
    const s = this.#open;
    if (s === undefined || s.closed !== "end") throw new Error("no completed series");
    let refs = 0;
    const retain = (): () => void => {
      if (refs++ === 0 && s.config.numImages > 1) this.#lent.add(s);
      let done = false;
      return () => {
        if (done) return;
        done = true;
        if (--refs === 0) this.#recycle(s);
      };
    };
    return {
      ...s.info,
      config: s.config,
      images: s.images,
      timestamps: s.timestamps,
      exposures: s.exposures,
      imageMeta: s.imageMeta,
      retain,
    };
  }

  /** Forgets the open series after it finished (READY). */
  close(): void {
    this.#open = undefined;
  }

  /**
   * Drops the open series (ERROR, FAIL, shutdown): later data of it is refused as "after abort".
   * Images not yet released are left to the garbage collector; a frame handed out stays valid.
   */
  abort(): void {
    const s = this.#open;
    if (s === undefined) return;
    this.#open = undefined;
    if (s.info.seriesId !== undefined) {
      this.#lastClosed = { seriesId: s.info.seriesId, how: "abort" };
    }
    // Nobody was handed the stacks of a series that did not end: the next series reuses them.
    if (s.closed !== "end" && s.config.numImages > 1) this.#keepSpare({ ...s.images });
  }

  #store(s: OpenSeries, images: Record<string, PixelArray>): string | undefined {
    const cfg = s.config;
    const size = cfg.width * cfg.height;
    const Ctor = PIXEL_ARRAY_TYPES[cfg.pixelType];
    for (const name of Object.keys(images)) {
      if (!cfg.channels.some((ch) => ch.name === name)) return `Image of unknown channel ${name}`;
    }
    for (const ch of cfg.channels) {
      const img = images[ch.name];
      if (img === undefined) return `Image ${s.received} lacks channel ${ch.name}`;
      if (!(img instanceof Ctor)) {
        return `Image of channel ${ch.name} is ${img.constructor.name}, expected ${Ctor.name}`;
      }
      if (img.length !== size) {
        return `Image of channel ${ch.name} has ${img.length} pixels, expected ${size}`;
      }
    }
    for (const ch of cfg.channels) {
      const img = images[ch.name];
      if (cfg.numImages === 1) s.images[ch.name] = img;
      else {
        const stack = s.images[ch.name];
        const at = s.received * size;
        // Written in place by the backend (lent stacks): nothing to copy.
        const inPlace = img.buffer === stack.buffer &&
          img.byteOffset === stack.byteOffset + at * stack.BYTES_PER_ELEMENT;
        if (!inPlace) stack.set(img, at);
        const warmed = this.#warmed.get(stack);
        if (warmed !== undefined && warmed < (s.received + 1) * size) {
          if ((s.received + 1) * size >= stack.length) this.#warmed.delete(stack);
          else this.#warmed.set(stack, (s.received + 1) * size);
        }
      }
    }
    return undefined;
  }

  #release(release: () => void): void {
    try {
      release();
    } catch (err) {
      this.#onReleaseError(err);
    }
  }

  /** The last reference to a frame was given back: its pixels may be reused. */
  #recycle(s: OpenSeries): void {
    const releases = s.releases;
    s.releases = [];
    for (const release of releases) this.#release(release);
    if (s.config.numImages > 1) {
      this.#lent.delete(s);
      this.#keepSpare({ ...s.images });
    }
  }
}

/** Bytes of one series stack of `config` (all channels; 0 for single images, never stacked). */
export function seriesStackBytes(config: DeviceConfig): number {
  if (config.numImages <= 1) return 0;
  const bytes = PIXEL_ARRAY_TYPES[config.pixelType].BYTES_PER_ELEMENT;
  return config.width * config.height * config.numImages * config.channels.length * bytes;
}

function violation(detail: string): AssemblyOutcome {
  return { kind: "data-violation", detail };
}
