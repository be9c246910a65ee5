/**
 * Decodes stream v2 frames (CBOR, bslz4/LZ4) into the {@link StreamEvent}s the series collector
 * works on, mapping wire messages to the backend's message form. Decode failures become `error`
 * events so the collector can name the series they hit. Runs on the event loop or in a decode
 * worker (`decode_worker.ts`).
 *
 * @module
 */

import type { PixelType } from "../contract.ts";
import { errorMessage } from "../../core/errors.ts";
import {
  decodeStreamMessage,
  type ImageOutputRequest,
  type StreamMessage as WireMessage,
} from "./stream2.ts";
import { claimSlot, type ImageTarget } from "./image_target.ts";
import type { StreamChannelImage, StreamEvent, StreamMessage } from "./series.ts";

const PIXEL_TYPES = new Set<string>([
  "uint8",
  "int8",
  "uint16",
  "int16",
  "uint32",
  "int32",
  "float32",
  "float64",
]);

function seconds(r: [number, number] | undefined): number {
  return r === undefined || r[1] === 0 ? 0 : r[0] / r[1];
}

/** Maps a decoded wire message to the backend's form; throws on missing required fields. */
export function fromWire(msg: WireMessage): StreamMessage {
  if (msg.type === "start") {
    if (msg.imageSizeX === undefined || msg.imageSizeY === undefined) {
      throw new Error(`start of series ${msg.seriesId} lacks image_size_x/y`);
    }
    if (msg.numberOfImages === undefined) {
      throw new Error(`start of series ${msg.seriesId} lacks number_of_images`);
    }
    return {
      type: "start",
      seriesId: msg.seriesId,
      uniqueId: msg.seriesUniqueId,
      channels: msg.channels,
      numberOfImages: msg.numberOfImages,
      width: msg.imageSizeX,
      height: msg.imageSizeY,
      imageDtype: msg.imageDtype,
    };
  }
  if (msg.type === "end") {
    return { type: "end", seriesId: msg.seriesId, uniqueId: msg.seriesUniqueId };
  }
  const data: Record<string, StreamChannelImage> = {};
  for (const [name, array] of msg.data) {
    if (array.dims.length !== 2 || !PIXEL_TYPES.has(array.dtype)) {
      throw new Error(
        `image ${msg.imageId} channel ${name}: unsupported ${array.dtype}[${array.dims.join("x")}]`,
      );
    }
    data[name] = {
      dims: [array.dims[0], array.dims[1]],
      dtype: array.dtype as PixelType,
      pixels: array.data as StreamChannelImage["pixels"],
    };
  }
  const date = msg.seriesDate === undefined ? NaN : Date.parse(msg.seriesDate);
  return {
    type: "image",
    seriesId: msg.seriesId,
    uniqueId: msg.seriesUniqueId,
    imageId: msg.imageId,
    realTime: seconds(msg.realTime),
    timestamp: (Number.isFinite(date) ? date / 1000 : Date.now() / 1000) + seconds(msg.startTime),
    data,
  };
}

/**
 * Decodes one stream v2 frame into a stream event (a decode failure becomes an `error` event).
 * With a `target`, image channels are decoded into their slots of the lent series stacks when
 * they can claim them (`image_target.ts`), else into buffers of their own.
 */
export function decodeFrame(frame: Uint8Array, target?: ImageTarget): StreamEvent {
  try {
    const options = target === undefined
      ? {}
      : { output: (request: ImageOutputRequest) => claimSlot(target, request) };
    return { kind: "message", message: fromWire(decodeStreamMessage(frame, options)) };
  } catch (error) {
    return { kind: "error", message: errorMessage(error) };
  }
}

/** Decodes one ZeroMQ message (each frame separately) into stream events. */
export function decodeFrames(frames: Uint8Array[]): StreamEvent[] {
  return frames.map((frame) => decodeFrame(frame));
}
