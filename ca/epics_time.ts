/**
 * EPICS timestamps: seconds and nanoseconds since 1990-01-01 00:00:00 UTC, as carried by the
 * DBR_TIME_* structures of Channel Access.
 *
 * @module
 */

/** Unix time (seconds) of the EPICS epoch 1990-01-01 00:00:00 UTC. */
export const EPICS_EPOCH_OFFSET = 631152000;

/** An EPICS timestamp: whole seconds since 1990 plus nanoseconds (0..999 999 999). */
export interface EpicsTime {
  /** Seconds since 1990-01-01 UTC (u32 on the wire). */
  seconds: number;
  /** Nanoseconds within the second. */
  nanoseconds: number;
}

const MAX_U32 = 0xffffffff;

/**
 * Converts Unix milliseconds (may be fractional) to an EPICS timestamp. Times before 1990 (or
 * not finite) give 0 s 0 ns; times past the u32 range saturate. A double of Unix milliseconds
 * resolves about 0.25 µs, so nanoseconds are exact only to that.
 */
export function toEpicsTime(unixMs: number): EpicsTime {
  if (!Number.isFinite(unixMs)) return { seconds: 0, nanoseconds: 0 };
  let unixSeconds = Math.floor(unixMs / 1000);
  let nanoseconds = Math.round((unixMs - unixSeconds * 1000) * 1e6);
  if (nanoseconds >= 1e9) {
    unixSeconds += 1;
    nanoseconds -= 1e9;
  } else if (nanoseconds < 0) {
    nanoseconds = 0;
  }
  const seconds = unixSeconds - EPICS_EPOCH_OFFSET;
  if (seconds < 0) return { seconds: 0, nanoseconds: 0 };
  if (seconds > MAX_U32) return { seconds: MAX_U32, nanoseconds: 999_999_999 };
  return { seconds, nanoseconds };
}

/** Converts an EPICS timestamp to Unix milliseconds (fractional below one millisecond). */
export function fromEpicsTime(seconds: number, nanoseconds: number): number {
  return (seconds + EPICS_EPOCH_OFFSET) * 1000 + nanoseconds / 1e6;
}
