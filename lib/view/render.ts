/**
 * The rendering pipeline: statistics and contrast per image, resampling to the tile size, colour
 * mapping and encoding as sixel or half blocks, positioned on the terminal grid.
 *
 * @module
 */

import { type ColormapName, getColormap } from "./colormap.ts";
import { CONTRAST_LEVELS, type ImageStats, imageStats, type MaskValues } from "./contrast.ts";
import { encodeHalfBlocks } from "./halfblock.ts";
import { type Layout, layoutTiles, type Screen } from "./layout.ts";
import { type ImageView, resample, type ScaleMode, toIndices } from "./scale.ts";
import { encodeSixel } from "./sixel.ts";
import { concatBytes } from "../../core/bytes.ts";

/** One channel's image to show. */
export interface ChannelImage extends ImageView {
  /** Channel name (tile label). */
  name: string;
  /** Values treated as masked. */
  mask: MaskValues;
}

/** How terminal graphics are drawn. */
export type OutputMode = "sixel" | "halfblock";

/** Display settings. */
export interface RenderOptions {
  /** Graphics protocol. */
  output: OutputMode;
  /** Terminal geometry (for half blocks use a cell size of 1×2 pixels). */
  screen: Screen;
  /** Linear or logarithmic value scale. */
  scale: ScaleMode;
  /** Colour map. */
  colormap: ColormapName;
  /** Index into {@link CONTRAST_LEVELS}. */
  contrastLevel: number;
}

/** A rendered screen (without the status line). */
export interface RenderResult {
  /** Escape sequences that draw all tiles (labels and images). */
  bytes: Uint8Array;
  /** Where the tiles went. */
  layout: Layout;
  /** Statistics of each shown image, in tile order. */
  stats: ImageStats[];
}

/** Palette indices of one image, resampled to `width`×`height`. */
export interface IndexedImage {
  /** Palette indices, row-major. */
  indices: Uint16Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Statistics of the source image. */
  stats: ImageStats;
}

let valuesScratch = new Float32Array(0);

/** Computes contrast and maps one image to palette indices at `width`×`height`. */
export function indexImage(
  image: ChannelImage,
  width: number,
  height: number,
  scale: ScaleMode,
  contrastLevel: number,
): IndexedImage {
  const level = CONTRAST_LEVELS[Math.max(0, Math.min(CONTRAST_LEVELS.length - 1, contrastLevel))];
  const stats = imageStats(
    image.data,
    image.offset,
    image.width * image.height,
    image.mask,
    level[0],
    level[1],
  );
  // the resampled values are only an intermediate: reuse one scratch buffer across calls
  if (valuesScratch.length < width * height) valuesScratch = new Float32Array(width * height);
  const values = resample(image, width, height, image.mask, valuesScratch);
  const indices = toIndices(values, width * height, stats.low, stats.high, scale);
  return { indices, width, height, stats };
}

/** Truncates or pads a label to exactly `width` cells. */
export function fitLabel(text: string, width: number): string {
  if (width <= 0) return "";
  return text.length > width ? text.slice(0, Math.max(0, width - 1)) + "…" : text.padEnd(width);
}

/** Renders all images as tiles (one per image, same layout for all, sized by the first). */
export function renderFrame(images: ChannelImage[], options: RenderOptions): RenderResult {
  const first = images[0];
  const layout = layoutTiles(
    options.screen,
    images.length,
    first?.width ?? 1,
    first?.height ?? 1,
  );
  const map = getColormap(options.colormap);
  const parts: (string | Uint8Array)[] = [];
  const stats: ImageStats[] = [];
  images.forEach((image, i) => {
    const tile = layout.tiles[i];
    const indexed = indexImage(
      image,
      tile.width,
      tile.height,
      options.scale,
      options.contrastLevel,
    );
    stats.push(indexed.stats);
    parts.push(
      `\x1b[${tile.row + 1};${tile.col + 1}H\x1b[1m${fitLabel(image.name, tile.labelWidth)}\x1b[0m`,
    );
    if (options.output === "sixel") {
      parts.push(`\x1b[${tile.row + 2};${tile.col + 1}H`);
      parts.push(encodeSixel(indexed.indices, tile.width, tile.height, map));
    } else {
      parts.push(
        encodeHalfBlocks(indexed.indices, tile.width, tile.height, map, tile.col, tile.row + 1),
      );
    }
  });
  return { bytes: concatOutput(parts), layout, stats };
}

const textEncoder = new TextEncoder();

/** Joins strings (UTF-8 encoded) and byte chunks into one byte array. */
export function concatOutput(parts: readonly (string | Uint8Array)[]): Uint8Array {
  return concatBytes(parts.map((p) => (typeof p === "string" ? textEncoder.encode(p) : p)));
}
