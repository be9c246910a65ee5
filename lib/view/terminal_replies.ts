/**
 * Parsing of terminal capability replies (sans I/O): DA1 (device attributes; `4` = sixel),
 * XTSMGRAPHICS (maximum sixel geometry) and XTWINOPS window/cell pixel sizes.
 *
 * @module
 */

/** The queries sent to learn the terminal's graphics abilities; DA1 last (every terminal answers
 * it, so its reply marks the end of the answers). */
export const CAPABILITY_QUERY = "\x1b[14t\x1b[16t\x1b[?2;1;0S\x1b[c";

/** What the replies told. */
export interface TerminalReplies {
  /** DA1 attribute list (`ESC[?62;4;22c` → [62, 4, 22]), if answered. */
  da1?: number[];
  /** Maximum sixel graphics size in pixels, if answered with success. */
  graphics?: { width: number; height: number };
  /** Text area size in pixels (`ESC[4;H;Wt`), if answered. */
  window?: { width: number; height: number };
  /** Character cell size in pixels (`ESC[6;H;Wt`), if answered. */
  cell?: { width: number; height: number };
}

// deno-lint-ignore no-control-regex
const DA1 = /\x1b\[\?([0-9;]*)c/;
// deno-lint-ignore no-control-regex
const GRAPHICS = /\x1b\[\?2;(\d+);(\d+);(\d+)S/;
// deno-lint-ignore no-control-regex
const WINDOW = /\x1b\[4;(\d+);(\d+)t/;
// deno-lint-ignore no-control-regex
const CELL = /\x1b\[6;(\d+);(\d+)t/;

/** Parses whatever replies `text` contains (other bytes, e.g. typed keys, are ignored). */
export function parseTerminalReplies(text: string): TerminalReplies {
  const out: TerminalReplies = {};
  const da1 = DA1.exec(text);
  if (da1) out.da1 = da1[1].split(";").filter((s) => s !== "").map(Number);
  const g = GRAPHICS.exec(text);
  if (g && g[1] === "0") out.graphics = { width: Number(g[2]), height: Number(g[3]) };
  const w = WINDOW.exec(text);
  if (w) out.window = { width: Number(w[2]), height: Number(w[1]) };
  const c = CELL.exec(text);
  if (c) out.cell = { width: Number(c[2]), height: Number(c[1]) };
  return out;
}

/** Whether the DA1 reply is complete in `text` (the end marker of the query burst). */
export function hasDa1Reply(text: string): boolean {
  return DA1.test(text);
}

/** Whether DA1 attributes announce sixel graphics (attribute 4). */
export function supportsSixel(replies: TerminalReplies): boolean {
  return replies.da1?.includes(4) ?? false;
}

/** Pixel geometry derived from the replies for a terminal of `cols`×`rows` cells. */
export interface PixelGeometry {
  /** Cell width in pixels. */
  cellWidth: number;
  /** Cell height in pixels. */
  cellHeight: number;
}

/**
 * Derives the cell size in pixels: from the cell-size reply, else window pixels / cells, else
 * `fallback`. The result is limited so that the whole text area fits the maximum graphics size.
 */
export function cellGeometry(
  replies: TerminalReplies,
  cols: number,
  rows: number,
  fallback: PixelGeometry,
): PixelGeometry {
  let cellWidth = fallback.cellWidth;
  let cellHeight = fallback.cellHeight;
  if (replies.cell && replies.cell.width > 0 && replies.cell.height > 0) {
    cellWidth = replies.cell.width;
    cellHeight = replies.cell.height;
  } else if (replies.window && replies.window.width > 0 && replies.window.height > 0) {
    cellWidth = Math.max(1, Math.floor(replies.window.width / cols));
    cellHeight = Math.max(1, Math.floor(replies.window.height / rows));
  }
  if (replies.graphics) {
    // images larger than the maximum graphics size are dropped or clipped by the terminal
    cellWidth = Math.min(cellWidth, Math.max(1, Math.floor(replies.graphics.width / cols)));
    cellHeight = Math.min(cellHeight, Math.max(1, Math.floor(replies.graphics.height / rows)));
  }
  return { cellWidth, cellHeight };
}
