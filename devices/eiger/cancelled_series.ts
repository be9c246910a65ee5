/**
 * Series this IOC abandoned on the DCU — cancelled by the operator, aborted after a failure, or
 * aborted while initializing — and the stream messages of them that still arrive afterwards.
 *
 * A DCU may send the rest of an aborted series late: before the next series' `start`, after it
 * (interleaved with the next series), or while nothing runs. Such messages belong to nobody and are
 * dropped; this sans-I/O book says which messages those are and produces one summary per series
 * (`start, images 2-4, end`) for a single log line. A series is identified by its number and, once
 * known, its `series_unique_id`: numbers restart when the DCU is initialized, unique ids do not.
 *
 * @module
 */

import type { StreamMessage } from "./series.ts";

/** What was dropped of one abandoned series, for one log line. */
export interface DroppedReport {
  seriesId: number;
  /** `series_unique_id`, when known. */
  uniqueId?: string;
  /** Human-readable list, e.g. `start, images 0-2 (3), end`. */
  dropped: string;
  /** True when anything besides the series' `end` was dropped (an `end` alone is expected). */
  unexpected: boolean;
  /** Why the series was abandoned (as given to {@link CancelledSeries.add}). */
  why: string;
}

interface Entry {
  seriesId: number;
  uniqueId?: string;
  why: string;
  start: number;
  images: number[];
  end: number;
  reported: boolean;
}

/** Compresses sorted image ids into ranges: `0-2, 5`. */
function ranges(ids: number[]): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(", ");
}

function describe(e: Entry): DroppedReport {
  const parts: string[] = [];
  if (e.start > 0) parts.push(e.start === 1 ? "start" : `start x${e.start}`);
  if (e.images.length > 0) {
    const noun = e.images.length === 1 ? "image" : "images";
    parts.push(`${noun} ${ranges(e.images)} (${e.images.length})`);
  }
  if (e.end > 0) parts.push(e.end === 1 ? "end" : `end x${e.end}`);
  return {
    seriesId: e.seriesId,
    uniqueId: e.uniqueId,
    dropped: parts.join(", "),
    unexpected: e.start > 0 || e.images.length > 0 || e.end > 1,
    why: e.why,
  };
}

/** The book of abandoned series; see the module doc. */
export class CancelledSeries {
  #entries: Entry[] = [];
  #limit: number;
  #onReport: (report: DroppedReport) => void;

  /**
   * Keeps at most `limit` series (oldest forgotten first); `onReport` receives one report per
   * series with dropped messages, when its `end` arrives or at {@link CancelledSeries.flush}.
   */
  constructor(onReport: (report: DroppedReport) => void, limit = 32) {
    this.#onReport = onReport;
    this.#limit = limit;
  }

  /** Number of series in the book. */
  get size(): number {
    return this.#entries.length;
  }

  #find(seriesId: number, uniqueId: string | undefined): Entry | undefined {
    return this.#entries.find((e) =>
      e.seriesId === seriesId &&
      (e.uniqueId === undefined || uniqueId === undefined || e.uniqueId === uniqueId)
    );
  }

  /**
   * Records an abandoned series (merging with an entry of the same series); `why` says why it was
   * abandoned (default `cancelled`).
   */
  add(seriesId: number, uniqueId?: string, why = "cancelled"): void {
    const known = this.#find(seriesId, uniqueId);
    if (known !== undefined) {
      known.uniqueId ??= uniqueId;
      return;
    }
    this.#entries.push({ seriesId, uniqueId, why, start: 0, images: [], end: 0, reported: false });
    while (this.#entries.length > this.#limit) this.#report(this.#entries.shift()!);
  }

  /** True when `seriesId`/`uniqueId` is a series in the book. */
  has(seriesId: number, uniqueId?: string): boolean {
    return this.#find(seriesId, uniqueId) !== undefined;
  }

  /**
   * The DCU handed out `seriesId` to a new series (arm reply): an entry known only by that number
   * can no longer be told apart from it and is forgotten.
   */
  armed(seriesId: number): void {
    this.#drop((e) => e.seriesId === seriesId && e.uniqueId === undefined);
  }

  /** The DCU was initialized (numbers restart): forgets entries known only by their number. */
  numbersRestart(): void {
    this.#drop((e) => e.uniqueId === undefined);
  }

  #drop(match: (e: Entry) => boolean): void {
    const keep: Entry[] = [];
    for (const e of this.#entries) {
      if (match(e)) this.#report(e);
      else keep.push(e);
    }
    this.#entries = keep;
  }

  /**
   * Claims `msg` when it belongs to an abandoned series: counts it and returns true (the caller
   * drops it). The series' `end` reports what was dropped.
   */
  claim(msg: StreamMessage): boolean {
    const e = this.#find(msg.seriesId, msg.uniqueId);
    if (e === undefined) return false;
    e.uniqueId ??= msg.uniqueId;
    if (msg.type === "start") e.start++;
    else if (msg.type === "image") e.images.push(msg.imageId);
    else e.end++;
    if (msg.type === "end") this.#report(e);
    return true;
  }

  #report(e: Entry): void {
    if (e.reported || (e.start === 0 && e.images.length === 0 && e.end === 0)) return;
    e.reported = true;
    this.#onReport(describe(e));
  }

  /** Reports every series with dropped messages not reported yet (end not seen). */
  flush(): void {
    for (const e of this.#entries) this.#report(e);
  }
}
