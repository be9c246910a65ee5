/**
 * Minimal PNG writer for palette images (colour type 3, 8 bits, one IDAT, zlib via node:zlib).
 *
 * @module
 */

import { deflateSync } from "node:zlib";
import type { Colormap } from "./colormap.ts";
import { concatBytes } from "../../core/bytes.ts";

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC, as PNG chunks use) of `bytes`. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out, 4, 8 + data.length));
  return out;
}

/** Encodes a `width`×`height` image of palette indices (0..255) with `map`'s palette as PNG. */
export function encodePng(
  indices: Uint16Array | Uint8Array,
  width: number,
  height: number,
  map: Colormap,
): Uint8Array {
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  header[8] = 8; // bit depth
  header[9] = 3; // palette colour
  const raw = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y++) {
    const dst = y * (width + 1); // filter byte 0 (None) first
    const src = y * width;
    for (let x = 0; x < width; x++) raw[dst + 1 + x] = indices[src + x];
  }
  const idat = new Uint8Array(deflateSync(raw, { level: 6 }));
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("PLTE", map.lut),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  return concatBytes(parts);
}
