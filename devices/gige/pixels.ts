/**
 * Monochrome pixel formats (PFNC codes) and their conversion into images: Mono8 as uint8;
 * Mono10/12/14/16 (little-endian 16-bit) as uint16 views without copying; the packed variants
 * (GigE Mono10Packed/Mono12Packed, PFNC Mono10p/Mono12p) unpacked into uint16. Colour and Bayer
 * formats are refused by name.
 *
 * @module
 */

/** What a pixel format becomes. */
export interface PixelFormatInfo {
  name: string;
  code: number;
  /** Element type of the delivered image. */
  pixelType: "uint8" | "uint16";
  /** Bytes of a `width × height` image in this format (no padding). */
  bytes(width: number, height: number): number;
  /** Packed formats need unpacking; the others are delivered as views. */
  packed: boolean;
  /** Significant bits. */
  bits: number;
}

function plain(name: string, code: number, bits: number): PixelFormatInfo {
  const bpp = bits <= 8 ? 1 : 2;
  return {
    name,
    code,
    pixelType: bpp === 1 ? "uint8" : "uint16",
    bytes: (w, h) => w * h * bpp,
    packed: false,
    bits,
  };
}

function packed(name: string, code: number, bits: number, bitsPerPixel: number): PixelFormatInfo {
  return {
    name,
    code,
    pixelType: "uint16",
    bytes: (w, h) => Math.ceil((w * h * bitsPerPixel) / 8),
    packed: true,
    bits,
  };
}

/** Supported formats by PFNC code. */
export const PIXEL_FORMATS: ReadonlyMap<number, PixelFormatInfo> = new Map(
  [
    plain("Mono8", 0x01080001, 8),
    plain("Mono10", 0x01100003, 10),
    plain("Mono12", 0x01100005, 12),
    plain("Mono14", 0x01100025, 14),
    plain("Mono16", 0x01100007, 16),
    packed("Mono10Packed", 0x010c0004, 10, 12),
    packed("Mono12Packed", 0x010c0006, 12, 12),
    packed("Mono10p", 0x010a0046, 10, 10),
    packed("Mono12p", 0x010c0047, 12, 12),
  ].map((f) => [f.code, f]),
);

/** Info of a supported format, or an error naming the format and what is supported. */
export function pixelFormatInfo(code: number, name?: string): PixelFormatInfo {
  const info = PIXEL_FORMATS.get(code);
  if (info !== undefined) return info;
  const label = name ?? `0x${code.toString(16).padStart(8, "0")}`;
  throw new Error(
    `pixel format ${label} is not supported (colour and Bayer formats are refused; use one of ${
      [...PIXEL_FORMATS.values()].map((f) => f.name).join(", ")
    })`,
  );
}

/** Unpacks `count` pixels of a packed format from `src` into `dst`. */
export function unpackPixels(code: number, src: Uint8Array, dst: Uint16Array, count: number): void {
  switch (code) {
    case 0x010c0006: // Mono12Packed (GigE)
      for (let i = 0, s = 0; i < count; i += 2, s += 3) {
        const b1 = src[s + 1];
        dst[i] = (src[s] << 4) | (b1 & 0x0f);
        if (i + 1 < count) dst[i + 1] = (src[s + 2] << 4) | (b1 >> 4);
      }
      return;
    case 0x010c0004: // Mono10Packed (GigE)
      for (let i = 0, s = 0; i < count; i += 2, s += 3) {
        const b1 = src[s + 1];
        dst[i] = (src[s] << 2) | (b1 & 0x03);
        if (i + 1 < count) dst[i + 1] = (src[s + 2] << 2) | ((b1 >> 4) & 0x03);
      }
      return;
    case 0x010c0047: // Mono12p (PFNC lsb)
      for (let i = 0, s = 0; i < count; i += 2, s += 3) {
        const b1 = src[s + 1];
        dst[i] = src[s] | ((b1 & 0x0f) << 8);
        if (i + 1 < count) dst[i + 1] = (b1 >> 4) | (src[s + 2] << 4);
      }
      return;
    case 0x010a0046: // Mono10p (PFNC lsb bit stream)
      for (let i = 0; i < count; i++) {
        const bit = i * 10;
        const s = bit >> 3;
        const shift = bit & 7;
        const word = src[s] | ((src[s + 1] ?? 0) << 8);
        dst[i] = (word >> shift) & 0x3ff;
      }
      return;
    default:
      throw new Error(`pixel format 0x${code.toString(16)} is not a packed format`);
  }
}
