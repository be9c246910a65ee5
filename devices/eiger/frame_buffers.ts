/**
 * Recycled receive buffers for stream frames. A 1028×512 uint32 bslz4 frame is about 350 KB; at
 * detector rates a new buffer per frame is hundreds of MB/s of new memory, and first writes to new
 * memory are slow (measured here: 0.4–0.8 ms per frame on the event loop, page faults). The
 * ZeroMQ reader receives frame bodies into buffers from this pool, the decode pool transfers
 * them to a worker with the frame and the worker sends them back with its result.
 *
 * A buffer is at least as large as the frame it holds (a frame is a view at offset 0), so
 * buffers fit the slightly different sizes of compressed frames. Only frames of at least
 * {@link FRAME_POOL_MIN_BYTES} use the pool; at most `max` free buffers of at most `maxBytes`
 * together are kept (defaults 256 and 128 MiB; the stream keeps as many as frames may wait for
 * decoding: the frames a series had waiting when the decoders fell behind find their buffers again
 * in the next series instead of new memory; measured here, new receive buffers cost the event loop
 * about 1 ms per frame, and in a long series that fell behind that cost made the event loop — which
 * also hands frames to the decoders — the bottleneck). For the first series of a stream, the decode
 * pool prepares buffers when the series stacks are lent ({@link FrameBufferPool.prepare}; a decode
 * worker writes them once in each way they will be used, {@link writeBothWays}). Among buffers of
 * the same size the one given back last is taken first.
 *
 * @module
 */

/** Smallest frame received into a pooled buffer. */
export const FRAME_POOL_MIN_BYTES = 64 * 1024;

/**
 * Writes `bytes` (zeros) once from this program and once by the kernel (reading `/dev/zero` into
 * them), as a receive buffer is used: written by the kernel's socket copy, read by a decode
 * worker. On this kind of VM the first access to a page costs about 10 µs in each of the two
 * modes separately (measured: a buffer only the program had written took the kernel's first
 * socket copy about 1 ms per 350 KB frame, against 0.07 ms later; one only the kernel had written
 * took a worker's first read as long; written both ways, both were fast from the first frame).
 * Without `/dev/zero` (another OS, no read permission) the program's write is all it does.
 */
export function writeBothWays(bytes: Uint8Array): void {
  bytes.fill(0);
  try {
    using zero = Deno.openSync("/dev/zero");
    for (let at = 0; at < bytes.length;) {
      const n = zero.readSync(bytes.subarray(at));
      if (n === null || n === 0) return;
      at += n;
    }
  } catch {
    // The program's write stays the only one.
  }
}

/** Receive buffers of one stream; see the module doc. */
export class FrameBufferPool {
  #max: number;
  #maxBytes: number;
  #kept: ArrayBuffer[] = [];
  #keptBytes = 0;
  #made = new WeakSet<ArrayBufferLike>();
  /** Buffers made by {@link prepare}: any frame up to their size may use them. */
  #roomy = new WeakSet<ArrayBufferLike>();
  #prepared = false;

  /** Creates a pool that keeps at most `max` free buffers of at most `maxBytes` together. */
  constructor(max = 256, maxBytes = 128 * 2 ** 20) {
    this.#max = max;
    this.#maxBytes = maxBytes;
  }

  /** Free buffers kept now. */
  get kept(): number {
    return this.#kept.length;
  }

  /**
   * How many receive buffers of `capacity` bytes (rounded up to 64 KiB) to prepare for the first
   * frames of the stream: up to `count`, within the pool's bounds, once per pool (later calls
   * answer 0). The caller has another thread make and write them (allocating and first writing
   * fresh memory is what costs, see the module doc) and hands them in with {@link givePrepared}.
   */
  prepare(capacity: number, count: number): { count: number; bytes: number } {
    const bytes = Math.ceil(Math.max(capacity, 1) / FRAME_POOL_MIN_BYTES) * FRAME_POOL_MIN_BYTES;
    if (this.#prepared) return { count: 0, bytes };
    this.#prepared = true;
    const room = Math.min(
      this.#max - this.#kept.length,
      Math.floor((this.#maxBytes - this.#keptBytes) / bytes),
    );
    return { count: Math.max(0, Math.min(count, room)), bytes };
  }

  /** Keeps prepared buffers ({@link prepare}): any frame up to their size may use them. */
  givePrepared(buffers: ArrayBuffer[]): void {
    for (const buffer of buffers) {
      this.#roomy.add(buffer);
      this.give(buffer);
    }
  }

  /**
   * A view of exactly `size` bytes at offset 0 of a buffer of this pool (a kept one when one is
   * large enough and not more than twice too large, or a prepared one), or of a new array for
   * small frames.
   */
  take(size: number): Uint8Array {
    if (size < FRAME_POOL_MIN_BYTES) return new Uint8Array(size);
    let best = -1;
    for (let i = 0; i < this.#kept.length; i++) {
      const length = this.#kept[i].byteLength;
      if (length < size || (length > 2 * size && !this.#roomy.has(this.#kept[i]))) continue;
      // Among equal fits the one given back last: while decoding keeps up, the same few buffers
      // go round (warm in the caches) instead of every kept one in turn.
      if (best < 0 || length <= this.#kept[best].byteLength) best = i;
    }
    if (best >= 0) {
      const buffer = this.#kept.splice(best, 1)[0];
      this.#keptBytes -= buffer.byteLength;
      return new Uint8Array(buffer, 0, size);
    }
    // Room for the next frames of the series, which compress to slightly different sizes.
    const capacity = Math.ceil((size * 1.125) / FRAME_POOL_MIN_BYTES) * FRAME_POOL_MIN_BYTES;
    const buffer = new ArrayBuffer(capacity);
    this.#made.add(buffer);
    return new Uint8Array(buffer, 0, size);
  }

  /** Whether `frame` lies in a buffer of this pool (nothing else uses that buffer). */
  owns(frame: Uint8Array): boolean {
    return this.#made.has(frame.buffer);
  }

  /**
   * Gives a buffer back for the next frames (the caller no longer uses it); buffers below
   * {@link FRAME_POOL_MIN_BYTES} and any beyond the bound are left to the garbage collector.
   */
  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength < FRAME_POOL_MIN_BYTES || buffer.byteLength === 0) return;
    if (this.#kept.includes(buffer)) return;
    this.#made.add(buffer);
    this.#kept.push(buffer);
    this.#keptBytes += buffer.byteLength;
    while (this.#kept.length > this.#max || this.#keptBytes > this.#maxBytes) {
      this.#keptBytes -= this.#kept.shift()!.byteLength;
    }
  }
}
