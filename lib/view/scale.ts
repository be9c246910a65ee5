/**
 * Resampling of an image to a display size and mapping of values to palette indices.
 *
 * Downscaling averages each output pixel's source area (masked pixels excluded); upscaling repeats
 * pixels (nearest neighbour), so detector pixels stay sharp. Values map to palette levels 0..254
 * linearly or logarithmically between a black and a white point; masked pixels map to
 * {@link MASK_INDEX}.
 *
 * @module
 */

import type { PixelArray } from "../../devices/contract.ts";
import type { MaskValues } from "./contrast.ts";
import { LEVELS, MASK_INDEX } from "./colormap.ts";

/** How values map to brightness. */
export type ScaleMode = "linear" | "log";

/** Where one image lives inside a (possibly multi-image) pixel array. */
export interface ImageView {
  /** The pixel array. */
  data: PixelArray;
  /** Index of the image's first pixel in `data`. */
  offset: number;
  /** Image width in pixels. */
  width: number;
  /** Image height in pixels. */
  height: number;
}

/**
 * Resamples an image to `dstW`×`dstH`: area average when shrinking, pixel repetition when
 * enlarging. Output pixels whose whole area is masked are NaN.
 */
export function resample(
  src: ImageView,
  dstW: number,
  dstH: number,
  mask: MaskValues,
  out?: Float32Array,
): Float32Array {
  const dst = out && out.length >= dstW * dstH ? out : new Float32Array(dstW * dstH);
  const { data, offset, width, height } = src;
  const m0 = mask.length > 0 ? mask[0] : NaN;
  const m1 = mask.length > 1 ? mask[1] : NaN;
  if (dstW === width && dstH === height) {
    const n = width * height;
    for (let i = 0; i < n; i++) {
      const v = data[offset + i];
      dst[i] = v - v !== 0 || v === m0 || v === m1 ? NaN : v;
    }
    return dst;
  }
  const xs0 = new Int32Array(dstW);
  const xs1 = new Int32Array(dstW);
  for (let ox = 0; ox < dstW; ox++) {
    const a = Math.floor((ox * width) / dstW);
    xs0[ox] = a;
    xs1[ox] = Math.max(a + 1, Math.floor(((ox + 1) * width) / dstW));
  }
  const sums = new Float64Array(dstW);
  const counts = new Int32Array(dstW);
  for (let oy = 0; oy < dstH; oy++) {
    const y0 = Math.floor((oy * height) / dstH);
    const y1 = Math.max(y0 + 1, Math.floor(((oy + 1) * height) / dstH));
    sums.fill(0);
    counts.fill(0);
    for (let y = y0; y < y1; y++) {
      const row = offset + y * width;
      for (let ox = 0; ox < dstW; ox++) {
        const x1 = row + xs1[ox];
        let s = 0;
        let n = 0;
        for (let i = row + xs0[ox]; i < x1; i++) {
          const v = data[i];
          if (v - v !== 0 || v === m0 || v === m1) continue;
          s += v;
          n++;
        }
        sums[ox] += s;
        counts[ox] += n;
      }
    }
    const base = oy * dstW;
    for (let ox = 0; ox < dstW; ox++) {
      dst[base + ox] = counts[ox] > 0 ? sums[ox] / counts[ox] : NaN;
    }
  }
  return dst;
}

/**
 * Maps values to palette indices: `low` → 0, `high` → 254 (linear, or `log1p(v − low)` scaled for
 * `log`), values outside clamp, NaN → {@link MASK_INDEX}.
 */
export function toIndices(
  values: Float32Array,
  count: number,
  low: number,
  high: number,
  mode: ScaleMode,
  out?: Uint16Array,
): Uint16Array {
  const dst = out && out.length >= count ? out : new Uint16Array(count);
  const top = LEVELS - 1;
  const span = high - low;
  if (!(span > 0)) {
    for (let i = 0; i < count; i++) dst[i] = values[i] !== values[i] ? MASK_INDEX : 0;
    return dst;
  }
  if (mode === "linear") {
    const k = top / span;
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (v !== v) {
        dst[i] = MASK_INDEX;
        continue;
      }
      const t = (v - low) * k;
      dst[i] = t <= 0 ? 0 : t >= top ? top : (t + 0.5) | 0;
    }
    return dst;
  }
  // log: ln(1 + d) from the float's exponent and a 1024-entry table of ln(mantissa) (error below
  // 5e-4, far less than one of the 255 levels for any span), instead of a logarithm call per pixel
  const k = top / Math.log1p(span);
  const lnMantissa = LN_MANTISSA;
  const f32 = F32;
  const u32 = U32;
  for (let i = 0; i < count; i++) {
    const v = values[i];
    if (v !== v) {
      dst[i] = MASK_INDEX;
      continue;
    }
    const d = v - low;
    if (d <= 0) {
      dst[i] = 0;
      continue;
    }
    f32[0] = 1 + d;
    const bits = u32[0];
    const ln = ((bits >>> 23) - 127) * Math.LN2 + lnMantissa[(bits >>> 13) & 0x3ff];
    const t = ln * k;
    dst[i] = t >= top ? top : (t + 0.5) | 0;
  }
  return dst;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const LN_MANTISSA = (() => {
  const t = new Float64Array(1024);
  for (let m = 0; m < 1024; m++) t[m] = Math.log(1 + (m + 0.5) / 1024);
  return t;
})();
