/**
 * Server side of the DBR codec: builds the payload of a READ_NOTIFY reply or monitor update for
 * any readable DBR type from a PV's native value and metadata, converting as rsrv does.
 *
 * @module
 */

import type { NativeType, NativeValue, NumericArray, PvMetadata } from "./pv.ts";
import {
  checkCount,
  DBR,
  dbrBaseType,
  DbrError,
  dbrFamily,
  dbrSizeN,
  dbrValueOffset,
  ECA,
  isReadableDbrType,
  isValidDbrType,
  padTo8,
} from "./dbr_types.ts";
import { type DbrNumericArray, writeBigEndian, writeConverted } from "./dbr_swap.ts";
import {
  arrayCtorOf,
  castScalar,
  formatElement,
  latin1Encode,
  nativeCode,
  stringToReadNumber,
} from "./dbr_convert.ts";
import { type EpicsTime, toEpicsTime } from "./epics_time.ts";

/** What a DBR reply is built from: the PV's current value, alarm state, time and metadata. */
export interface DbrSource {
  /**
   * Current value in native form (`string[]` for STRING), or a narrower typed array whose values
   * the native type holds exactly (converted while writing).
   */
  value: NativeValue | NumericArray;
  /** Native type of the PV. */
  type: NativeType;
  /** Timestamp in Unix milliseconds (may be fractional). */
  timestamp: number;
  /** Exact EPICS timestamp; when given it is sent instead of `timestamp` (nanosecond exact). */
  epicsTime?: EpicsTime;
  /** Alarm severity (0..3). */
  severity: number;
  /** Alarm status (0..21). */
  status: number;
  /** Display metadata (units, precision, limits, enum labels, record type). */
  metadata: PvMetadata;
  /** Whether transient alarms must be acknowledged (DBR_STSACK_STRING; default true). */
  ackt?: boolean;
  /** Highest unacknowledged severity (DBR_STSACK_STRING; default 0). */
  acks?: number;
}

/** Largest payload the codec builds (2 GiB − 1); bigger requests fail with ECA_TOLARGE. */
export const MAX_ENCODED_PAYLOAD = 0x7fffffff;

const STRING_SIZE = 40;
const UNITS_SIZE = 8;
const ENUM_STRING_SIZE = 26;
const MAX_ENUM_STATES = 16;

/**
 * Encodes a DBR payload of `type` with exactly `count` elements (zeros past the value's length;
 * count 0 = metadata only). Returns a new zero-filled buffer of `headerRoom` + the payload padded
 * to a multiple of 8, with the payload at offset `headerRoom` (keep `headerRoom` a multiple of 8
 * for the aligned fast path). When `reuse` has exactly that length it is filled instead of a new
 * buffer (every byte is rewritten: the value region by the conversion, the rest zeroed). Throws
 * DbrError: BADTYPE (type not 0..38), GETFAIL (PUT_ACKT/ACKS are not readable, or a STRING value
 * is not a number), BADCOUNT, TOLARGE.
 */
export function encodeDbr(
  type: number,
  count: number,
  source: DbrSource,
  headerRoom = 0,
  reuse?: Uint8Array,
): Uint8Array {
  if (!isReadableDbrType(type)) {
    if (isValidDbrType(type)) throw new DbrError(ECA.GETFAIL, `DBR type ${type} is write-only`);
    throw new DbrError(ECA.BADTYPE, `invalid DBR type ${type}`);
  }
  checkCount(count);
  if (!Number.isInteger(headerRoom) || headerRoom < 0) {
    throw new DbrError(ECA.INTERNAL, `invalid header room ${headerRoom}`);
  }
  const size = dbrSizeN(type, count);
  if (size > MAX_ENCODED_PAYLOAD) {
    throw new DbrError(ECA.TOLARGE, `DBR type ${type} x ${count} needs ${size} bytes`);
  }
  const length = headerRoom + padTo8(size);
  const valueAt = headerRoom + dbrValueOffset(type);
  let out: Uint8Array;
  if (reuse?.length === length) {
    out = reuse;
    const end = valueAt + numericValueBytes(type, count, source);
    out.fill(0, 0, valueAt);
    out.fill(0, end);
  } else {
    out = new Uint8Array(length);
  }
  writeMetadata(out, headerRoom, type, source);
  writeValue(out, valueAt, type, count, source);
  return out;
}

