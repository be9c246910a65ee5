/**
 * Channel Access DBR codec: pure functions (no I/O) that encode PV values into DBR payloads for
 * the server, decode client writes into native values, and decode DBR payloads for clients.
 *
 * This module re-exports the pieces: type/size tables and ECA codes (`dbr_types.ts`),
 * conversions (`dbr_convert.ts`), encoding (`dbr_encode.ts`), decoding (`dbr_decode.ts`),
 * byte swapping (`dbr_swap.ts`) and EPICS time (`epics_time.ts`). See docs/ca-dbr.md.
 *
 * @example
 * ```ts
 * import { DBR, encodeDbr } from "./dbr.ts";
 * const payload = encodeDbr(DBR.TIME_DOUBLE, 1, {
 *   value: new Float64Array([3.14159]), type: "double", timestamp: Date.now(),
 *   severity: 0, status: 0, metadata: {},
 * }, 16); // 16 bytes of room for the CA header, then the 24-byte payload
 * ```
 *
 * @module
 */

export {
  checkCount,
  DBR,
  dbrBaseType,
  dbrElementSize,
  DbrError,
  type DbrFamily,
  dbrFamily,
  dbrPayloadSize,
  dbrSize,
  dbrSizeN,
  dbrValueOffset,
  ECA,
  isReadableDbrType,
  isValidDbrType,
  isWritableDbrType,
  LAST_DBR_TYPE,
  padTo8,
} from "./dbr_types.ts";
export { type DbrSource, encodeDbr, MAX_ENCODED_PAYLOAD } from "./dbr_encode.ts";
export { decodeAck, decodeDbr, decodeDbrWrite, type DecodedDbr } from "./dbr_decode.ts";
export {
  castArray,
  charArrayToString,
  FLT_MAX,
  formatFloat,
  formatFloat32,
  parseEnumString,
  parseFloatPrefix,
  parseWholeFloat,
  parseWholeInteger,
  stringToCharArray,
  toNativeValue,
} from "./dbr_convert.ts";
export {
  type DbrNumericArray,
  HOST_IS_LITTLE_ENDIAN,
  readBigEndian,
  writeBigEndian,
  writeConverted,
} from "./dbr_swap.ts";
export { EPICS_EPOCH_OFFSET, type EpicsTime, fromEpicsTime, toEpicsTime } from "./epics_time.ts";
