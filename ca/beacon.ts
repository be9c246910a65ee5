/**
 * Beacon (RSRV_IS_UP) schedule as pure functions: rsrv's fast start (first beacon at once, then
 * delays 0.02 s, 0.04 s, … doubling) up to the configured period, then one beacon per period.
 *
 * @module
 */

import { systemClock } from "../core/clock.ts";
import { beaconMessage } from "./messages.ts";
import type { UdpDestination } from "./env.ts";

/** Delay before the first back-off step (seconds). */
export const FIRST_BEACON_DELAY = 0.02;

/** Delay in seconds after beacon round `round` (0 = the first, sent at start) for `period`. */
export function beaconDelay(round: number, period: number): number {
  if (round >= 30) return period;
  return Math.min(FIRST_BEACON_DELAY * 2 ** round, period);
}

/** Send times (seconds after start) of the first `rounds` beacon rounds. */
export function beaconTimes(rounds: number, period: number): number[] {
  const times: number[] = [];
  let t = 0;
  for (let i = 0; i < rounds; i++) {
    times.push(t);
    t += beaconDelay(i, period);
  }
  return times;
}

/** One beacon round: the datagrams to send and the delay until the next round. */
export interface BeaconRound {
  /** Destinations, each with the same 16-byte message. */
  datagrams: { to: UdpDestination; bytes: Uint8Array }[];
  /** Seconds until the next round. */
  nextDelay: number;
}

/** Builds round `round` (its sequence number is `round` mod 2³²) for `tcpPort` and `destinations`. */
export function beaconRound(
  round: number,
  tcpPort: number,
  destinations: readonly UdpDestination[],
  period: number,
): BeaconRound {
  const bytes = beaconMessage(tcpPort, round >>> 0);
  return {
    datagrams: destinations.map((to) => ({ to, bytes })),
    nextDelay: beaconDelay(round, period),
  };
}

/** Clock and timer functions the beacon sender uses (injectable for tests). */
export interface BeaconClock {
  /** Calls `fn` after `ms` milliseconds; returns a handle for `clear`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a pending timer. */
  clearTimeout(handle: unknown): void;
}

/** The real clock (the runtime's timers, any period: `EPICS_CAS_BEACON_PERIOD` may be long). */
export const REAL_CLOCK: BeaconClock = systemClock;

/**
 * Runs the beacon schedule: sends round 0 at once, then each next round after its delay, via
 * `send` (errors are passed to `onError`). Returns a function that stops it.
 */
export function startBeacons(
  tcpPort: number,
  destinations: readonly UdpDestination[],
  period: number,
  send: (to: UdpDestination, bytes: Uint8Array) => Promise<unknown> | void,
  clock: BeaconClock = REAL_CLOCK,
  onError: (error: unknown) => void = () => {},
): () => void {
  let round = 0;
  let handle: unknown;
  let stopped = false;
  const fire = () => {
    if (stopped) return;
    const r = beaconRound(round, tcpPort, destinations, period);
    for (const d of r.datagrams) {
      try {
        const p = send(d.to, d.bytes);
        if (p instanceof Promise) p.catch(onError);
      } catch (error) {
        onError(error);
      }
    }
    round++;
    handle = clock.setTimeout(fire, r.nextDelay * 1000);
  };
  fire();
  return () => {
    stopped = true;
    if (handle !== undefined) clock.clearTimeout(handle);
  };
}
