/**
 * Recycled output buffers for decoded stream images. Decoding a 1028×512 uint32 image needs a
 * fresh 2 MB buffer per image and channel; at detector frame rates that is hundreds of MB/s of
 * garbage. The decoders take their output from here, and the series hands the buffers back
 * through `ImageDataEvent.release` once the controller no longer reads them.
 *
 * Only buffers made here (or adopted from a decode worker with {@link adoptDecodeBuffers}) are ever
 * taken back (a view over anything else is ignored), and the pool is bounded; a buffer that is
 * never released is simply garbage. Each thread has its own pool: the decode pool hands released
 * buffers back to its workers with {@link takeKeptDecodeBuffers}.
 *
 * @module
 */

/** Buffers kept for reuse, at most. */
const MAX_KEPT = 8;
/** Smallest buffer worth keeping. */
const MIN_KEPT_BYTES = 64 * 1024;

const made = new WeakSet<ArrayBufferLike>();
const kept: Uint8Array[] = [];
/** Buffers of at least {@link MIN_KEPT_BYTES} made by {@link takeDecodeBuffer} on this thread. */
let madeCount = 0;

/** An output buffer: `fresh` ones are zero-filled, reused ones hold old bytes. */
export interface DecodeBuffer {
  /** `bytes` long, at offset 0 of its own ArrayBuffer (aligned for any typed-array view). */
  bytes: Uint8Array;
  /** Whether the buffer is new (all zero). */
  fresh: boolean;
}

/** A buffer of exactly `length` bytes: a released one of that size, else a new one. */
export function takeDecodeBuffer(length: number): DecodeBuffer {
  if (length >= MIN_KEPT_BYTES) {
    const i = kept.findIndex((b) => b.length === length);
    if (i >= 0) return { bytes: kept.splice(i, 1)[0], fresh: false };
  }
  const bytes = new Uint8Array(length);
  if (length >= MIN_KEPT_BYTES) {
    made.add(bytes.buffer);
    madeCount++;
  }
  return { bytes, fresh: true };
}

/**
 * Gives decoded images back for reuse: each view must cover a whole buffer from
 * {@link takeDecodeBuffer}; anything else is ignored. The caller must not read them afterwards.
 */
export function releaseDecodeBuffers(views: Iterable<ArrayBufferView>): void {
  for (const view of views) {
    const buffer = view.buffer;
    if (!made.has(buffer) || view.byteOffset !== 0 || view.byteLength !== buffer.byteLength) {
      continue;
    }
    if (kept.some((b) => b.buffer === buffer)) continue; // released twice
    if (kept.length >= MAX_KEPT) kept.shift();
    kept.push(new Uint8Array(buffer));
  }
}

/**
 * Marks buffers decoded by another thread (transferred here) as reusable, so that releasing
 * them keeps them. Only views covering a whole buffer of at least 64 KiB are adopted.
 */
export function adoptDecodeBuffers(views: Iterable<ArrayBufferView>): void {
  for (const view of views) {
    const buffer = view.buffer;
    if (buffer instanceof SharedArrayBuffer) continue; // a lent series stack, never ours
    if (view.byteOffset === 0 && view.byteLength === buffer.byteLength) {
      if (buffer.byteLength >= MIN_KEPT_BYTES) made.add(buffer);
    }
  }
}

/** Removes up to `max` kept buffers from this thread's pool (to transfer them to a decoder). */
export function takeKeptDecodeBuffers(max: number): ArrayBuffer[] {
  return kept.splice(0, Math.max(0, max)).map((b) => b.buffer as ArrayBuffer);
}

/** Number of buffers waiting for reuse (tests). */
export function keptDecodeBuffers(): number {
  return kept.length;
}

/** Output buffers (≥ 64 KiB) made new on this thread so far: none per image in steady state. */
export function decodeBuffersMade(): number {
  return madeCount;
}
