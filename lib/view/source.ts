/**
 * What the viewer displays, independent of where it comes from (a local controller and backend,
 * or a running IOC over Channel Access).
 *
 * @module
 */

import type { PixelArray } from "../../devices/contract.ts";
import type { MaskValues } from "./contrast.ts";

/** The latest image series of one channel. */
export interface ChannelData {
  /** Channel name. */
  name: string;
  /** Pixels `[image][y][x]`, at least `numImages*height*width` elements (may be empty). */
  data: PixelArray;
  /** Images in the series. */
  numImages: number;
  /** Image width. */
  width: number;
  /** Image height. */
  height: number;
  /** Values shown as masked (saturated/defective). */
  mask: MaskValues;
}

/** Everything the viewer shows at one moment. */
export interface ViewSnapshot {
  /** Controller state (`READY`, `INTEGRATE`, ...), or a connection state such as `DISCONNECTED`. */
  state: string;
  /** UUID of the shown series ("" when unknown). */
  seriesId: string;
  /** Short sequence counter of the shown series (undefined when unknown). */
  ssqcnt: number | undefined;
  /** Channels in display order. */
  channels: ChannelData[];
}

/** Kinds of change a source reports. */
export type SourceChange = "image" | "status";

/** A source of images for the viewer. */
export interface ViewSource {
  /**
   * Connects/starts. Resolves when the channel list is known; rejects with an Error whose message
   * is meant for the user (e.g. "no IOC answers ... within 5 s").
   */
  start(signal: AbortSignal): Promise<void>;
  /** The current state (channels with the latest complete images). */
  snapshot(): ViewSnapshot;
  /** Registers the change listener (`message` is a user-facing note, e.g. "IOC restarted"). */
  onChange(listener: (change: SourceChange, message?: string) => void): void;
  /** Stops and releases everything. */
  close(): Promise<void>;
}

/** Thrown by {@link ViewSource.start} when the source cannot be found (exit code 3). */
export class SourceUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SourceUnreachableError";
  }
}
