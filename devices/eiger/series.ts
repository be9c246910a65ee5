/**
 * Assembles one EIGER image series from decoded stream v2 messages into device data events.
 *
 * Sans-I/O: the backend feeds it {@link StreamEvent}s and the sequence id the `arm` reply gave;
 * the collector checks every message (series id, unique id, image ids, channels, geometry, pixel
 * type), emits StartData/ImageData/EndData through a callback and records the first problem as an
 * error text that names the series. Images that arrived complete before a problem stay emitted.
 *
 * @module
 */

import { type DataEvent, imageOrderProblem, type PixelArray, type PixelType } from "../contract.ts";
import { releaseDecodeBuffers } from "./decode_buffers.ts";

/** Decoded `start` message (only the fields the backend uses). */
export interface StreamStart {
  type: "start";
  seriesId: number;
  uniqueId: string;
  channels: string[];
  numberOfImages: number;
  width: number;
  height: number;
  /** `image_dtype` when the DCU sends it. */
  imageDtype?: string;
}

/** One decoded channel image. */
export interface StreamChannelImage {
  /** `[rows, cols]` = `[height, width]`. */
  dims: [number, number];
  dtype: PixelType;
  pixels: PixelArray;
}

/** Decoded `image` message. */
export interface StreamImage {
  type: "image";
  seriesId: number;
  uniqueId: string;
  imageId: number;
  /** Real exposure time in seconds. */
  realTime: number;
  /** Image start, Unix seconds (`series_date` + `start_time`). */
  timestamp: number;
  data: Record<string, StreamChannelImage>;
}

/** Decoded `end` message. */
export interface StreamEnd {
  type: "end";
  seriesId: number;
  uniqueId: string;
}

/** Any decoded stream message. */
export type StreamMessage = StreamStart | StreamImage | StreamEnd;

/** What a stream source yields: messages, decode failures and connection changes. */
export type StreamEvent =
  | {
    kind: "message";
    message: StreamMessage;
    /**
     * Frames waiting for decoding when this one arrived, itself included (set by the decode
     * pool; 1 = nothing was waiting): how far decoding was behind the stream.
     */
    backlog?: number;
  }
  | { kind: "error"; message: string }
  | { kind: "overflow"; message: string }
  | { kind: "connected" }
  | { kind: "disconnected"; reason: string };

/** What the collector expects of the series (from the device configuration). */
export interface SeriesExpectation {
  numImages: number;
  channels: string[];
  width: number;
  height: number;
  pixelType: PixelType;
}

/** Collects one series; see the module doc. */
export class SeriesCollector {
  /** Local series id used in the data events. */
  readonly id: string;
  #expect: SeriesExpectation;
  #emit: (event: DataEvent) => void;
  #armed: number | undefined;
  #pending: StreamEvent[] = [];
  #start: StreamStart | undefined;
  #rejectedStart: StreamStart | undefined;
  #received = new Set<number>();
  #ended = false;
  #closed = false;
  #error: string | undefined;
  #waiters: (() => void)[] = [];
  #firstImageAt = 0;
  #lastImageAt = 0;
  #inPlace = 0;
  #maxBacklog = 0;

  /** Creates a collector that emits events for the local series id `id`. */
  constructor(id: string, expect: SeriesExpectation, emit: (event: DataEvent) => void) {
    this.id = id;
    this.#expect = expect;
    this.#emit = emit;
  }

  /** First problem found, naming the series; undefined while all is well. */
  get error(): string | undefined {
    return this.#error;
  }
  /** True once the `start` of the armed series was accepted. */
  get started(): boolean {
    return this.#start !== undefined;
  }
  /** Number of images received and emitted. */
  get received(): number {
    return this.#received.size;
  }
  /** True when all images arrived. */
  get complete(): boolean {
    return this.#received.size === this.#expect.numImages;
  }
  /** True after {@link SeriesCollector.close}: the series was given up, nothing more is emitted. */
  get closed(): boolean {
    return this.#closed;
  }
  /** True after a regular end (EndData emitted). */
  get ended(): boolean {
    return this.#ended;
  }
  /** Images received decoded in place, in shared memory (lent series stacks). */
  get inPlace(): number {
    return this.#inPlace;
  }

