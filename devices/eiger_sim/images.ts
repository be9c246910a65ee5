/**
 * Synthetic EIGER images that look like data: powder-diffraction rings around a beam centre, a
 * beam stop, a smooth background and counting noise, scaled with the exposure time.
 *
 * @module
 */

/** Pixel types the simulator produces (from `bit_depth_image`). */
export type SimDtype = "uint8" | "uint16" | "uint32";

/** Typed array of a simulated image. */
export type SimPixels = Uint8Array | Uint16Array | Uint32Array;

/** Maps a bit depth to the stream dtype. */
export function dtypeOfBitDepth(bits: number): SimDtype {
  return bits === 8 ? "uint8" : bits === 32 ? "uint32" : "uint16";
}

/** Intensity pattern in counts per second, `height*width`, row-major. */
export function makePattern(width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const cx = width * 0.47;
  const cy = height * 0.53;
  const radii = [0.12, 0.21, 0.29, 0.36, 0.44].map((f) => f * Math.max(width, height));
  const strength = [900, 500, 700, 250, 150];
  const widthPx = Math.max(1.5, Math.max(width, height) / 400);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const r = Math.hypot(x - cx, y - cy);
      let v = 40 + 200 * Math.exp(-r / (0.15 * width));
      for (let k = 0; k < radii.length; k++) {
        const d = (r - radii[k]) / widthPx;
        if (d > -4 && d < 4) v += strength[k] * Math.exp(-d * d);
      }
      if (r < 0.025 * width) v = 0.5; // beam stop
      out[y * width + x] = v;
    }
  }
  return out;
}

/**
 * Renders one image: `pattern · seconds · gain` plus noise of about √counts, clipped to the
 * largest valid count of the dtype. `seed` varies the noise between images.
 */
export function renderImage(
  pattern: Float32Array,
  dtype: SimDtype,
  seconds: number,
  gain: number,
  seed: number,
): SimPixels {
  const n = pattern.length;
  const out = dtype === "uint8"
    ? new Uint8Array(n)
    : dtype === "uint16"
    ? new Uint16Array(n)
    : new Uint32Array(n);
  const max = dtype === "uint8" ? 254 : dtype === "uint16" ? 65534 : 4294967294;
  let s = (seed * 2654435761 + 1) >>> 0 || 1;
  const scale = seconds * gain;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const mean = pattern[i] * scale;
    const noise = ((s >>> 0) / 4294967296 - 0.5) * 3.4 * Math.sqrt(mean);
    const v = Math.round(mean + noise);
    out[i] = v < 0 ? 0 : v > max ? max : v;
  }
  return out;
}
