/**
 * Truecolour half-block output: each character cell shows two vertically stacked pixels with the
 * upper half block `▀` (foreground = upper pixel, background = lower pixel, 24-bit SGR colours).
 * Works in any terminal with truecolour, including tmux, where sixel is absent.
 *
 * @module
 */

import type { Colormap } from "./colormap.ts";

/**
 * Encodes a `width`×`height` image of palette indices as escape sequences that draw it with its
 * top-left corner at 0-based cell (`col`, `row`); an odd last pixel row keeps the default
 * background. Colour codes are only sent when they change.
 */
export function encodeHalfBlocks(
  indices: Uint16Array,
  width: number,
  height: number,
  map: Colormap,
  col: number,
  row: number,
): string {
  const lut = map.lut;
  const parts: string[] = [];
  for (let y = 0; y < height; y += 2) {
    parts.push(`\x1b[${row + y / 2 + 1};${col + 1}H`);
    let fg = -1;
    let bg = -1;
    const top = y * width;
    const hasBottom = y + 1 < height;
    for (let x = 0; x < width; x++) {
      const a = indices[top + x];
      if (a !== fg) {
        parts.push(`\x1b[38;2;${lut[3 * a]};${lut[3 * a + 1]};${lut[3 * a + 2]}m`);
        fg = a;
      }
      if (hasBottom) {
        const b = indices[top + width + x];
        if (b !== bg) {
          parts.push(`\x1b[48;2;${lut[3 * b]};${lut[3 * b + 1]};${lut[3 * b + 2]}m`);
          bg = b;
        }
      } else if (bg !== -2) {
        parts.push("\x1b[49m");
        bg = -2;
      }
      parts.push("\u2580");
    }
    parts.push("\x1b[0m");
  }
  return parts.join("");
}
