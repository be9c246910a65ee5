/**
 * Decoding side of the DBR codec: client writes (value part converted to the PV's native type),
 * alarm acknowledgements, and full DBR payloads as a client receives them.
 *
 * @module
 */

import type { NativeType, NativeValue, PvMetadata } from "./pv.ts";
import {
  checkCount,
  DBR,
  dbrBaseType,
  dbrElementSize,
  DbrError,
  dbrFamily,
  dbrSizeN,
  dbrValueOffset,
  ECA,
  isReadableDbrType,
  isValidDbrType,
} from "./dbr_types.ts";
import { readBigEndian } from "./dbr_swap.ts";
import {
  arrayCtorOf,
  charArrayToString,
  convertWrittenNumbers,
  convertWrittenStrings,
  latin1Decode,
  nativeCode,
} from "./dbr_convert.ts";
import { type EpicsTime, fromEpicsTime } from "./epics_time.ts";

const STRING_SIZE = 40;
const MAX_STRING_CHARS = 39;

/** A DBR payload decoded on the client side. */
export interface DecodedDbr {
  /** DBR type of the payload. */
  type: number;
  /** Number of value elements decoded. */
  count: number;
  /** Values as a typed array of the type's value type (`string[]` for STRING types). */
  value: NativeValue;
  /** Alarm status (0 for plain types). */
  status: number;
  /** Alarm severity (0 for plain types). */
  severity: number;
  /** Unix milliseconds (TIME types only). */
  timestamp?: number;
  /** Exact EPICS timestamp (TIME types only). */
  epicsTime?: EpicsTime;
  /** Metadata carried by GR/CTRL (units, precision, limits, enum labels) or CLASS_NAME. */
  metadata: PvMetadata;
  /** DBR_STSACK_STRING: acknowledge-transient flag. */
  ackt?: boolean;
  /** DBR_STSACK_STRING: highest unacknowledged severity. */
  acks?: number;
}

function tooShort(type: number, count: number, have: number, need: number): DbrError {
  return new DbrError(
    ECA.BADCOUNT,
    `payload of ${have} bytes is too short for DBR type ${type} x ${count} (${need} bytes)`,
  );
}

function readStrings(payload: Uint8Array, pos: number, n: number): string[] {
  const out: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = latin1Decode(payload, pos + i * STRING_SIZE, MAX_STRING_CHARS);
  }
  return out;
}

/**
 * Converts the value part of a client write (WRITE / WRITE_NOTIFY payload of `type` × `count`)
 * to the native type. DBR_STRING elements are parsed (numbers, enum labels or indexes); a scalar
 * string may come in the short form (strlen+1 rounded to 8). A CHAR array written to a STRING
 * native is one long string up to the first NUL. With `maxCount`, elements beyond it are dropped
 * (rsrv clamps). Throws DbrError: BADTYPE (type invalid, or PUT_ACKT/ACKS — use
 * {@link decodeAck}), PUTFAIL (types 37/38, unconvertible value), BADCOUNT (count 0 or payload
 * shorter than the count implies).
 */
export function decodeDbrWrite(
  type: number,
  count: number,
  payload: Uint8Array,
  native: NativeType,
  enumLabels?: readonly string[],
  maxCount?: number,
): NativeValue {
  if (!isValidDbrType(type)) throw new DbrError(ECA.BADTYPE, `invalid DBR type ${type}`);
  if (type === DBR.PUT_ACKT || type === DBR.PUT_ACKS) {
    throw new DbrError(ECA.BADTYPE, `DBR type ${type} acknowledges alarms; use decodeAck`);
  }
  if (type > DBR.PUT_ACKS) throw new DbrError(ECA.PUTFAIL, `DBR type ${type} is not writable`);
  checkCount(count);
  if (count === 0) throw new DbrError(ECA.BADCOUNT, "write of 0 elements");
  const nativeBase = nativeCode(native);
  const base = dbrBaseType(type);
  const offset = dbrValueOffset(type);
  const longString = base === DBR.CHAR && nativeBase === DBR.STRING;
  const n = maxCount !== undefined && !longString && count > maxCount
    ? Math.max(1, maxCount)
    : count;
  if (base === DBR.STRING) {
    const need = dbrSizeN(type, n);
    if (payload.length < need) {
      const shortScalar = n === 1 && payload.length > offset &&
        payload.subarray(offset).includes(0);
      if (!shortScalar) throw tooShort(type, n, payload.length, need);
    }
    return convertWrittenStrings(readStrings(payload, offset, n), nativeBase, enumLabels);
  }
  const need = offset + n * dbrElementSize(type);
  if (payload.length < need) throw tooShort(type, n, payload.length, need);
  const values = readBigEndian(arrayCtorOf(base), payload, offset, n);
  if (longString) return [charArrayToString(values as Uint8Array)];
  return convertWrittenNumbers(values, base, nativeBase, enumLabels);
}

