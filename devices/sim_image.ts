/**
 * Deterministic detector-like test images for the `sim` backend: diffraction rings on a weak
 * background, Poisson-like noise, a few hot pixels and sparse photon hits.
 *
 * Content depends only on (seed, geometry, pixel type, channel index, series index, image index,
 * duration), so tests can recompute the images a running IOC served. Each channel's base pattern
 * (counts per second) is computed once; an image is the base pattern scaled for the duration
 * (cached per duration) plus a window into a precomputed noise table at a hashed offset, plus a
 * few sparse changes — a couple of typed-array passes per image.
 *
 * @module
 */

import { PIXEL_ARRAY_TYPES, type PixelArray, type PixelType } from "./contract.ts";

import { createRandom } from "../core/random.ts";

export { createRandom };

/** Mixes integers into one 32-bit hash (for per-image variation). */
export function hashInts(...values: number[]): number {
  let h = 0x811c9dc5;
  for (const v of values) {
    h = Math.imul(h ^ (v >>> 0), 0x01000193);
    h ^= h >>> 13;
    h = Math.imul(h, 0x5bd1e995);
    h ^= h >>> 15;
  }
  return h >>> 0;
}

/** Largest value each pixel type holds (floats: a generous finite bound). */
const TYPE_MAX: Record<PixelType, number> = {
  uint8: 255,
  int8: 127,
  uint16: 65535,
  int16: 32767,
  uint32: 4294967295,
  int32: 2147483647,
  float32: 1e30,
  float64: 1e300,
};

/** Parameters of {@link SimImageGenerator}. */
export interface SimImageParams {
  seed: number;
  width: number;
  height: number;
  pixelType: PixelType;
  /** Number of channels (channel index 0..n-1 selects the pattern). */
  channels: number;
}

/** Largest noise value added per pixel. */
export const NOISE_MAX = 7;
const NOISE_SLACK = 8192;
/** Peak count rate of the ring pattern, counts per second. */
export const PEAK_RATE = 200;
/** Shortest exposure the intensity is computed for (so that duration 0 still shows rings). */
export const MIN_EXPOSURE = 0.05;

/** Generates sim images; build once per configuration (the constructor precomputes patterns). */
export class SimImageGenerator {
  readonly params: SimImageParams;
  readonly #base: Float32Array[] = [];
  readonly #hot: Uint32Array[] = [];
  readonly #noise: Uint8Array | Float32Array;
  readonly #scaled = new Map<string, PixelArray>();

  constructor(params: SimImageParams) {
    this.params = params;
    const { width, height, seed } = params;
    const size = width * height;
    for (let ch = 0; ch < params.channels; ch++) {
      const rnd = createRandom(hashInts(seed, ch, 1));
      const cx = width * (0.4 + 0.2 * rnd());
      const cy = height * (0.4 + 0.2 * rnd());
      const diag = Math.hypot(width, height);
      const rings = Array.from({ length: 6 }, (_, k) => ({
        r: diag * (0.06 + 0.07 * k + 0.02 * rnd()),
        w: 1 + 2 * rnd(),
        a: (0.3 + 0.7 * rnd()) / (1 + ch),
      }));
      const beamstop = diag * 0.025;
      const base = new Float32Array(size);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const r = Math.hypot(x - cx, y - cy);
          let v = 0;
          if (r > beamstop) {
            v = 0.02 + 0.1 * Math.exp(-r / (diag * 0.2));
            for (const ring of rings) {
              const d = (r - ring.r) / ring.w;
              if (d > -6 && d < 6) v += ring.a * Math.exp(-0.5 * d * d);
            }
          }
          base[y * width + x] = v * PEAK_RATE;
        }
      }
      this.#base.push(base);
      const hot = new Uint32Array(3 + Math.floor(size / 100000));
      for (let i = 0; i < hot.length; i++) hot[i] = Math.floor(rnd() * size);
      this.#hot.push(hot);
    }
    const rnd = createRandom(hashInts(seed, 0xabcdef));
    const isFloat = params.pixelType.startsWith("float");
    const noise = isFloat
      ? new Float32Array(size + NOISE_SLACK)
      : new Uint8Array(size + NOISE_SLACK);
    for (let i = 0; i < noise.length; i++) {
      // Sum of three uniform draws: a cheap bell-shaped count 0..NOISE_MAX.
      const u = rnd() + rnd() + rnd();
      noise[i] = isFloat ? u * (NOISE_MAX / 3) : Math.floor(u * ((NOISE_MAX + 1) / 3));
    }
    this.#noise = noise;
    // Let the JIT optimise the per-image pass now rather than during the first acquisitions.
    const Ctor = PIXEL_ARRAY_TYPES[params.pixelType];
    const small = new Ctor(2048);
    const smallBase = new Ctor(2048);
    for (let k = 0; k < 2000; k++) addWindow(small, smallBase, noise, k & 4095);
  }

  /** The base pattern of a channel scaled to `duration`, in the pixel type (cached). */
  #scaledBase(channel: number, duration: number): PixelArray {
    const key = `${channel}:${duration}`;
    let scaled = this.#scaled.get(key);
    if (scaled !== undefined) return scaled;
    const { pixelType } = this.params;
    const base = this.#base[channel];
    const scale = Math.max(duration, MIN_EXPOSURE);
    const limit = Math.min(TYPE_MAX[pixelType], 0x7fffffff) - NOISE_MAX - 1;
    scaled = new PIXEL_ARRAY_TYPES[pixelType](base.length);
    const isFloat = pixelType.startsWith("float");
    for (let i = 0; i < base.length; i++) {
      const v = base[i] * scale;
      scaled[i] = isFloat ? v : Math.min(limit, Math.floor(v));
    }
    if (this.#scaled.size > 8) this.#scaled.clear();
    this.#scaled.set(key, scaled);
    return scaled;
  }

  /**
   * Image `index` of series `series` for channel index `channel`, exposure `duration` s. Written
   * into `into` when it is an array of the pixel type and size (every pixel is overwritten),
   * else into a new array.
   */
  image(
    series: number,
    index: number,
    channel: number,
    duration: number,
    into?: PixelArray,
  ): PixelArray {
    const { pixelType, seed } = this.params;
    const scaled = this.#scaledBase(channel, duration);
    const size = scaled.length;
    const Ctor = PIXEL_ARRAY_TYPES[pixelType];
    const out = into instanceof Ctor && into.length === size ? into : new Ctor(size);
    const h = hashInts(seed, series, index, channel);
    addWindow(out, scaled, this.#noise, h % NOISE_SLACK);
    const max = TYPE_MAX[pixelType];
    const hotValue = pixelType.startsWith("float") ? 1e6 : max;
    for (const p of this.#hot[channel]) out[p] = hotValue;
    const rnd = createRandom(h);
    for (let k = 0; k < 16; k++) {
      const p = Math.floor(rnd() * size);
      out[p] = Math.min(max, out[p] + 50);
    }
    return out;
  }
}

function addWindow(
  out: PixelArray,
  a: PixelArray,
  noise: Uint8Array | Float32Array,
  offset: number,
): void {
  out.set(a);
  const n = out.length;
  const nz = noise.subarray(offset, offset + n);
  // Values stay below 2^31 here, so a signed view of uint32 data is exact and faster in V8.
  const o = out instanceof Uint32Array ? new Int32Array(out.buffer, out.byteOffset, n) : out;
  for (let i = 0; i < n; i++) o[i] += nz[i];
}
