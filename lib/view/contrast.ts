/**
 * Image statistics and robust automatic contrast: min/max/mean and percentiles over the valid
 * pixels of one image, computed with a histogram (two linear passes, no sorting).
 *
 * Masked pixels (NaN/±Infinity and the configured mask values, e.g. 2^32−1 for saturated or
 * defective EIGER pixels) are excluded from every number.
 *
 * @module
 */

import type { PixelArray, PixelType } from "../../devices/contract.ts";

/** Pixel values that mean "no valid measurement" (at most two are honoured besides NaN). */
export type MaskValues = readonly number[];

/** Default mask values for a pixel type: the type's all-ones value (and its signed wrap, -1). */
export function defaultMaskValues(type: PixelType): MaskValues {
  switch (type) {
    case "uint8":
      return [0xff];
    case "uint16":
      return [0xffff];
    case "uint32":
      return [0xffffffff];
    case "int8":
    case "int16":
      return [-1];
    case "int32":
      // uint32 images travel as CA LONG: 2^32−1 arrives as −1; 2^31−1 marks saturation too.
      return [-1, 0x7fffffff];
    default:
      return [];
  }
}

/** Percentile pairs `[low, high]` selectable with `+`/`-`, lowest contrast first. */
export const CONTRAST_LEVELS: readonly (readonly [number, number])[] = [
  [0, 100],
  [0.01, 99.99],
  [0.05, 99.9],
  [0.1, 99.5],
  [0.5, 99],
  [1, 98],
  [2, 95],
  [5, 90],
];

/** Index into {@link CONTRAST_LEVELS} used when nothing else is chosen. */
export const DEFAULT_CONTRAST_LEVEL = 2;

/** Statistics of the valid pixels of one image. */
export interface ImageStats {
  /** Number of valid (unmasked) pixels. */
  valid: number;
  /** Number of masked pixels. */
  masked: number;
  /** Smallest valid value (NaN when there is none). */
  min: number;
  /** Largest valid value (NaN when there is none). */
  max: number;
  /** Mean of the valid values (NaN when there is none). */
  mean: number;
  /** Value at the low percentile (display black point). */
  low: number;
  /** Value at the high percentile (display white point). */
  high: number;
}

const BINS = 4096;

/**
 * Computes statistics and the `[lowPct, highPct]` percentiles of `count` pixels of `data` starting
 * at `offset`. Percentiles come from a 4096-bin histogram between min and max (exact for integer
 * images spanning fewer than 4096 values), so the result is within one bin width of the exact
 * order statistic.
 */
export function imageStats(
  data: PixelArray,
  offset: number,
  count: number,
  mask: MaskValues,
  lowPct: number,
  highPct: number,
): ImageStats {
  const m0 = mask.length > 0 ? mask[0] : NaN;
  const m1 = mask.length > 1 ? mask[1] : NaN;
  const end = offset + count;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let valid = 0;
  for (let i = offset; i < end; i++) {
    const v = data[i];
    if (v - v !== 0 || v === m0 || v === m1) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    valid++;
  }
  if (valid === 0) {
    return { valid, masked: count, min: NaN, max: NaN, mean: NaN, low: NaN, high: NaN };
  }
  const stats: ImageStats = {
    valid,
    masked: count - valid,
    min,
    max,
    mean: sum / valid,
    low: min,
    high: max,
  };
  if (max === min) return stats;
  const integral = Number.isInteger(min) && Number.isInteger(max) && isIntegerArray(data);
  const span = max - min;
  const bins = integral && span < BINS ? span + 1 : BINS;
  const width = integral && span < BINS ? 1 : span / BINS;
  const hist = new Uint32Array(bins);
  const inv = 1 / width;
  for (let i = offset; i < end; i++) {
    const v = data[i];
    if (v - v !== 0 || v === m0 || v === m1) continue;
    let b = ((v - min) * inv) | 0;
    if (b >= bins) b = bins - 1;
    hist[b]++;
  }
  const lowRank = (lowPct / 100) * valid;
  const highRank = (highPct / 100) * valid;
  let acc = 0;
  let lowBin = -1;
  let highBin = bins - 1;
  for (let b = 0; b < bins; b++) {
    acc += hist[b];
    if (lowBin < 0 && acc > lowRank) lowBin = b;
    if (acc >= highRank) {
      highBin = b;
      break;
    }
  }
  if (lowBin < 0) lowBin = 0;
  stats.low = min + lowBin * width;
  stats.high = integral && span < BINS ? min + highBin : Math.min(max, min + (highBin + 1) * width);
  if (stats.high <= stats.low) stats.high = Math.min(max, stats.low + width);
  return stats;
}

function isIntegerArray(data: PixelArray): boolean {
  return !(data instanceof Float32Array || data instanceof Float64Array);
}
