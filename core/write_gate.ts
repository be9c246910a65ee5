/**
 * Bounds the bulk bytes (image payloads) all circuits write per turn of the event loop, so that
 * searches, new connections and small replies are handled between bulk writes even when the
 * process gets little CPU: once `bytesPerTurn` were written, further bulk writes wait for the
 * next turn (after pending I/O was polled), in the order they asked. Protocol-independent: the
 * stream pump (`core/stream_pump.ts`) asks it for every big chunk, and one gate can be shared by
 * the CA and pvAccess servers of a process.
 *
 * @module
 */

import { setImmediate } from "node:timers";

/** Default bulk bytes written per event-loop turn by all connections sharing a gate. */
export const DEFAULT_BULK_BYTES_PER_TURN = 2 * 1024 * 1024;

/** Runs a callback on a later event-loop turn, after pending I/O (default: `setImmediate`). */
export type TurnScheduler = (callback: () => void) => void;

/** Gate shared by the circuits of one server. */
export class BulkWriteGate {
  #budget: number;
  #used = 0;
  #waiters: { bytes: number; resolve: () => void }[] = [];
  #scheduled = false;
  #schedule: TurnScheduler;
  /** Number of times a writer had to wait for a later turn (statistics). */
  deferrals = 0;

  constructor(
    bytesPerTurn: number = DEFAULT_BULK_BYTES_PER_TURN,
    schedule: TurnScheduler = (callback) => setImmediate(callback),
  ) {
    this.#budget = bytesPerTurn;
    this.#schedule = schedule;
  }

  /**
   * Asks to write `bytes` of bulk data: undefined when it may go ahead now, otherwise a promise
   * that resolves on a later turn.
   */
  acquire(bytes: number): Promise<void> | undefined {
    if (this.#waiters.length === 0 && this.#used < this.#budget) {
      this.#used += bytes;
      return undefined;
    }
    this.deferrals++;
    const wait = new Promise<void>((resolve) => this.#waiters.push({ bytes, resolve }));
    this.#arm();
    return wait;
  }

  #arm(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#schedule(() => this.#turn());
  }

  #turn(): void {
    this.#scheduled = false;
    this.#used = 0;
    while (this.#waiters.length > 0 && this.#used < this.#budget) {
      const waiter = this.#waiters.shift()!;
      this.#used += waiter.bytes;
      waiter.resolve();
    }
    if (this.#waiters.length > 0) this.#arm();
  }
}
