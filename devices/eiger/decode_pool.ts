/**
 * Decodes stream v2 frames off the event loop: a small pool of workers (`decode_worker.ts`), each
 * decoding whole frames (CBOR + bslz4/LZ4) and sending the pixel buffers back transferred, not
 * copied. Results come out in the order the frames went in, whatever order the workers finish
 * in; connection events pushed in between keep their place. Released image buffers travel back
 * to the workers with the next frames, so a steady stream allocates no new image memory.
 *
 * In place: while series stacks are lent ({@link StreamDecoder.setTarget}, `image_target.ts`),
 * the workers decode each image straight into its slot of the stack — the one write of the image
 * after decompression, no output buffer, nothing to copy on the event loop. A new target takes
 * effect only once every frame dispatched under the previous one came back (frames wait in the
 * queue meanwhile), so two lendings never write at the same time.
 *
 * Ready before the first series: each worker compiles the WebAssembly module and warms up its
 * decoding code when it starts; {@link StreamDecoder.prepare} (the backend calls it once it knows
 * the image size) and a new target's size make each worker write its module memory for that size
 * (`prepareDecoder`) and the workers make and write the first receive buffers, off the event loop.
 *
 * Decoded into buffers of their own (no target), at most {@link REORDER_WINDOW_PER_WORKER} frames
 * per worker are dispatched beyond the earliest one not yet delivered: a late worker cannot make
 * the others run ahead into new image buffers (results are released only in order).
 *
 * Bounded: at most `backlog` frames may be waiting (queued, in a worker, or decoded and waiting
 * for an earlier frame). One more frame is an overflow: an `overflow` event takes its place in
 * the order (the series collector turns it into the acquisition's error, naming the bound), and
 * frames are discarded — counted and logged — until the backlog has drained. Memory therefore
 * stays below about `backlog` × (compressed frame) + workers × 4 × (decoded frame) (none when
 * decoding in place).
 *
 * With `workers: 0` (or when workers cannot start) frames are decoded on the calling thread.
 *
 * @module
 */

import { getLog } from "../../core/log.ts";
import { adoptDecodeBuffers, takeKeptDecodeBuffers } from "./decode_buffers.ts";
import { decodeFrame } from "./frame_decode.ts";
import { prepareDecoder } from "./bslz4.ts";
import { type ImageTarget, rebaseOnTarget, targetImageBytes } from "./image_target.ts";
import type { StreamEvent } from "./series.ts";
import type { FrameBufferPool } from "./frame_buffers.ts";

/** Options of {@link StreamDecoder}. */
export interface DecodePoolOptions {
  /** Worker threads; 0 decodes on the calling thread (default {@link defaultDecodeWorkers}). */
  workers: number;
  /** Frames that may wait for decoding before the series fails (default {@link DEFAULT_BACKLOG}). */
  backlog: number;
  /**
   * Receive buffers of the frames: a frame in one of them is transferred to a worker whole
   * (even when it covers only part of it), and the buffer comes back for reuse with the result.
   */
  frames?: FrameBufferPool;
  /** Test hook: the worker keeps the result of these frames until {@link StreamDecoder.releaseHeld}. */
  hold?: (seq: number) => boolean;
  /** Test hook: called when a worker's result for frame `seq` arrives (completion order). */
  onResult?: (seq: number) => void;
  /**
   * Called when a decoder (a worker, or this thread) prepared its module memory for a new target,
   * and when a worker wrote prepared receive buffers: the bytes made ready.
   */
  onPrepared?: (bytes: number) => void;
}

/** Default bound of waiting frames (about 160 MB of 1028×512 uint32 bslz4 frames). */
export const DEFAULT_BACKLOG = 256;

/**
 * Frames one worker has at most in flight: enough queued work to keep it busy while its results
 * travel back and the event loop finishes a turn of up to 4 ms (reading the socket) before it
 * dispatches more; a 1028×512 uint32 bslz4 frame takes a worker 0.6–1.3 ms. With 2, the workers
 * idled while a backlog waited on the event loop, and series of 500 images at 1 kHz fell behind
 * for good (see docs/eiger-stream.md, "Long series").
 */
const PER_WORKER = 4;

/**
 * Frames per worker that may be dispatched beyond the earliest one not yet delivered, when images
 * go into buffers of their own (not in place): bounds the decoded images waiting for an earlier
 * one, and so the output buffers in use (recycled, none new in steady state).
 */
const REORDER_WINDOW_PER_WORKER = 4;

/** Default worker count: one per core, 1..8. */
export function defaultDecodeWorkers(): number {
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  return Math.max(1, Math.min(8, cores));
}

