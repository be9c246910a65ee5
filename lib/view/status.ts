/**
 * The status line: state, series, image, statistics, frame rate and display settings.
 *
 * @module
 */

import type { ImageStats } from "./contrast.ts";

/** What the status line shows. */
export interface StatusInfo {
  state: string;
  seriesId: string;
  ssqcnt: number | undefined;
  /** Shown image index (0-based) and number of images in the series. */
  imageIndex: number;
  numImages: number;
  width: number;
  height: number;
  /** Statistics of the first shown tile (the selected channel). */
  stats: ImageStats | undefined;
  /** Frames (new series) per second, NaN when unknown. */
  fps: number;
  scale: string;
  colormap: string;
  /** High percentile of the contrast setting. */
  highPercentile: number;
  /** Selected channel name, or "all". */
  selection: string;
  /** Extra note (connection problems, hints). */
  note?: string;
}

/** Formats a number with at most `digits` significant digits, compactly. */
export function formatValue(v: number | undefined, digits = 4): string {
  if (v === undefined || Number.isNaN(v)) return "-";
  if (Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(digits)).toString();
}

/** Formats the status line text (no escape sequences), cut to `width` characters. */
export function formatStatus(info: StatusInfo, width: number): string {
  const s = info.stats;
  const parts = [
    info.note ? `${info.state} (${info.note})` : info.state,
    `uuid=${info.seriesId ? info.seriesId.slice(0, 8) : "-"}`,
    `ssqcnt=${info.ssqcnt ?? "-"}`,
    `img=${info.numImages > 0 ? info.imageIndex + 1 : 0}/${info.numImages}`,
    `${info.width}x${info.height}`,
    `min=${formatValue(s?.min)} max=${formatValue(s?.max)} mean=${formatValue(s?.mean)}`,
    `fps=${Number.isNaN(info.fps) ? "-" : info.fps.toFixed(1)}`,
    `[${info.selection}] ${info.scale} ${info.colormap} hi=${info.highPercentile}%`,
  ];
  const text = parts.join("  ");
  return text.length > width ? text.slice(0, Math.max(0, width)) : text;
}

/** Measures the frame rate from arrival times (ms) of the last few frames. */
export class FrameRate {
  #times: number[] = [];
  #window: number;
  constructor(window = 10) {
    this.#window = window;
  }
  /** Records one frame arriving at `now` (ms). */
  tick(now: number): void {
    this.#times.push(now);
    if (this.#times.length > this.#window) this.#times.shift();
  }
  /** Frames per second over the window, NaN with fewer than two frames. */
  get fps(): number {
    const t = this.#times;
    if (t.length < 2) return NaN;
    const span = t[t.length - 1] - t[0];
    return span > 0 ? ((t.length - 1) * 1000) / span : NaN;
  }
}
