/**
 * Writing decoded images in place: the series stacks the controller lends the backend
 * (`Device.lendSeriesStacks`, shared memory) become an {@link ImageTarget} that the decode
 * workers write image `i` of a channel straight into — its slot `[i·w·h, (i+1)·w·h)` of the
 * channel's stack — instead of into a buffer of their own that the controller then copies.
 *
 * One clear owner per slot: each slot of a lending is claimed at most once (an atomic claim per
 * image and channel in shared memory), by whichever image message names it first; a second
 * message with the same image id (a duplicate, a late image of an earlier series) gets a buffer
 * of its own, and the controller copies (or refuses) it as before. So after a complete series
 * every slot is claimed and nothing writes to the stacks the image PVs then serve. That writes
 * of one lending end before the stacks are lent again is the decode pool's part
 * (`decode_pool.ts`: a new target waits for the frames in flight).
 *
 * @module
 */

import type { LentSeriesStacks, PixelArray, PixelType } from "../contract.ts";
import type { ImageOutputRequest } from "./stream2.ts";

/** Stacks lent for in-place decoding, with their claims (structured-cloneable, shared). */
export interface ImageTarget {
  /** Per channel: `numImages·height·width` pixels over a SharedArrayBuffer. */
  stacks: Record<string, PixelArray>;
  width: number;
  height: number;
  numImages: number;
  pixelType: PixelType;
  /** Claims, `numImages` per channel in the order of `channels` (0 free, 1 taken). */
  claims: Int32Array;
  /** Channel names, in the order of the claims. */
  channels: string[];
}

/**
 * The target of lent stacks, or undefined when they cannot be written from another thread (not
 * shared memory) or do not match their configuration.
 */
export function imageTarget(lent: LentSeriesStacks | undefined): ImageTarget | undefined {
  if (lent === undefined) return undefined;
  const { config } = lent;
  const channels = config.channels.map((ch) => ch.name);
  const length = config.width * config.height * config.numImages;
  const stacks: Record<string, PixelArray> = {};
  for (const name of channels) {
    const stack = lent.images[name];
    if (
      stack === undefined || !(stack.buffer instanceof SharedArrayBuffer) ||
      stack.length !== length
    ) return undefined;
    stacks[name] = stack;
  }
  return {
    stacks,
    width: config.width,
    height: config.height,
    numImages: config.numImages,
    pixelType: config.pixelType,
    claims: new Int32Array(new SharedArrayBuffer(4 * config.numImages * channels.length)),
    channels,
  };
}

/**
 * The slot of an image channel in `target` as bytes, claimed for this caller, or undefined: no
 * such channel, another type or shape, an image id out of range, or the slot taken already.
 */
export function claimSlot(
  target: ImageTarget,
  request: ImageOutputRequest,
): Uint8Array | undefined {
  const { imageId, channel, dtype, dims, byteLength } = request;
  const c = target.channels.indexOf(channel);
  if (c < 0 || dtype !== target.pixelType) return undefined;
  if (dims.length !== 2 || dims[0] !== target.height || dims[1] !== target.width) return undefined;
  if (!Number.isInteger(imageId) || imageId < 0 || imageId >= target.numImages) return undefined;
  const stack = target.stacks[channel];
  const size = target.width * target.height * stack.BYTES_PER_ELEMENT;
  if (byteLength !== size) return undefined;
  if (Atomics.compareExchange(target.claims, c * target.numImages + imageId, 0, 1) !== 0) {
    return undefined;
  }
  return new Uint8Array(stack.buffer, stack.byteOffset + imageId * size, size);
}

/**
 * Makes the pixel arrays of an image decoded into `target` by another thread views of this
 * thread's stack objects (a SharedArrayBuffer posted between threads arrives as a new object
 * over the same memory), so that the receiver can tell an image in its slot by identity. Only
 * arrays of the target's size over shared memory of the stack's size are rebased; the caller
 * must know they were written under `target` (the decode pool does: a target changes only when
 * no frame is in flight).
 */
export function rebaseOnTarget(
  data: Record<string, { pixels: PixelArray }>,
  target: ImageTarget,
): void {
  for (const [channel, image] of Object.entries(data)) {
    const stack = target.stacks[channel];
    const pixels = image.pixels;
    if (
      stack === undefined || !(pixels.buffer instanceof SharedArrayBuffer) ||
      pixels.buffer === stack.buffer || pixels.buffer.byteLength !== stack.buffer.byteLength ||
      pixels.constructor !== stack.constructor
    ) continue;
    const Ctor = stack.constructor as new (
      buffer: ArrayBufferLike,
      byteOffset: number,
      length: number,
    ) => PixelArray;
    image.pixels = new Ctor(stack.buffer, pixels.byteOffset, pixels.length);
  }
}

/** Bytes of one image of a target (what a decoder prepares for). */
export function targetImageBytes(target: ImageTarget): number {
  const stack = Object.values(target.stacks)[0];
  return target.width * target.height * (stack?.BYTES_PER_ELEMENT ?? 1);
}

/** What a stream decoder is told by its backend (see {@link TargetHolder.watch}). */
export interface TargetWatcher {
  /** The lent stacks changed (undefined: taken back). */
  target(target: ImageTarget | undefined): void;
  /** Images of `imageBytes` will come: get ready (module memory, receive buffers). */
  prepare(imageBytes: number): void;
}

/** The target a backend lends now and the image size it expects, watched by its decoder. */
export class TargetHolder {
  #current: ImageTarget | undefined;
  #imageBytes = 0;
  #watchers = new Set<TargetWatcher>();

  /** The current target. */
  get current(): ImageTarget | undefined {
    return this.#current;
  }

  /** Sets the target and tells the watchers. */
  set(target: ImageTarget | undefined): void {
    this.#current = target;
    for (const watcher of this.#watchers) watcher.target(target);
  }

  /** Announces the image size (after initialization) so that decoders prepare ahead. */
  prepare(imageBytes: number): void {
    this.#imageBytes = imageBytes;
    for (const watcher of this.#watchers) watcher.prepare(imageBytes);
  }

  /** Tells `watcher` the current state and every change; returns the unwatch. */
  watch(watcher: TargetWatcher): () => void {
    this.#watchers.add(watcher);
    if (this.#imageBytes > 0) watcher.prepare(this.#imageBytes);
    watcher.target(this.#current);
    return () => this.#watchers.delete(watcher);
  }
}

/** Slots claimed so far (tests, diagnostics). */
export function claimedSlots(target: ImageTarget): number {
  let n = 0;
  for (let i = 0; i < target.claims.length; i++) n += Atomics.load(target.claims, i);
  return n;
}
