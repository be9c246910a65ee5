/**
 * Stream packet size negotiation with test packets: the largest packet size (whole IP datagram,
 * SCPS) that crosses the path from the camera to us unfragmented.
 *
 * The camera is asked for one test packet per size: SCPS written with the "fire test packet" bit
 * (0x80000000) and "do not fragment" (0x40000000), and it sends one datagram of exactly
 * `size − 28` UDP bytes to the stream destination. A packet larger than any hop's MTU is dropped on
 * the way, so its test packet never arrives. The search ({@link PacketSizeSearch}, pure) tries the
 * upper bound first (one round trip when jumbo frames work end to end), then the lower bound (a
 * camera that answers neither sends no test packets at all: the caller falls back to a configured
 * size), then bisects on the camera's size grid. {@link negotiatePacketSize} runs it over a
 * control client and a stream receiver and restores the do-not-fragment bit as it was.
 *
 * @module
 */

import { Bootstrap } from "./gvcp.ts";

/** SCPS bit: the camera sends one test packet of the size written (self-clearing). */
export const SCPS_FIRE_TEST_PACKET = 0x80000000;
/** SCPS bit: packets leave the camera with IP "do not fragment". */
export const SCPS_DO_NOT_FRAGMENT = 0x40000000;
/** SCPS bit: multi-byte pixels big-endian (kept as the camera has it). */
export const SCPS_PIXEL_BIG_ENDIAN = 0x20000000;
/** IP + UDP header bytes: a test packet of size S carries S − 28 UDP bytes. */
export const TEST_PACKET_OVERHEAD = 28;

/** Sizes a search may try. */
export interface PacketSizeBounds {
  /** Smallest size (tried second). */
  min: number;
  /** Largest size (tried first). */
  max: number;
  /** Step of the camera's size grid (sizes are `min + k·inc`, and `max`). */
  inc: number;
}

/** One probe of a search. */
export interface PacketSizeTrial {
  size: number;
  arrived: boolean;
}

/**
 * The bisection, without I/O: {@link next} names the size to probe, {@link report} takes the
 * outcome. Done when `next()` is undefined; then {@link result} is the largest size whose test
 * packet arrived, or undefined when none did.
 */
export class PacketSizeSearch {
  readonly bounds: PacketSizeBounds;
  readonly trials: PacketSizeTrial[] = [];
  #lo: number | undefined;
  #hi: number | undefined;
  #done = false;

  constructor(bounds: PacketSizeBounds) {
    if (!(bounds.inc > 0) || !(bounds.min > 0) || bounds.max < bounds.min) {
      throw new RangeError(`packet size bounds ${JSON.stringify(bounds)} impossible`);
    }
    this.bounds = bounds;
  }

  /** Size to probe next, or undefined when the search is over. */
  next(): number | undefined {
    if (this.#done) return undefined;
    const { min, max, inc } = this.bounds;
    if (this.trials.length === 0) return max;
    if (this.#lo === undefined) return min;
    const hi = this.#hi!;
    const mid = this.#lo + Math.floor((hi - this.#lo) / 2 / inc) * inc;
    if (mid <= this.#lo || mid >= hi) {
      this.#done = true;
      return undefined;
    }
    return mid;
  }

  /** Records whether the test packet of `size` arrived. */
  report(size: number, arrived: boolean): void {
    this.trials.push({ size, arrived });
    if (arrived) {
      this.#lo = this.#lo === undefined ? size : Math.max(this.#lo, size);
      if (size >= this.bounds.max) this.#done = true;
    } else {
      this.#hi = this.#hi === undefined ? size : Math.min(this.#hi, size);
      if (size <= this.bounds.min) this.#done = true;
    }
  }

  /** Largest size whose test packet arrived (undefined: none, or not done). */
  get result(): number | undefined {
    return this.#lo;
  }
}

/** What {@link negotiatePacketSize} needs of the control channel. */
export interface ScpsRegister {
  readRegister(address: number): Promise<number>;
  writeRegister(address: number, value: number): Promise<void>;
}

/** What {@link negotiatePacketSize} needs of the stream socket. */
export interface TestPacketWatch {
  /**
   * Starts watching for a datagram of `length` bytes; `wait` resolves true when one came (also
   * before `wait` was called), false `timeoutMs` after the call of `wait`.
   */
  watchTestPacket(length: number): { wait(timeoutMs: number): Promise<boolean> };
}

/** Options of {@link negotiatePacketSize}. */
export interface NegotiationOptions extends PacketSizeBounds {
  /** How long to wait for each test packet, ms. */
  timeoutMs: number;
  /** Test packets fired per size before it counts as too large (default 2). */
  tries?: number;
  /** Stops between probes. */
  signal?: AbortSignal;
}

/** Outcome of {@link negotiatePacketSize}. */
export interface Negotiation {
  /** The largest size that arrived; undefined when no test packet arrived at all. */
  size: number | undefined;
  trials: PacketSizeTrial[];
}

/**
 * Finds the largest packet size whose test packet arrives (SCPS of stream channel 0; its
 * destination must already point at the watching socket). Leaves SCPS at the size found — or as
 * it was when none arrived — with the do-not-fragment bit as it was before.
 */
export async function negotiatePacketSize(
  control: ScpsRegister,
  stream: TestPacketWatch,
  options: NegotiationOptions,
): Promise<Negotiation> {
  const before = (await control.readRegister(Bootstrap.SCPS0)) >>> 0;
  const keep = before & (SCPS_PIXEL_BIG_ENDIAN | SCPS_DO_NOT_FRAGMENT);
  const probeBits = (before & SCPS_PIXEL_BIG_ENDIAN) | SCPS_DO_NOT_FRAGMENT | SCPS_FIRE_TEST_PACKET;
  const search = new PacketSizeSearch(options);
  const tries = options.tries ?? 2;
  for (let size = search.next(); size !== undefined; size = search.next()) {
    options.signal?.throwIfAborted();
    let arrived = false;
    for (let t = 0; t < tries && !arrived; t++) {
      const watch = stream.watchTestPacket(size - TEST_PACKET_OVERHEAD);
      try {
        await control.writeRegister(Bootstrap.SCPS0, (probeBits | size) >>> 0);
      } catch {
        break; // the camera refuses this size: too large for it
      }
      arrived = await watch.wait(options.timeoutMs);
    }
    search.report(size, arrived);
  }
  const size = search.result;
  await control.writeRegister(Bootstrap.SCPS0, (keep | (size ?? (before & 0xffff))) >>> 0);
  return { size, trials: search.trials };
}
