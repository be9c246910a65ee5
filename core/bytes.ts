/**
 * Byte-array helpers shared by the protocol codecs, the viewer and the tests.
 *
 * @module
 */

/** Concatenates byte arrays, in order, into one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
