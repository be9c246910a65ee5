/**
 * A socket read/write buffer that grows while traffic needs it and shrinks back when the
 * traffic is small again, and whose storage is allocated only while it is in use (see
 * {@link AdaptiveBuffer.release}), so that an idle connection holds none of it.
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

/** Default sizes: 1 KiB at first, up to 256 KiB, back to 1 KiB after 32 small uses. */
export const DEFAULT_ADAPTIVE_SIZES: Readonly<AdaptiveBufferSizes> = Object.freeze({
  min: 1024,
  max: 256 * 1024,
  shrinkAfter: 32,
});

/**
 * One owner's scratch buffer. {@link get} returns the current buffer; {@link reserve} grows it
 * (×4 steps, up to `max`) for a use that needs more, {@link filled} grows it after a read that
 * filled it, and after `shrinkAfter` small uses in a row it drops back to `min` (the old buffer
 * is left to the garbage collector). The storage is allocated on first use and given up by
 * {@link release} (the size is remembered for the next use), so a buffer between uses holds no
 * bytes.
 */
export class AdaptiveBuffer {
  #sizes: Readonly<AdaptiveBufferSizes>;
  #buffer: Uint8Array | undefined;
  /** Size of the buffer, also while its storage is released. */
  #size: number;
  #small = 0;

  constructor(sizes?: Partial<AdaptiveBufferSizes>) {
    this.#sizes = sizes === undefined
      ? DEFAULT_ADAPTIVE_SIZES
      : { ...DEFAULT_ADAPTIVE_SIZES, ...sizes };
    this.#size = this.#sizes.min;
  }

  /** Current size in bytes (also while released: the size the next use gets). */
  get size(): number {
    return this.#size;
  }

  /** Bytes of storage held now (0 after {@link release} until the next use). */
  get heldBytes(): number {
    return this.#buffer?.length ?? 0;
  }

  /** The current buffer (valid until the next {@link used}, {@link reserve} or {@link release}). */
  get(): Uint8Array {
    return this.#buffer ??= new Uint8Array(this.#size);
  }

  /** Makes the buffer at least `bytes` long (capped at `max`) and returns it. */
  reserve(bytes: number): Uint8Array {
    if (bytes > this.#size && this.#size < this.#sizes.max) {
      let size = this.#size;
      while (size < bytes && size < this.#sizes.max) size *= 4;
      this.#size = Math.min(size, this.#sizes.max);
      this.#buffer = new Uint8Array(this.#size);
      this.#small = 0;
    }
    return this.get();
  }

  /** Gives up the storage (left to the garbage collector) until the next use. */
  release(): void {
    this.#buffer = undefined;
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
    if (bytes >= this.#size) this.reserve(this.#size + 1);
    else this.used(bytes);
  }

  /**
   * Reports that the last use needed `bytes` of the buffer; after `shrinkAfter` uses in a row
   * that needed at most a quarter of it, it shrinks back to `min`.
   */
  used(bytes: number): void {
    const size = this.#size;
    if (size === this.#sizes.min || bytes > size / 4) {
      this.#small = 0;
      return;
    }
    if (++this.#small >= this.#sizes.shrinkAfter) {
      this.#size = this.#sizes.min;
      if (this.#buffer !== undefined) this.#buffer = new Uint8Array(this.#size);
      this.#small = 0;
    }
  }
}
