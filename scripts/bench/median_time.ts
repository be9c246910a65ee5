/**
 * The timing loop of the micro-benchmarks: median seconds per call after a warm-up.
 *
 * @module
 */

/** How long and how often {@link medianSeconds} samples. */
export interface SamplingOptions {
  /** Calls before timing starts (lets V8 reach its optimising tier). */
  warmup: number;
  /** Keep sampling at least this long, in seconds. */
  minSeconds: number;
  /** And at least this many calls. */
  minSamples: number;
}

/** Median wall time of one call of `fn`, in seconds. */
export function medianSeconds(fn: () => unknown, options: SamplingOptions): number {
  for (let i = 0; i < options.warmup; i++) fn();
  const times: number[] = [];
  const start = performance.now();
  while (
    performance.now() - start < options.minSeconds * 1000 || times.length < options.minSamples
  ) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1] / 1000;
}