/** Decodes the u16 of a DBR_PUT_ACKT / DBR_PUT_ACKS write. Throws DbrError(BADCOUNT) if short. */
export function decodeAck(payload: Uint8Array): number {
  if (payload.length < 2) throw tooShort(DBR.PUT_ACKT, 1, payload.length, 2);
  return (payload[0] << 8) | payload[1];
}

/**
 * Decodes a DBR payload (READ_NOTIFY reply or monitor update) of `type` with `count` elements.
 * Numeric values come back as fresh native-endian typed arrays. Throws DbrError: BADTYPE (type
 * invalid or not readable), BADCOUNT (payload shorter than `dbr_size_n(type, count)`).
 */
export function decodeDbr(type: number, count: number, payload: Uint8Array): DecodedDbr {
  if (!isReadableDbrType(type)) throw new DbrError(ECA.BADTYPE, `DBR type ${type} is not readable`);
  checkCount(count);
  const need = dbrSizeN(type, count);
  if (payload.length < need) throw tooShort(type, count, payload.length, need);
  const family = dbrFamily(type);
  const base = dbrBaseType(type);
  const offset = dbrValueOffset(type);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const metadata: PvMetadata = {};
  const value = base === DBR.STRING
    ? readStrings(payload, offset, count)
    : readBigEndian(arrayCtorOf(base), payload, offset, count);
  const result: DecodedDbr = { type, count, value, status: 0, severity: 0, metadata };
  if (family === "plain") return result;
  if (family === "class") {
    if (count > 0) metadata.recordType = (value as string[])[0];
    return result;
  }
  if (family === "stsack") {
    result.status = view.getUint16(0);
    result.severity = view.getUint16(2);
    result.ackt = view.getUint16(4) !== 0;
    result.acks = view.getUint16(6);
    return result;
  }
  result.status = view.getInt16(0);
  result.severity = view.getInt16(2);
  if (family === "time") {
    const epicsTime = { seconds: view.getUint32(4), nanoseconds: view.getUint32(8) };
    result.epicsTime = epicsTime;
    result.timestamp = fromEpicsTime(epicsTime.seconds, epicsTime.nanoseconds);
    return result;
  }
  if (family === "sts" || base === DBR.STRING) return result;
  if (base === DBR.ENUM) {
    const n = Math.max(0, Math.min(16, view.getInt16(4)));
    const labels: string[] = [];
    for (let i = 0; i < n; i++) labels.push(latin1Decode(payload, 6 + i * 26, 25));
    metadata.enumLabels = labels;
    return result;
  }
  let at: number;
  if (base === DBR.FLOAT || base === DBR.DOUBLE) {
    metadata.precision = view.getInt16(4);
    metadata.units = latin1Decode(payload, 8, 7);
    at = 16;
  } else {
    metadata.units = latin1Decode(payload, 4, 7);
    at = 12;
  }
  const limits: number[] = [];
  const slots = family === "ctrl" ? 8 : 6;
  for (let i = 0; i < slots; i++) {
    switch (base) {
      case DBR.SHORT:
        limits.push(view.getInt16(at));
        at += 2;
        break;
      case DBR.CHAR:
        limits.push(view.getUint8(at));
        at += 1;
        break;
      case DBR.LONG:
        limits.push(view.getInt32(at));
        at += 4;
        break;
      case DBR.FLOAT:
        limits.push(view.getFloat32(at));
        at += 4;
        break;
      default:
        limits.push(view.getFloat64(at));
        at += 8;
    }
  }
  metadata.displayLimits = [limits[1], limits[0]];
  metadata.alarmLimits = [limits[5], limits[2]];
  metadata.warningLimits = [limits[4], limits[3]];
  if (family === "ctrl") metadata.controlLimits = [limits[7], limits[6]];
  return result;
}