/** A request to a decode worker. */
export type WorkerRequest =
  | { type: "decode"; seq: number; frame: Uint8Array; recycled: ArrayBuffer[]; hold: boolean }
  | { type: "release"; seq: number }
  /** Decode images into these stacks from now on (undefined: into buffers of its own). */
  | { type: "target"; target: ImageTarget | undefined }
  /** Get ready for images of `imageBytes` (`prepareDecoder`). */
  | { type: "prepare"; imageBytes: number }
  /** Make and write `count` receive buffers of `bytes` and send them (`FrameBufferPool.prepare`). */
  | { type: "touch"; count: number; bytes: number };

/** A decode worker's answer. */
export type WorkerReply = {
  type: "decoded";
  seq: number;
  event: StreamEvent;
  /** The frame's buffer, given back when no pixel array lies in it. */
  frameBuffer?: ArrayBuffer;
  /** Output buffers the worker made so far (`decodeBuffersMade`). */
  made: number;
} | {
  type: "prepared";
  /** Module memory written ahead for the target's image size. */
  bytes: number;
} | {
  type: "touched";
  /** The receive buffers of a `touch` request, made and written once. */
  buffers: ArrayBuffer[];
};

/** Whether a pixel array of `event` lies in `buffer` (an uncompressed image viewed in place). */
export function eventUses(event: StreamEvent, buffer: ArrayBufferLike): boolean {
  if (event.kind !== "message" || event.message.type !== "image") return false;
  return Object.values(event.message.data).some((c) => c.pixels.buffer === buffer);
}

/** The buffers of an event's pixel arrays, each once (for a transfer list). */
export function transferablesOf(event: StreamEvent): ArrayBuffer[] {
  if (event.kind !== "message" || event.message.type !== "image") return [];
  const buffers = new Set<ArrayBuffer>();
  for (const channel of Object.values(event.message.data)) {
    // Shared memory (a lent series stack) is shared, never transferred.
    if (channel.pixels.buffer instanceof SharedArrayBuffer) continue;
    buffers.add(channel.pixels.buffer as ArrayBuffer);
  }
  return [...buffers];
}

interface Slot {
  worker: Worker;
  jobs: Set<number>;
  answered: boolean;
  /** Output buffers the worker reported made. */
  made: number;
}

interface Job {
  seq: number;
  frame: Uint8Array;
}

/** Ordered, bounded frame decoding; see the module doc. */
export class StreamDecoder {
  #deliver: (event: StreamEvent) => void;
  #options: DecodePoolOptions;
  #log = getLog("eiger.decode");
  #slots: Slot[] = [];
  #queue: Job[] = [];
  #nextSeq = 0;
  #nextOut = 0;
  #done = new Map<number, { event: StreamEvent; frame: boolean }>();
  /** Per frame in the pool: the backlog when it was pushed (see `StreamEvent`'s `backlog`). */
  #backlogAt = new Map<number, number>();
  #frames = 0;
  #discarded = 0;
  #inline: boolean;
  #closed = false;
  #idle: (() => void)[] = [];
  /** The target the decoders have (frames dispatched now write into it). */
  #target: ImageTarget | undefined;
  /** The target asked for with {@link setTarget} (applied once no frame is in flight). */
  #wanted: ImageTarget | undefined;
  /** Output buffers (channels) of the last decoded image: recycled buffers sent per frame. */
  #imageBuffers = 1;

  /** Creates a decoder that hands events, in push order, to `deliver`. */
  constructor(options: Partial<DecodePoolOptions>, deliver: (event: StreamEvent) => void) {
    this.#options = {
      ...options,
      workers: options.workers ?? defaultDecodeWorkers(),
      backlog: options.backlog ?? DEFAULT_BACKLOG,
    };
    this.#deliver = deliver;
    this.#inline = this.#options.workers <= 0;
    // Start the workers now: loading and compiling takes a while, better before the first series.
    for (let i = 0; i < this.#options.workers; i++) this.#startWorker();
  }

  /** Frames pushed and not yet delivered. */
  get backlog(): number {
    return this.#frames;
  }

  /** Frames discarded after the last overflow. */
  get discarded(): number {
    return this.#discarded;
  }

  /** Frames waiting for a worker (not yet dispatched). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Output buffers the workers made so far (none per image in steady state). */
  get workerBuffersMade(): number {
    return this.#slots.reduce((sum, slot) => sum + slot.made, 0);
  }

