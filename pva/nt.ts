/**
 * Normative Types an IOC serves (spec §7): NTScalar, NTScalarArray, NTEnum and NTNDArray type
 * descriptions and value helpers (alarm, time stamp). No I/O.
 *
 * @module
 */

import { STATUS_LABELS } from "../ca/mod.ts";
import { type FieldDesc, type ScalarType, type StructDesc, type StructValue, T } from "./pvdata.ts";

/** `alarm_t`. */
export const ALARM_T: StructDesc = T.struct("alarm_t", {
  severity: T.scalar("int"),
  status: T.scalar("int"),
  message: T.scalar("string"),
});

/** `time_t`. */
export const TIME_T: StructDesc = T.struct("time_t", {
  secondsPastEpoch: T.scalar("long"),
  nanoseconds: T.scalar("int"),
  userTag: T.scalar("int"),
});

/** `enum_t`. */
export const ENUM_T: StructDesc = T.struct("enum_t", {
  index: T.scalar("int"),
  choices: T.array("string"),
});

/** `display.form.choices` as QSRV sends them. */
export const DISPLAY_FORMS = [
  "Default",
  "String",
  "Binary",
  "Decimal",
  "Hex",
  "Exponential",
  "Engineering",
];

/** Normative type IDs. */
export const NT_IDS = {
  scalar: "epics:nt/NTScalar:1.0",
  scalarArray: "epics:nt/NTScalarArray:1.0",
  enum: "epics:nt/NTEnum:1.0",
  ndArray: "epics:nt/NTNDArray:1.0",
  attribute: "epics:nt/NTAttribute:1.0",
} as const;

const CA_STATUS_TO_PVA: readonly number[] = [
  0, // NO_ALARM
  1, // READ
  1, // WRITE
  1, // HIHI
  1, // HIGH
  1, // LOLO
  1, // LOW
  1, // STATE
  1, // COS
  2, // COMM
  2, // TIMEOUT
  1, // HW_LIMIT
  3, // CALC
  3, // SCAN
  3, // LINK
  3, // SOFT
  3, // BAD_SUB
  2, // UDF
  4, // DISABLE
  4, // SIMM
  4, // READ_ACCESS
  4, // WRITE_ACCESS
];

/** `alarm_t` value for a CA severity and status (§7.1 mapping; the STAT text in `message`). */
export function alarmValue(severity: number, caStatus: number): StructValue {
  return {
    severity,
    status: caStatus === 0 ? 0 : CA_STATUS_TO_PVA[caStatus] ?? 6,
    message: caStatus === 0 ? "" : STATUS_LABELS[caStatus] ?? "",
  };
}

/** `time_t` value for milliseconds since the Unix epoch (fractions kept to the nanosecond). */
export function timeValue(ms: number, userTag = 0): StructValue {
  const seconds = Math.floor(ms / 1000);
  const nanoseconds = Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6));
  return { secondsPastEpoch: BigInt(seconds), nanoseconds, userTag };
}

/** Milliseconds since the Unix epoch of a `time_t` value. */
export function timeMs(t: StructValue): number {
  return Number(t.secondsPastEpoch) * 1000 + Number(t.nanoseconds) / 1e6;
}

/** NTScalar (`array` false) or NTScalarArray type for a value type. */
export function ntScalarType(type: ScalarType, array: boolean): StructDesc {
  const numeric = type !== "string" && type !== "boolean";
  const limit = numeric ? T.scalar("double") : undefined;
  const fields: Record<string, FieldDesc> = {
    value: array ? T.array(type) : T.scalar(type),
    alarm: ALARM_T,
    timeStamp: TIME_T,
  };
  if (numeric && limit) {
    fields.display = T.struct("", {
      limitLow: limit,
      limitHigh: limit,
      description: T.scalar("string"),
      units: T.scalar("string"),
      precision: T.scalar("int"),
      form: ENUM_T,
    });
    fields.control = T.struct("", {
      limitLow: limit,
      limitHigh: limit,
      minStep: limit,
    });
  } else {
    fields.display = T.struct("", {
      description: T.scalar("string"),
      units: T.scalar("string"),
    });
  }
  return T.struct(array ? NT_IDS.scalarArray : NT_IDS.scalar, fields);
}

/** NTEnum type. */
export const NT_ENUM: StructDesc = T.struct(NT_IDS.enum, {
  value: ENUM_T,
  alarm: ALARM_T,
  timeStamp: TIME_T,
  display: T.struct("", { description: T.scalar("string") }),
});

/** NTNDArray `value` union members, in the published order (selector = index). */
export const ND_VALUE_MEMBERS: readonly ScalarType[] = [
  "boolean",
  "byte",
  "short",
  "int",
  "long",
  "ubyte",
  "ushort",
  "uint",
  "ulong",
  "float",
  "double",
];

/** `epics:nt/NTAttribute:1.0` element of NTNDArray `attribute`. */
export const ND_ATTRIBUTE: StructDesc = T.struct(NT_IDS.attribute, {
  name: T.scalar("string"),
  value: T.any(),
  descriptor: T.scalar("string"),
  sourceType: T.scalar("int"),
  source: T.scalar("string"),
});

/** NTNDArray type, in the order areaDetector's NDPluginPva sends (§7.4). */
export const NT_NDARRAY: StructDesc = T.struct(NT_IDS.ndArray, {
  value: T.union(
    "",
    Object.fromEntries(ND_VALUE_MEMBERS.map((t) => [`${t}Value`, T.array(t)])),
  ),
  codec: T.struct("codec_t", { name: T.scalar("string"), parameters: T.any() }),
  compressedSize: T.scalar("long"),
  uncompressedSize: T.scalar("long"),
  dimension: T.structArray(T.struct("dimension_t", {
    size: T.scalar("int"),
    offset: T.scalar("int"),
    fullSize: T.scalar("int"),
    binning: T.scalar("int"),
    reverse: T.scalar("boolean"),
  })),
  uniqueId: T.scalar("int"),
  dataTimeStamp: TIME_T,
  attribute: T.structArray(ND_ATTRIBUTE),
  descriptor: T.scalar("string"),
  alarm: ALARM_T,
  timeStamp: TIME_T,
  display: T.struct("display_t", {
    limitLow: T.scalar("double"),
    limitHigh: T.scalar("double"),
    description: T.scalar("string"),
    format: T.scalar("string"),
    units: T.scalar("string"),
  }),
});

/** A `dimension_t` element of `size` pixels, unbinned and not reversed. */
export function dimension(size: number): StructValue {
  return { size, offset: 0, fullSize: size, binning: 1, reverse: false };
}
