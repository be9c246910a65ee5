/**
 * The DBR codec as the server core sees it: a small interface, so the circuit logic can be tested
 * with a stub and wired to `ca/dbr.ts` in `ca/server.ts`.
 *
 * @module
 */

import type { NativeType, NativeValue, NumericArray, PvMetadata, PvValue } from "./pv.ts";

/** Everything needed to encode one DBR reply of a channel. */
export interface DbrSnapshot {
  /**
   * Current value: native form, or (for large posted arrays) a narrower typed array whose every
   * element converts to the native type exactly — encoders convert it as they write.
   */
  value: NativeValue | NumericArray;
  /** Native type. */
  native: NativeType;
  /** Timestamp, ms since the Unix epoch. */
  timestamp: number;
  /** Alarm severity. */
  severity: number;
  /** Alarm status. */
  status: number;
  /** Display metadata. */
  metadata: PvMetadata;
}

/** Error carrying the ECA status a request fails with. */
export interface EcaError {
  /** ECA status code. */
  eca: number;
}

/** Whether `error` carries an ECA code. */
export function isEcaError(error: unknown): error is EcaError & Error {
  return error instanceof Error && typeof (error as unknown as EcaError).eca === "number";
}

/** DBR encoding and decoding used by the circuit. */
export interface DbrCodec {
  /** Whether `type` may be requested by reads/subscriptions. */
  isReadable(type: number): boolean;
  /** Whether `type` may be written. */
  isWritable(type: number): boolean;
  /** `dbr_size_n(type, count)` in bytes (unpadded). */
  sizeN(type: number, count: number): number;
  /**
   * Encodes `count` elements of `snapshot` as DBR `type`: returns the payload zero-padded to a
   * multiple of 8. A `reuse` buffer of exactly that length may be filled and returned instead
   * of a new one (other lengths are ignored). Throws an {@link EcaError} when the conversion fails.
   */
  encode(type: number, count: number, snapshot: DbrSnapshot, reuse?: Uint8Array): Uint8Array;
  /** Decodes a write payload into the native type (throws an {@link EcaError} on failure). */
  decodeWrite(
    type: number,
    count: number,
    payload: Uint8Array,
    native: NativeType,
    enumLabels: readonly string[],
  ): NativeValue;
  /** Converts a posted value to the native type (throws if longer than `maxCount`). */
  toNative(value: PvValue, native: NativeType, maxCount: number): NativeValue;
}

/** ECA status codes (one table for the whole CA code: `ca/dbr_types.ts`). */
export { ECA } from "./dbr_types.ts";
