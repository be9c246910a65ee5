/**
 * Channel Access DBR type codes, ECA status codes, the codec error type and the size/offset
 * tables of every DBR structure (EPICS `db_access.h`, `access.cpp`).
 *
 * @module
 */

/** DBR request type codes 0..38. */
export const DBR = {
  STRING: 0,
  SHORT: 1,
  INT: 1,
  FLOAT: 2,
  ENUM: 3,
  CHAR: 4,
  LONG: 5,
  DOUBLE: 6,
  STS_STRING: 7,
  STS_SHORT: 8,
  STS_INT: 8,
  STS_FLOAT: 9,
  STS_ENUM: 10,
  STS_CHAR: 11,
  STS_LONG: 12,
  STS_DOUBLE: 13,
  TIME_STRING: 14,
  TIME_SHORT: 15,
  TIME_INT: 15,
  TIME_FLOAT: 16,
  TIME_ENUM: 17,
  TIME_CHAR: 18,
  TIME_LONG: 19,
  TIME_DOUBLE: 20,
  GR_STRING: 21,
  GR_SHORT: 22,
  GR_INT: 22,
  GR_FLOAT: 23,
  GR_ENUM: 24,
  GR_CHAR: 25,
  GR_LONG: 26,
  GR_DOUBLE: 27,
  CTRL_STRING: 28,
  CTRL_SHORT: 29,
  CTRL_INT: 29,
  CTRL_FLOAT: 30,
  CTRL_ENUM: 31,
  CTRL_CHAR: 32,
  CTRL_LONG: 33,
  CTRL_DOUBLE: 34,
  PUT_ACKT: 35,
  PUT_ACKS: 36,
  STSACK_STRING: 37,
  CLASS_NAME: 38,
} as const;

/** ECA status codes (`caerr.h`): `(message number << 3) | severity`; odd values are success. */
export const ECA = {
  NORMAL: 1,
  ALLOCMEM: 48,
  TOLARGE: 72,
  TIMEOUT: 80,
  BADTYPE: 114,
  INTERNAL: 142,
  GETFAIL: 152,
  PUTFAIL: 160,
  BADCOUNT: 176,
  BADSTR: 186,
  DISCONN: 192,
  DBLCHNL: 200,
  EVDISALLOW: 210,
  BADMONID: 242,
  DEFUNCT: 278,
  BADMASK: 330,
  IODONE: 339,
  IOINPROGRESS: 347,
  BADSYNCGRP: 354,
  PUTCBINPROG: 362,
  NORDACCESS: 368,
  NOWTACCESS: 376,
  ANACHRONISM: 386,
  NOSEARCHADDR: 392,
  NOCONVERT: 400,
  BADCHID: 410,
  BADFUNCPTR: 418,
  ISATTACHED: 424,
  UNAVAILINSERV: 432,
  CHANDESTROY: 440,
  BADPRIORITY: 450,
  NOTTHREADED: 458,
  "16KARRAYCLIENT": 464,
  CONNSEQTMO: 472,
  UNRESPTMO: 480,
} as const;

/** Error raised by the DBR codec; `eca` is the ECA status a server should report for it. */
export class DbrError extends Error {
  /** ECA status code (see {@link ECA}). */
  readonly eca: number;
  constructor(eca: number, message: string) {
    super(message);
    this.name = "DbrError";
    this.eca = eca;
  }
}

/** Highest valid DBR request type (DBR_CLASS_NAME). */
export const LAST_DBR_TYPE = 38;

/** Layout family of a DBR type. */
export type DbrFamily = "plain" | "sts" | "time" | "gr" | "ctrl" | "ack" | "stsack" | "class";

// dbr_size, value offset and element size per type (EPICS access.cpp tables).
// deno-fmt-ignore
const SIZE = new Int32Array([
  // 0..6 plain          STS 7..13             TIME 14..20
  40, 2, 4, 2, 1, 4, 8,  44, 6, 8, 6, 6, 8, 16,  52, 16, 16, 16, 16, 16, 24,
  // GR 21..27                CTRL 28..34                35 36  37  38
  44, 26, 44, 424, 20, 40, 72,  44, 30, 52, 424, 22, 48, 88,  2, 2,  48, 40,
]);
// deno-fmt-ignore
const OFFSET = new Int32Array([
  0, 0, 0, 0, 0, 0, 0,  4, 4, 4, 4, 5, 4, 8,  12, 14, 12, 14, 15, 12, 16,
  4, 24, 40, 422, 19, 36, 64,  4, 28, 48, 422, 21, 44, 80,  0, 0,  8, 0,
]);
const ELEMENT = new Int32Array([40, 2, 4, 2, 1, 4, 8]);

