/**
 * Sixel output of a palette image (DEC graphics, supported by xterm -ti vt340, mlterm, foot,
 * WezTerm, ...).
 *
 * Own encoder on typed arrays: per band of six rows it collects, for each colour used in the band,
 * the six-bit column patterns and the column span the colour occupies, then writes only those
 * spans, run-length encoded. Output goes straight into a byte buffer (no string building).
 *
 * @module
 */

import type { Colormap } from "./colormap.ts";

/** A growable byte buffer for escape-sequence output. */
class ByteSink {
  buf: Uint8Array;
  len = 0;
  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }
  ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + extra));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  ascii(text: string): void {
    this.ensure(text.length);
    for (let i = 0; i < text.length; i++) this.buf[this.len++] = text.charCodeAt(i);
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  int(n: number): void {
    this.ensure(10);
    if (n >= 100) {
      if (n >= 1000) {
        this.ascii(String(n));
        return;
      }
      this.buf[this.len++] = 48 + ((n / 100) | 0);
      this.buf[this.len++] = 48 + (((n / 10) | 0) % 10);
      this.buf[this.len++] = 48 + (n % 10);
    } else if (n >= 10) {
      this.buf[this.len++] = 48 + ((n / 10) | 0);
      this.buf[this.len++] = 48 + (n % 10);
    } else this.buf[this.len++] = 48 + n;
  }
  /** Writes a run of `n` identical sixel characters. */
  run(ch: number, n: number): void {
    if (n > 3) {
      this.byte(0x21); // '!'
      this.int(n);
      this.byte(ch);
    } else {
      this.ensure(n);
      for (let i = 0; i < n; i++) this.buf[this.len++] = ch;
    }
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

const PALETTE_CACHE = new WeakMap<Colormap, string>();

function paletteDefinitions(map: Colormap): string {
  let text = PALETTE_CACHE.get(map);
  if (text === undefined) {
    const parts: string[] = [];
    for (let i = 0; i < 256; i++) {
      const pct = (v: number) => Math.round((v * 100) / 255);
      parts.push(
        `#${i};2;${pct(map.lut[3 * i])};${pct(map.lut[3 * i + 1])};${pct(map.lut[3 * i + 2])}`,
      );
    }
    text = parts.join("");
    PALETTE_CACHE.set(map, text);
  }
  return text;
}

let bitsScratch = new Uint8Array(0);

/**
 * Encodes a `width`×`height` image of palette indices (0..255) as one complete sixel sequence:
 * DCS introducer (P2=1, unset pixels stay transparent), raster attributes, 256 colour registers,
 * data, string terminator.
 */
export function encodeSixel(
  indices: Uint16Array,
  width: number,
  height: number,
  map: Colormap,
): Uint8Array {
  const out = new ByteSink(64 * 1024 + width * height);
  out.ascii(`\x1bP0;1;0q"1;1;${width};${height}`);
  out.ascii(paletteDefinitions(map));
  // per-colour column patterns; every entry is zeroed again once written, so the array is all
  // zeros between calls and can be reused
  if (bitsScratch.length < 256 * width) bitsScratch = new Uint8Array(256 * width);
  const bits = bitsScratch;
  const minX = new Int32Array(256);
  const maxX = new Int32Array(256);
  const seen = new Int32Array(256).fill(-1);
  const used = new Uint16Array(256);
  for (let band = 0, y0 = 0; y0 < height; band++, y0 += 6) {
    let nUsed = 0;
    const rows = Math.min(6, height - y0);
    for (let r = 0; r < rows; r++) {
      const bit = 1 << r;
      const base = (y0 + r) * width;
      for (let x = 0; x < width; x++) {
        const c = indices[base + x] & 0xff;
        if (seen[c] !== band) {
          seen[c] = band;
          used[nUsed++] = c;
          minX[c] = x;
          maxX[c] = x;
        } else if (x < minX[c]) minX[c] = x;
        else if (x > maxX[c]) maxX[c] = x;
        bits[c * width + x] |= bit;
      }
    }
    for (let u = 0; u < nUsed; u++) {
      const c = used[u];
      out.byte(0x23); // '#'
      out.int(c);
      const row = c * width;
      const x0 = minX[c];
      const x1 = maxX[c];
      if (x0 > 0) out.run(0x3f, x0);
      let prev = bits[row + x0];
      let n = 1;
      bits[row + x0] = 0;
      for (let x = x0 + 1; x <= x1; x++) {
        const v = bits[row + x];
        bits[row + x] = 0;
        if (v === prev) n++;
        else {
          out.run(63 + prev, n);
          prev = v;
          n = 1;
        }
      }
      out.run(63 + prev, n);
      // '$' back to the band start before the next colour; '-' to the next band after the last
      // colour (none after the image's last band, so the cursor does not move below it)
      if (u < nUsed - 1) out.byte(0x24);
      else if (y0 + 6 < height) out.byte(0x2d);
    }
  }
  out.ascii("\x1b\\");
  return out.bytes();
}