/**
 * Bytes {@link writeValue} is certain to overwrite for a numeric value (each element in full);
 * 0 for STRING and CLASS_NAME values, whose fixed-size fields are only partly written.
 */
function numericValueBytes(type: number, count: number, source: DbrSource): number {
  const base = dbrBaseType(type);
  if (type === DBR.CLASS_NAME || base === DBR.STRING) return 0;
  return dbrSizeN(base, Math.min(count, source.value.length));
}

function writeValue(
  out: Uint8Array,
  pos: number,
  type: number,
  count: number,
  source: DbrSource,
): void {
  const base = dbrBaseType(type);
  const nativeBase = nativeCode(source.type);
  if (type === DBR.CLASS_NAME) {
    if (count > 0) latin1Encode(out, pos, source.metadata.recordType ?? "", STRING_SIZE);
    return;
  }
  const value = source.value;
  const n = Math.min(count, value.length);
  if (n === 0) return;
  if (base === DBR.STRING) {
    const { precision, enumLabels } = source.metadata;
    for (let i = 0; i < n; i++) {
      const x = value[i];
      const text = typeof x === "string"
        ? x
        : formatElement(x, nativeBase, precision, nativeBase === DBR.ENUM ? enumLabels : undefined);
      latin1Encode(out, pos + i * STRING_SIZE, text, STRING_SIZE);
    }
    return;
  }
  let numbers: DbrNumericArray;
  if (Array.isArray(value)) {
    numbers = new Float64Array(n);
    for (let i = 0; i < n; i++) numbers[i] = stringToReadNumber(value[i]);
  } else {
    numbers = value as DbrNumericArray;
  }
  if (numbers instanceof arrayCtorOf(base)) writeBigEndian(out, pos, numbers, n);
  else writeConverted(out, pos, numbers, n, base);
}

function writeMetadata(out: Uint8Array, pos: number, type: number, source: DbrSource): void {
  const family = dbrFamily(type);
  if (family === "plain" || family === "class") return;
  const view = new DataView(out.buffer, out.byteOffset + pos);
  view.setInt16(0, source.status);
  view.setInt16(2, source.severity);
  if (family === "stsack") {
    view.setUint16(4, source.ackt === false ? 0 : 1);
    view.setUint16(6, source.acks ?? 0);
    return;
  }
  if (family === "time") {
    const stamp = source.epicsTime ?? toEpicsTime(source.timestamp);
    view.setUint32(4, stamp.seconds);
    view.setUint32(8, stamp.nanoseconds);
    return;
  }
  if (family === "sts") return;
  const base = dbrBaseType(type);
  const meta = source.metadata;
  if (base === DBR.STRING) return;
  if (base === DBR.ENUM) {
    const labels = source.type === "enum" ? meta.enumLabels ?? [] : [];
    const n = Math.min(labels.length, MAX_ENUM_STATES);
    view.setInt16(4, n);
    for (let i = 0; i < n; i++) {
      latin1Encode(out, pos + 6 + i * ENUM_STRING_SIZE, labels[i], ENUM_STRING_SIZE);
    }
    return;
  }
  const limits = [
    meta.displayLimits?.[1] ?? 0,
    meta.displayLimits?.[0] ?? 0,
    meta.alarmLimits?.[1] ?? 0,
    meta.warningLimits?.[1] ?? 0,
    meta.warningLimits?.[0] ?? 0,
    meta.alarmLimits?.[0] ?? 0,
  ];
  if (family === "ctrl") limits.push(meta.controlLimits?.[1] ?? 0, meta.controlLimits?.[0] ?? 0);
  let at: number;
  if (base === DBR.FLOAT || base === DBR.DOUBLE) {
    view.setInt16(4, meta.precision ?? 0);
    latin1Encode(out, pos + 8, meta.units ?? "", UNITS_SIZE);
    at = 16;
  } else {
    latin1Encode(out, pos + 4, meta.units ?? "", UNITS_SIZE);
    at = 12;
  }
  for (const limit of limits) {
    const x = castScalar(limit, base);
    switch (base) {
      case DBR.SHORT:
        view.setInt16(at, x);
        at += 2;
        break;
      case DBR.CHAR:
        view.setUint8(at, x);
        at += 1;
        break;
      case DBR.LONG:
        view.setInt32(at, x);
        at += 4;
        break;
      case DBR.FLOAT:
        view.setFloat32(at, x);
        at += 4;
        break;
      default:
        view.setFloat64(at, x);
        at += 8;
    }
  }
}