/** Whether `type` is an integer DBR code 0..38. */
export function isValidDbrType(type: number): boolean {
  return Number.isInteger(type) && type >= 0 && type <= LAST_DBR_TYPE;
}

/** Whether a client may read (READ_NOTIFY / EVENT_ADD) this DBR type: 0..34, 37, 38. */
export function isReadableDbrType(type: number): boolean {
  return isValidDbrType(type) && type !== DBR.PUT_ACKT && type !== DBR.PUT_ACKS;
}

/** Whether a client may write (WRITE / WRITE_NOTIFY) this DBR type: 0..36. */
export function isWritableDbrType(type: number): boolean {
  return isValidDbrType(type) && type <= DBR.PUT_ACKS;
}

function checkType(type: number): void {
  if (!isValidDbrType(type)) {
    throw new DbrError(ECA.BADTYPE, `invalid DBR type ${type} (valid: 0..${LAST_DBR_TYPE})`);
  }
}

/** Value type 0..6 (STRING..DOUBLE) of a DBR type; PUT_ACKT/ACKS give SHORT-sized u16 (3, ENUM). */
export function dbrBaseType(type: number): number {
  checkType(type);
  if (type <= DBR.CTRL_DOUBLE) return type % 7;
  return type === DBR.PUT_ACKT || type === DBR.PUT_ACKS ? DBR.ENUM : DBR.STRING;
}

/** Layout family of a DBR type. */
export function dbrFamily(type: number): DbrFamily {
  checkType(type);
  if (type <= DBR.DOUBLE) return "plain";
  if (type <= DBR.STS_DOUBLE) return "sts";
  if (type <= DBR.TIME_DOUBLE) return "time";
  if (type <= DBR.GR_DOUBLE) return "gr";
  if (type <= DBR.CTRL_DOUBLE) return "ctrl";
  if (type <= DBR.PUT_ACKS) return "ack";
  return type === DBR.STSACK_STRING ? "stsack" : "class";
}

/** Size in bytes of one value element of a DBR type. */
export function dbrElementSize(type: number): number {
  return ELEMENT[dbrBaseType(type)];
}

/** Byte offset of the first value element in the DBR structure. */
export function dbrValueOffset(type: number): number {
  checkType(type);
  return OFFSET[type];
}

/** Size of the DBR structure holding one element (`dbr_size`). */
export function dbrSize(type: number): number {
  checkType(type);
  return SIZE[type];
}

/**
 * `dbr_size_n`: unpadded bytes of a DBR structure with `count` elements (count 0 = metadata
 * only). Throws DbrError(BADTYPE) for an invalid type and DbrError(BADCOUNT) for a count that is
 * not an integer in 0..2^32-1.
 */
export function dbrSizeN(type: number, count: number): number {
  checkType(type);
  checkCount(count);
  return count <= 0 ? OFFSET[type] : SIZE[type] + (count - 1) * ELEMENT[dbrBaseType(type)];
}

/** Bytes of a DBR payload on the wire: `dbr_size_n(type, count)` rounded up to a multiple of 8. */
export function dbrPayloadSize(type: number, count: number): number {
  return padTo8(dbrSizeN(type, count));
}

/** Throws DbrError(BADCOUNT) unless `count` is an integer in 0..0xFFFFFFFF. */
export function checkCount(count: number): void {
  if (!Number.isInteger(count) || count < 0 || count > 0xffffffff) {
    throw new DbrError(ECA.BADCOUNT, `invalid element count ${count}`);
  }
}

/** Rounds a payload size up to the next multiple of 8 (CA payload padding). */
export function padTo8(size: number): number {
  return Math.ceil(size / 8) * 8;
}
