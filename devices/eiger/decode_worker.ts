/**
 * Body of a stream decode worker (started by `decode_pool.ts`): decodes one stream v2 frame per
 * request — CBOR, bslz4/LZ4 in WebAssembly — and posts the stream event back with the pixel
 * buffers transferred, not copied, and the frame's buffer with it for the next frames. Buffers the main thread has released arrive with the next
 * request and are reused for the next images.
 *
 * @module
 */

import { adoptDecodeBuffers, releaseDecodeBuffers } from "./decode_buffers.ts";
import { decodeFrame } from "./frame_decode.ts";
import type { WorkerReply, WorkerRequest } from "./decode_pool.ts";
import { eventUses, transferablesOf } from "./decode_pool.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply, transfer: Transferable[]): void;
}

const scope = globalThis as unknown as WorkerScope;
const held = new Map<number, () => void>();

scope.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const request = e.data;
  if (request.type === "release") {
    held.get(request.seq)?.();
    held.delete(request.seq);
    return;
  }
  const recycled = request.recycled.map((b) => new Uint8Array(b));
  adoptDecodeBuffers(recycled);
  releaseDecodeBuffers(recycled);
  const event = decodeFrame(request.frame);
  if (request.hold) await new Promise<void>((resolve) => held.set(request.seq, resolve));
  const transfer: Transferable[] = transferablesOf(event);
  const reply: WorkerReply = { seq: request.seq, event };
  // The frame's buffer goes back to the reader's pool unless an image is viewed in it.
  const frameBuffer = request.frame.buffer as ArrayBuffer;
  if (!eventUses(event, frameBuffer)) {
    reply.frameBuffer = frameBuffer;
    transfer.push(frameBuffer);
  }
  scope.postMessage(reply, transfer);
};
