/**
 * A socket read/write buffer that grows while traffic needs it and shrinks back when the
 * traffic is small again, so that an idle circuit holds a few KB instead of its peak size.
 *
 * @module
 */

/** Sizes of an {@link AdaptiveBuffer}. */
export interface AdaptiveBufferSizes {
  /** Size when idle (bytes). */
  min: number;
  /** Largest size (bytes). */
  max: number;
  /** Consecutive uses that needed at most a quarter of the buffer before it shrinks back. */
  shrinkAfter: number;
}

/** Default sizes: 1 KiB idle, up to 256 KiB, back to 1 KiB after 32 small uses. */
export const DEFAULT_ADAPTIVE_SIZES: AdaptiveBufferSizes = {
  min: 1024,
  max: 256 * 1024,
  shrinkAfter: 32,
};

/**
 * One owner's scratch buffer. {@link get} returns the current buffer; {@link reserve} grows it
 * (×4 steps, up to `max`) for a use that needs more, {@link filled} grows it after a read that
 * filled it, and after `shrinkAfter` small uses in a row it drops back to `min` (the old buffer
 * is left to the garbage collector).
 */
export class AdaptiveBuffer {
  #sizes: AdaptiveBufferSizes;
  #buffer: Uint8Array;
  #small = 0;

  constructor(sizes: Partial<AdaptiveBufferSizes> = {}) {
    this.#sizes = { ...DEFAULT_ADAPTIVE_SIZES, ...sizes };
    this.#buffer = new Uint8Array(this.#sizes.min);
  }

  /** Current size in bytes. */
  get size(): number {
    return this.#buffer.length;
  }

  /** The current buffer (valid until the next {@link used} or {@link reserve}). */
  get(): Uint8Array {
    return this.#buffer;
  }

  /** Makes the buffer at least `bytes` long (capped at `max`) and returns it. */
  reserve(bytes: number): Uint8Array {
    if (bytes > this.#buffer.length && this.#buffer.length < this.#sizes.max) {
      let size = this.#buffer.length;
      while (size < bytes && size < this.#sizes.max) size *= 4;
      this.#buffer = new Uint8Array(Math.min(size, this.#sizes.max));
      this.#small = 0;
    }
    return this.#buffer;
  }

  /** Largest size in bytes. */
  get maxSize(): number {
    return this.#sizes.max;
  }

  /**
   * Reports a read of `bytes` into the buffer: a read that filled it grows it (more data was
   * probably waiting), otherwise as {@link used}.
   */
  filled(bytes: number): void {
    if (bytes >= this.#buffer.length) this.reserve(this.#buffer.length + 1);
    else this.used(bytes);
  }

  /**
   * Reports that the last use needed `bytes` of the buffer; after `shrinkAfter` uses in a row
   * that needed at most a quarter of it, it shrinks back to `min`.
   */
  used(bytes: number): void {
    const size = this.#buffer.length;
    if (size === this.#sizes.min || bytes > size / 4) {
      this.#small = 0;
      return;
    }
    if (++this.#small >= this.#sizes.shrinkAfter) {
      this.#buffer = new Uint8Array(this.#sizes.min);
      this.#small = 0;
    }
  }
}
