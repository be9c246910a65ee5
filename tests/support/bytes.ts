/**
 * Byte helpers for protocol tests.
 *
 * @module
 */

import { concatBytes } from "../../core/bytes.ts";

/** Concatenates byte arrays into one new array. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}

/**
 * Asserts two byte (or typed) arrays are equal, failing with the first differing index instead of
 * a diff of the whole arrays (which for images is enormous).
 */
export function assertSameBytes(
  actual: ArrayBufferView,
  expected: ArrayBufferView,
  message = "bytes differ",
): void {
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  if (a.length !== b.length) {
    throw new Error(`${message}: ${a.length} bytes instead of ${b.length}`);
  }
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      throw new Error(`${message}: first difference at byte ${i} (${a[i]} instead of ${b[i]})`);
    }
  }
}

/** SHA-256 of the bytes of `view`, as lowercase hex (as Python's `hashlib...hexdigest()`). */
export async function sha256Hex(view: ArrayBufferView): Promise<string> {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, "0")).join("");
}
