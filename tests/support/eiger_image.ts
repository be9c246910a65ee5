/**
 * Deterministic, detector-like test images for the EIGER stream tests and benchmarks: mostly
 * small Poisson counts, diffraction rings, module gaps at the NODATA value and a few hot pixels.
 *
 * @module
 */

/** Pixel arrays the generator can fill. */
export type DetectorArray = Uint8Array | Uint16Array | Uint32Array;

import { createRandom as prng } from "../../core/random.ts";

export { prng };

/** Fills a `rows × cols` image of the array's type with detector-like counts (seeded). */
export function detectorImage<T extends DetectorArray>(
  make: new (n: number) => T,
  rows: number,
  cols: number,
  seed = 1,
): T {
  const img = new make(rows * cols);
  const max = img instanceof Uint8Array ? 0xff : img instanceof Uint16Array ? 0xffff : 0xffffffff;
  const rand = prng(seed);
  const cy = rows * 0.45;
  const cx = cols * 0.55;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const r = Math.hypot(y - cy, x - cx);
      const ring = (r % 60) - 30;
      const lambda = 0.15 + 6 * Math.exp(-(ring * ring) / 8);
      // Poisson sample (Knuth), fine for small lambda
      const limit = Math.exp(-lambda);
      let k = 0;
      let p = rand();
      while (p > limit) {
        k++;
        p *= rand();
      }
      img[y * cols + x] = k;
    }
  }
  // module gaps (NODATA) every 256 columns / 128 rows, as on EIGER modules
  for (let y = 0; y < rows; y++) {
    for (let x = 255; x < cols; x += 256) img[y * cols + x] = max;
  }
  for (let y = 127; y < rows; y += 128) img.fill(max, y * cols, (y + 1) * cols);
  for (let i = 0; i < 20; i++) img[Math.floor(rand() * rows * cols)] = max - 1;
  return img;
}

/**
 * A `rows × cols` uint32 photon-counting image with Poisson counts of mean `mean` per pixel
 * (seeded; a normal approximation above a mean of 30) and EIGER module gaps at the NODATA
 * value: `mean` 0.01 gives a sparse low-flux frame (nearly all zeros), 200 a bright one.
 */
export function photonImage(rows: number, cols: number, mean: number, seed = 1): Uint32Array {
  const img = new Uint32Array(rows * cols);
  const rand = prng(seed);
  const limit = Math.exp(-mean);
  const sd = Math.sqrt(mean);
  for (let i = 0; i < img.length; i++) {
    if (mean > 30) {
      const z = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
      img[i] = Math.max(0, Math.round(mean + sd * z));
    } else {
      let k = 0;
      let p = rand();
      while (p > limit) {
        k++;
        p *= rand();
      }
      img[i] = k;
    }
  }
  for (let y = 0; y < rows; y++) {
    for (let x = 255; x < cols; x += 256) img[y * cols + x] = 0xffffffff;
  }
  return img;
}
