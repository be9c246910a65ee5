/**
 * Body of a stream decode worker (started by `decode_pool.ts`): decodes one stream v2 frame per
 * request — CBOR, bslz4/LZ4 in WebAssembly — and posts the stream event back with the frame's
 * buffer for the next frames. Images go into the slots of the lent series stacks when a target
 * is set (shared memory: nothing to transfer or copy), else into output buffers of the worker,
 * transferred, not copied; buffers the main thread has released arrive with the next request and
 * are reused for the next images.
 *
 * The WebAssembly module is compiled when the worker starts and the decoding code run a few hundred
 * times on a small synthetic frame (so the engine has optimised it before the first series), and a
 * new target's image size is prepared for at once (`prepareDecoder`), ahead of the series' first
 * frame.
 *
 * @module
 */

import { adoptDecodeBuffers, decodeBuffersMade, releaseDecodeBuffers } from "./decode_buffers.ts";
import { prepareDecoder } from "./bslz4.ts";
import { decodeFrame } from "./frame_decode.ts";
import { writeBothWays } from "./frame_buffers.ts";
import { encodeStreamMessage } from "./stream2.ts";
import { type ImageTarget, targetImageBytes } from "./image_target.ts";
import type { WorkerReply, WorkerRequest } from "./decode_pool.ts";
import { eventUses, transferablesOf } from "./decode_pool.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply, transfer?: Transferable[]): void;
}

const scope = globalThis as unknown as WorkerScope;
/** Decodes of the start-up warm-up. */
const WARM_UP_DECODES = 300;
const held = new Map<number, () => void>();
let target: ImageTarget | undefined;

// Compile the module now, and run the decoding code until the engine has optimised it, not on
// the first images of the first series.
prepareDecoder(0);
warmUpDecoding();

/** Decodes a small synthetic bslz4 image frame a few hundred times (a few ms at start). */
function warmUpDecoding(): void {
  const pixels = new Uint32Array(64 * 64).map((_, i) => (i % 7 === 0 ? i & 0xfff : 0));
  const frame = encodeStreamMessage({
    type: "image",
    seriesId: 0,
    seriesUniqueId: "warm-up",
    imageId: 0,
    realTime: [1, 1000],
    seriesDate: "2024-01-01T00:00:00Z",
    startTime: [0, 1000],
    stopTime: [1, 1000],
    data: new Map([["warm-up", { dims: [64, 64], data: pixels }]]),
  });
  for (let i = 0; i < WARM_UP_DECODES; i++) {
    const event = decodeFrame(frame);
    if (event.kind === "message" && event.message.type === "image") {
      releaseDecodeBuffers(Object.values(event.message.data).map((c) => c.pixels));
    }
  }
}

scope.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const request = e.data;
  if (request.type === "release") {
    held.get(request.seq)?.();
    held.delete(request.seq);
    return;
  }
  if (request.type === "touch") {
    const buffers = Array.from({ length: request.count }, () => new ArrayBuffer(request.bytes));
    for (const buffer of buffers) writeBothWays(new Uint8Array(buffer));
    scope.postMessage({ type: "touched", buffers }, buffers);
    return;
  }
  if (request.type === "prepare") {
    scope.postMessage({ type: "prepared", bytes: prepareDecoder(request.imageBytes) });
    return;
  }
  if (request.type === "target") {
    target = request.target;
    if (target !== undefined) {
      const bytes = prepareDecoder(targetImageBytes(target));
      scope.postMessage({ type: "prepared", bytes });
    }
    return;
  }
  const recycled = request.recycled.map((b) => new Uint8Array(b));
  adoptDecodeBuffers(recycled);
  releaseDecodeBuffers(recycled);
  const event = decodeFrame(request.frame, target);
  if (request.hold) await new Promise<void>((resolve) => held.set(request.seq, resolve));
  const transfer: Transferable[] = transferablesOf(event);
  const reply: WorkerReply = {
    type: "decoded",
    seq: request.seq,
    event,
    made: decodeBuffersMade(),
  };
  // The frame's buffer goes back to the reader's pool unless an image is viewed in it.
  const frameBuffer = request.frame.buffer as ArrayBuffer;
  if (!eventUses(event, frameBuffer)) {
    reply.frameBuffer = frameBuffer;
    transfer.push(frameBuffer);
  }
  scope.postMessage(reply, transfer);
};