  /**
   * Decodes images into `target`'s stacks from now on (undefined: into buffers of their own),
   * once the frames in flight under the current target came back; see the module doc.
   */
  setTarget(target: ImageTarget | undefined): void {
    this.#wanted = target;
    if (this.#applyTarget()) this.#dispatch();
  }

  /**
   * Gets the decoders ready for images of `imageBytes` ahead of the first series (the backend
   * calls it once it knows the image size): each worker writes its module memory for that size,
   * and receive buffers are prepared ({@link FrameBufferPool.prepare}). Setting a target does the
   * same for the target's image size.
   */
  prepare(imageBytes: number): void {
    if (this.#closed || !(imageBytes > 0)) return;
    if (this.#slots.length === 0) {
      this.#options.onPrepared?.(prepareDecoder(imageBytes));
      return;
    }
    for (const slot of this.#slots) {
      const request: WorkerRequest = { type: "prepare", imageBytes };
      slot.worker.postMessage(request);
    }
    this.#prepareReceiveBuffers(imageBytes);
  }

  /** Decodes `frame` (its buffer may be transferred: the caller gives it up). */
  push(frame: Uint8Array): void {
    if (this.#closed) return;
    if (this.#discarded > 0) {
      if (this.#frames > 0) {
        this.#discarded++;
        return;
      }
      this.#log.warn("Decode backlog drained", { discarded: this.#discarded });
      this.#discarded = 0;
    }
    if (this.#frames >= this.#options.backlog) {
      this.#discarded = 1;
      const bound = this.#options.backlog;
      this.#log.warn("Decode backlog overflow", { bound });
      this.pushEvent({
        kind: "overflow",
        message: `decode backlog overflow: more than ${bound} frames waiting for decoding ` +
          `(EIGER_DECODE_BACKLOG=${bound}); frames arrive faster than they are decoded`,
      });
      return;
    }
    const seq = this.#nextSeq++;
    this.#frames++;
    this.#backlogAt.set(seq, this.#frames);
    if (this.#inline && this.#queue.length === 0 && this.#applyTarget()) {
      this.#complete(seq, this.#decodeHere(frame), true);
      return;
    }
    this.#queue.push({ seq, frame });
    this.#dispatch();
  }

  /** Passes a non-frame event (connection change) through in order with the frames. */
  pushEvent(event: StreamEvent): void {
    if (this.#closed) return;
    this.#complete(this.#nextSeq++, event, false);
  }

  /** Resolves once every pushed frame has been delivered. */
  idle(): Promise<void> {
    if (this.#frames === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Test hook: lets a worker post the result it holds for frame `seq`. */
  releaseHeld(seq: number): void {
    for (const slot of this.#slots) {
      if (slot.jobs.has(seq)) slot.worker.postMessage({ type: "release", seq });
    }
  }

  /** Stops the workers; frames still in flight are dropped. */
  close(): void {
    this.#closed = true;
    for (const slot of this.#slots) slot.worker.terminate();
    this.#slots = [];
    this.#queue = [];
    this.#backlogAt.clear();
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  #complete(seq: number, event: StreamEvent, frame: boolean): void {
    if (frame) {
      const backlog = this.#backlogAt.get(seq);
      this.#backlogAt.delete(seq);
      if (event.kind === "message" && backlog !== undefined) event.backlog = backlog;
    }
    this.#done.set(seq, { event, frame });
    while (true) {
      const next = this.#done.get(this.#nextOut);
      if (next === undefined) break;
      this.#done.delete(this.#nextOut);
      this.#nextOut++;
      if (next.frame) this.#frames--;
      this.#deliver(next.event);
    }
    if (this.#frames === 0) { for (const resolve of this.#idle.splice(0)) resolve(); }
  }

  /** Hands the wanted target to the decoders unless frames are in flight; true when done. */
  #applyTarget(): boolean {
    if (this.#wanted === this.#target) return true;
    if (this.#closed || this.#slots.some((slot) => slot.jobs.size > 0)) return false;
    const target = this.#target = this.#wanted;
    for (const slot of this.#slots) this.#postTarget(slot);
    if (target !== undefined) this.#prepareReceiveBuffers(targetImageBytes(target));
    if (this.#inline || this.#slots.length === 0) {
      const bytes = target === undefined ? 0 : prepareDecoder(targetImageBytes(target));
      if (target !== undefined) this.#options.onPrepared?.(bytes);
    }
    return true;
  }

  /**
   * Receive buffers for the first frames of the stream, made and written once by the workers
   * (not the event loop: allocating zeroes the memory): one per frame of the backlog bound,
   * within the pool's bounds, sized for frames up to a quarter of the raw image (bslz4 of
   * detector images is smaller), so that a backlog needs no new memory on the event loop.
   */
  #prepareReceiveBuffers(imageBytes: number): void {
    const frames = this.#options.frames;
    if (this.#slots.length === 0 || frames === undefined) return;
    const { count, bytes } = frames.prepare(imageBytes / 4, this.#options.backlog);
    const share = Math.ceil(count / this.#slots.length);
    this.#slots.forEach((slot, i) => {
      const part = Math.min(share, count - i * share);
      if (part <= 0) return;
      const request: WorkerRequest = { type: "touch", count: part, bytes };
      slot.worker.postMessage(request);
    });
  }

  #postTarget(slot: Slot): void {
    const request: WorkerRequest = { type: "target", target: this.#target };
    slot.worker.postMessage(request);
  }

  #dispatch(): void {
    // A new target waits until the frames in flight under the last one came back.
    if (!this.#applyTarget()) return;
    while (this.#queue.length > 0) {
      if (this.#inline) {
        const job = this.#queue.shift()!;
        this.#complete(job.seq, this.#decodeHere(job.frame), true);
        continue;
      }
      let slot = this.#slots.reduce<Slot | undefined>(
        (best, s) => (best === undefined || s.jobs.size < best.jobs.size ? s : best),
        undefined,
      );
      if (slot === undefined) slot = this.#startWorker(); // all failed: try a new one
      if (slot === undefined || slot.jobs.size >= PER_WORKER) return;
      // Into buffers of their own, results wait for the earliest frame: at most a window of
      // them, so a worker that is late cannot make the others fill new image buffers.
      const window = REORDER_WINDOW_PER_WORKER * this.#slots.length;
      if (this.#target === undefined && this.#queue[0].seq - this.#nextOut >= window) return;
      const job = this.#queue.shift()!;
      let frame = job.frame;
      // Only a frame that owns its whole buffer (or one of the pool's) can be transferred;
      // anything else is copied.
      const whole = frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength;
      if (!whole && this.#options.frames?.owns(frame) !== true) frame = frame.slice();
      // As many released buffers as one image uses: each worker gets back what it uses.
      const recycled = this.#target === undefined ? takeKeptDecodeBuffers(this.#imageBuffers) : [];
      const hold = this.#options.hold?.(job.seq) ?? false;
      slot.jobs.add(job.seq);
      const request: WorkerRequest = { type: "decode", seq: job.seq, frame, recycled, hold };
      slot.worker.postMessage(request, [frame.buffer as ArrayBuffer, ...recycled]);
    }
  }

  /** Decodes on this thread; a pooled frame buffer goes back unless pixels lie in it. */
  #decodeHere(frame: Uint8Array): StreamEvent {
    const event = decodeFrame(frame, this.#target);
    const pool = this.#options.frames;
    if (pool?.owns(frame) && !eventUses(event, frame.buffer)) {
      pool.give(frame.buffer as ArrayBuffer);
    }
    return event;
  }

  #startWorker(): Slot {
    const worker = new Worker(new URL("./decode_worker.ts", import.meta.url).href, {
      type: "module",
    });
    const slot: Slot = { worker, jobs: new Set(), answered: false, made: 0 };
    worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const reply = e.data;
      if (reply.type === "touched") {
        this.#options.frames?.givePrepared(reply.buffers);
        this.#options.onPrepared?.(reply.buffers.reduce((n, b) => n + b.byteLength, 0));
        return;
      }
      if (reply.type === "prepared") {
        slot.answered = true;
        this.#log.debug("Decode worker prepared", { bytes: reply.bytes });
        this.#options.onPrepared?.(reply.bytes);
        return;
      }
      const { seq, event, frameBuffer, made } = reply;
      if (frameBuffer !== undefined) this.#options.frames?.give(frameBuffer);
      slot.made = made;
      slot.answered = true;
      slot.jobs.delete(seq);
      if (event.kind === "message" && event.message.type === "image") {
        // Written into the current target (it changes only when no frame is in flight).
        if (this.#target !== undefined) rebaseOnTarget(event.message.data, this.#target);
        const pixels = Object.values(event.message.data).map((c) => c.pixels);
        adoptDecodeBuffers(pixels);
        this.#imageBuffers = Math.max(1, pixels.length);
      }
      this.#options.onResult?.(seq);
      if (this.#closed) return;
      this.#complete(seq, event, true);
      this.#dispatch();
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#workerFailed(slot, e.message);
    };
    worker.onmessageerror = () => this.#workerFailed(slot, "unreadable message from worker");
    this.#slots.push(slot);
    if (this.#target !== undefined) this.#postTarget(slot);
    return slot;
  }

  #workerFailed(slot: Slot, reason: string): void {
    slot.worker.terminate();
    this.#slots = this.#slots.filter((s) => s !== slot);
    if (this.#closed) return;
    this.#log.error("Decode worker failed", { reason, frames: slot.jobs.size });
    if (!slot.answered) {
      // A worker that never answered cannot start here (e.g. no module file): decode inline.
      this.#log.warn("Decoding on the event loop from now on");
      this.#inline = true;
    }
    for (const seq of slot.jobs) {
      this.#complete(seq, { kind: "error", message: `decode worker failed: ${reason}` }, true);
    }
    this.#dispatch();
  }
}
