/**
 * Bounds the synchronous work a loop does between event-loop turns. A consumer of a fast stream
 * (images arriving at kilohertz rates) handles many items per turn when they arrived together —
 * Deno runs every completed operation of a poll and all their promise continuations in one go —
 * and everything else the process serves (Channel Access searches, reads, monitors) waits until
 * the burst is done. With a budget the loop asks {@link TurnBudget.pause} between items and, once
 * it worked longer than the budget since its last turn, waits for a later turn (after pending
 * I/O) before going on.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { TurnScheduler } from "./write_gate.ts";

/** Default work between turns, ms. */
export const DEFAULT_TURN_BUDGET_MS = 4;

/** Options of {@link TurnBudget}. */
export interface TurnBudgetOptions {
  /** Work between turns, ms (default {@link DEFAULT_TURN_BUDGET_MS}). */
  budgetMs?: number;
  /** Monotonic time in ms (default `performance.now`). */
  now?: () => number;
  /** Runs a callback on a later turn, after pending I/O (default `setImmediate`). */
  schedule?: TurnScheduler;
}

/** Work budget of one loop; see the module doc. */
export class TurnBudget {
  #budget: number;
  #now: () => number;
  #schedule: TurnScheduler;
  #since: number;
  /** Times the loop waited for a later turn (statistics). */
  pauses = 0;

  /** Creates a budget whose first slice starts now. */
  constructor(options: TurnBudgetOptions = {}) {
    this.#budget = options.budgetMs ?? DEFAULT_TURN_BUDGET_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#schedule = options.schedule ?? ((callback) => setImmediate(callback));
    this.#since = this.#now();
  }

  /** Starts a new slice (call after the loop waited for input: it is on a fresh turn). */
  restart(): void {
    this.#since = this.#now();
  }

  /**
   * Undefined while the current slice is within the budget; otherwise a promise that resolves on
   * a later turn, when a new slice starts.
   */
  pause(): Promise<void> | undefined {
    if (this.#now() - this.#since < this.#budget) return undefined;
    this.pauses++;
    return new Promise<void>((resolve) =>
      this.#schedule(() => {
        this.#since = this.#now();
        resolve();
      })
    );
  }
}
