/**
 * Tile layout: places one tile per shown channel on the terminal grid, each with a one-line label
 * above its image, leaving the bottom line for the status line.
 *
 * @module
 */

/** Terminal geometry in character cells and the pixel size of one cell. */
export interface Screen {
  /** Columns (cells). */
  cols: number;
  /** Rows (cells). */
  rows: number;
  /** Width of one cell in image pixels (1 for half blocks). */
  cellWidth: number;
  /** Height of one cell in image pixels (2 for half blocks). */
  cellHeight: number;
}

/** Placement of one tile. */
export interface Tile {
  /** 0-based column of the tile's left edge (label and image). */
  col: number;
  /** 0-based row of the tile's label; the image starts one row below. */
  row: number;
  /** Cells available for the label. */
  labelWidth: number;
  /** Rendered image width in pixels. */
  width: number;
  /** Rendered image height in pixels. */
  height: number;
}

/** A full layout. */
export interface Layout {
  /** Grid columns. */
  gridCols: number;
  /** Grid rows. */
  gridRows: number;
  /** Display scale (rendered pixels per source pixel), same for all tiles. */
  scale: number;
  /** One entry per tile, in channel order. */
  tiles: Tile[];
}

/**
 * Lays out `n` tiles of `imageWidth`×`imageHeight` images on `screen`, choosing the grid that gives
 * the largest scale. Enlargement uses whole factors only (crisp pixels); shrinking is continuous.
 */
export function layoutTiles(
  screen: Screen,
  n: number,
  imageWidth: number,
  imageHeight: number,
): Layout {
  const usableRows = Math.max(1, screen.rows - 1); // last row: status line
  let best = { c: 1, r: Math.max(1, n), fit: -1 };
  for (let c = 1; c <= Math.max(1, n); c++) {
    const r = Math.ceil(n / c);
    const tileCols = Math.floor(screen.cols / c);
    const tileRows = Math.floor(usableRows / r) - 1;
    if (tileCols < 1 || tileRows < 1) continue;
    const fit = Math.min(
      (tileCols * screen.cellWidth) / imageWidth,
      (tileRows * screen.cellHeight) / imageHeight,
    );
    if (fit > best.fit) best = { c, r, fit };
  }
  const fit = Math.max(best.fit, 1 / Math.max(imageWidth, imageHeight));
  const scale = fit >= 1 ? Math.floor(fit) : fit;
  const width = Math.max(1, Math.floor(imageWidth * scale));
  const height = Math.max(1, Math.floor(imageHeight * scale));
  const tileCols = Math.max(1, Math.floor(screen.cols / best.c));
  const tileRows = Math.max(2, Math.floor(usableRows / best.r));
  const tiles: Tile[] = [];
  for (let i = 0; i < n; i++) {
    tiles.push({
      col: (i % best.c) * tileCols,
      row: Math.floor(i / best.c) * tileRows,
      labelWidth: tileCols - 1,
      width,
      height,
    });
  }
  return { gridCols: best.c, gridRows: best.r, scale, tiles };
}
