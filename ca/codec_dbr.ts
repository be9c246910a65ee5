/**
 * The server's default {@link DbrCodec}: an adapter over `ca/dbr.ts`.
 *
 * @module
 */

import type { DbrCodec } from "./codec.ts";
import {
  dbrSizeN,
  decodeDbrWrite,
  encodeDbr,
  isReadableDbrType,
  isWritableDbrType,
  toNativeValue,
} from "./dbr.ts";

/** DBR codec backed by `ca/dbr.ts` (payloads come back padded to 8 bytes). */
export const defaultCodec: DbrCodec = {
  isReadable: isReadableDbrType,
  isWritable: isWritableDbrType,
  sizeN: dbrSizeN,
  encode: (type, count, snapshot, reuse) =>
    encodeDbr(
      type,
      count,
      {
        value: snapshot.value,
        type: snapshot.native,
        timestamp: snapshot.timestamp,
        severity: snapshot.severity,
        status: snapshot.status,
        metadata: snapshot.metadata,
      },
      0,
      reuse,
    ),
  decodeWrite: (type, count, payload, native, enumLabels) =>
    decodeDbrWrite(type, count, payload, native, enumLabels),
  toNative: (value, native, maxCount) => toNativeValue(value, native, maxCount),
};
