/**
 * GVSP chunk data: payloads of type "image with chunks" (0x4001) or "extended chunk" (0x0005)
 * carry the image as the first chunk followed by more chunks (timestamps, counters, ...). Each
 * chunk is its data followed by a tag of two big-endian u32: chunk id, data length. The layout is
 * read from the end of the payload backwards; it must lead exactly to the payload's first byte.
 *
 * @module
 */

import { GvspFormatError } from "./gvsp.ts";

/** One chunk: where its data lies in the payload. */
export interface Chunk {
  id: number;
  offset: number;
  length: number;
}

/** Bytes of a chunk tag (id, length). */
export const CHUNK_TAG = 8;

/**
 * The chunks of `payload` in payload order (the image first). Throws {@link GvspFormatError}
 * naming the problem when the tags do not chain back to byte 0 (an unknown or damaged layout).
 */
export function parseChunks(payload: Uint8Array, maxChunks = 64): Chunk[] {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const out: Chunk[] = [];
  let end = payload.length;
  while (end > 0) {
    if (out.length >= maxChunks) {
      throw new GvspFormatError(`chunk layout not understood: more than ${maxChunks} chunks`);
    }
    if (end < CHUNK_TAG) {
      throw new GvspFormatError(
        `chunk layout not understood: ${end} bytes left before the chunk at ${end}, no room for a tag`,
      );
    }
    const id = dv.getUint32(end - CHUNK_TAG);
    const length = dv.getUint32(end - 4);
    const offset = end - CHUNK_TAG - length;
    if (offset < 0) {
      throw new GvspFormatError(
        `chunk layout not understood: chunk 0x${id.toString(16)} of ${length} bytes ` +
          `ending at byte ${end - CHUNK_TAG} would start before the payload`,
      );
    }
    out.push({ id, offset, length });
    end = offset;
  }
  if (out.length === 0) throw new GvspFormatError("chunk layout not understood: empty payload");
  return out.reverse();
}

/** Encodes chunks (id, data) as a payload (simulators and tests). */
export function encodeChunks(chunks: readonly { id: number; data: Uint8Array }[]): Uint8Array {
  const size = chunks.reduce((n, c) => n + c.data.length + CHUNK_TAG, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let at = 0;
  for (const c of chunks) {
    out.set(c.data, at);
    at += c.data.length;
    dv.setUint32(at, c.id);
    dv.setUint32(at + 4, c.data.length);
    at += CHUNK_TAG;
  }
  return out;
}