  /**
   * The most frames that were waiting for decoding when a message of this series arrived (its
   * own frame included; 0 when the stream does not say): how close the series came to the
   * decode backlog bound.
   */
  get maxBacklog(): number {
    return this.#maxBacklog;
  }
  /** Images per second from the first to the last image handed on (0 below two images). */
  get imageRate(): number {
    const seconds = (this.#lastImageAt - this.#firstImageAt) / 1000;
    return this.#received.size > 1 && seconds > 0 ? (this.#received.size - 1) / seconds : 0;
  }

  /** `series_unique_id` of the accepted start message, once known. */
  get uniqueId(): string | undefined {
    return this.#start?.uniqueId;
  }
  /** A start message refused because its series id differed from the armed one. */
  get rejectedStart(): StreamStart | undefined {
    return this.#rejectedStart;
  }
  /** The sequence id of the armed series, once known. */
  get seriesNumber(): number | undefined {
    return this.#armed;
  }

  /** A short description of the series for messages: `series 7` or `the series being armed`. */
  get label(): string {
    return this.#armed === undefined ? "the series being armed" : `series ${this.#armed}`;
  }

  /** Resolves at the next change of state (message handled, error, close). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Records a problem (the first one wins) and stops emitting. */
  fail(message: string): void {
    if (this.#error === undefined && !this.#closed) this.#error = message;
    this.#notify();
  }

  /** Stops emitting (cancel or error handled by the caller). */
  close(): void {
    this.#closed = true;
    this.#notify();
  }

  /** Sets the sequence id from the `arm` reply and handles messages that came before it. */
  armed(seriesNumber: number): void {
    this.#armed = seriesNumber;
    const pending = this.#pending;
    this.#pending = [];
    for (const event of pending) this.handle(event);
    this.#notify();
  }

  /** Handles one stream event. */
  handle(event: StreamEvent): void {
    if (this.#closed || this.#error !== undefined || this.#ended) return;
    if (this.#armed === undefined) {
      this.#pending.push(event);
      return;
    }
    switch (event.kind) {
      case "connected":
        break;
      case "disconnected":
        this.fail(`image stream connection lost during ${this.label} (${event.reason})`);
        break;
      case "error":
        this.fail(`${this.label}: bad stream message: ${event.message}`);
        break;
      case "overflow":
        this.fail(`${this.label}: ${event.message}`);
        break;
      case "message":
        if (event.backlog !== undefined && event.backlog > this.#maxBacklog) {
          this.#maxBacklog = event.backlog;
        }
        this.#message(event.message);
        break;
    }
    this.#notify();
  }

  #message(msg: StreamMessage): void {
    const armed = this.#armed!;
    if (this.#start === undefined) {
      // Leftovers of series this IOC abandoned are filtered out before they get here.
      if (msg.type !== "start") {
        this.fail(
          msg.seriesId === armed
            ? `series ${armed}: stream ${msg.type} message before its start`
            : `stream ${msg.type} of unknown series ${msg.seriesId} (${msg.uniqueId}) before the start of series ${armed}`,
        );
        return;
      }
      if (msg.seriesId !== armed) {
        this.#rejectedStart = msg;
        this.fail(`stream series id ${msg.seriesId} does not match armed series ${armed}`);
        return;
      }
      const e = this.#expect;
      if (msg.width !== e.width || msg.height !== e.height) {
        this.fail(
          `series ${armed}: stream geometry ${msg.width}x${msg.height} differs from ${e.width}x${e.height}`,
        );
        return;
      }
      if (msg.numberOfImages !== e.numImages) {
        this.fail(
          `series ${armed}: stream announces ${msg.numberOfImages} images, expected ${e.numImages}`,
        );
        return;
      }
      const missing = e.channels.filter((c) => !msg.channels.includes(c));
      if (missing.length > 0) {
        this.fail(`series ${armed}: stream lacks channel(s) ${missing.join(", ")}`);
        return;
      }
      this.#start = msg;
      this.#emit({ type: "start-data", seriesId: this.id, seriesNumber: armed });
      return;
    }
    const start = this.#start;
    if (msg.type === "start") {
      this.fail(`series ${armed}: second stream start (series id ${msg.seriesId})`);
      return;
    }
    if (msg.seriesId !== armed || msg.uniqueId !== start.uniqueId) {
      this.fail(
        `stream ${msg.type} of series ${msg.seriesId} (${msg.uniqueId}) during series ${armed} (${start.uniqueId})`,
      );
      return;
    }
    if (msg.type === "end") {
      if (!this.complete) {
        const missing: number[] = [];
        for (let i = 0; i < this.#expect.numImages; i++) {
          if (!this.#received.has(i)) missing.push(i);
        }
        this.fail(
          `series ${armed} ended after ${this.#received.size} of ${this.#expect.numImages} images (missing image id ${
            missing.join(", ")
          })`,
        );
        return;
      }
      this.#ended = true;
      this.#emit({ type: "end-data", seriesId: this.id });
      return;
    }
    this.#image(msg, armed);
  }

  #image(msg: StreamImage, armed: number): void {
    const e = this.#expect;
    if (!Number.isInteger(msg.imageId) || msg.imageId < 0 || msg.imageId >= e.numImages) {
      this.fail(`series ${armed}: image id ${msg.imageId} out of range 0..${e.numImages - 1}`);
      return;
    }
    if (this.#received.has(msg.imageId)) {
      this.fail(`series ${armed}: image id ${msg.imageId} received twice`);
      return;
    }
    // The contract's one image-order rule (the controller's assembler applies it too).
    const order = imageOrderProblem(msg.imageId, this.#received.size, e.numImages);
    if (order !== undefined) {
      this.fail(`series ${armed}: ${order}`);
      return;
    }
    const images: Record<string, PixelArray> = {};
    for (const channel of e.channels) {
      const data = msg.data[channel];
      if (data === undefined) {
        this.fail(`series ${armed} image ${msg.imageId}: channel ${channel} missing`);
        return;
      }
      if (data.dims[0] !== e.height || data.dims[1] !== e.width) {
        this.fail(
          `series ${armed} image ${msg.imageId} ${channel}: shape ${
            data.dims.join("x")
          } differs from ${e.height}x${e.width}`,
        );
        return;
      }
      if (data.dtype !== e.pixelType || data.pixels.length !== e.width * e.height) {
        this.fail(
          `series ${armed} image ${msg.imageId} ${channel}: ${data.dtype}[${data.pixels.length}] instead of ${e.pixelType}[${
            e.width * e.height
          }]`,
        );
        return;
      }
      images[channel] = data.pixels;
    }
    this.#received.add(msg.imageId);
    if (Object.values(images).every((image) => image.buffer instanceof SharedArrayBuffer)) {
      this.#inPlace++;
    }
    this.#lastImageAt = performance.now();
    if (this.#received.size === 1) this.#firstImageAt = this.#lastImageAt;
    this.#emit({
      type: "image-data",
      seriesId: this.id,
      index: msg.imageId,
      timestamp: msg.timestamp,
      exposure: msg.realTime,
      images,
      // Decoded buffers go back to the decoders once the controller is done with them.
      release: () => releaseDecodeBuffers(Object.values(images)),
    });
  }
}
