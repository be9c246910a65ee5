/**
 * Small, fast, seeded pseudo-random numbers (mulberry32) for simulated images and randomized
 * tests: deterministic for a seed, not for anything security-related.
 *
 * @module
 */

/** Returns a generator of floats in [0, 1) determined by `seed` (mulberry32). */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
