/**
 * glibc malloc tuning for image-sized buffers.
 *
 * Every new value version of a large array needs a fresh encoded payload (megabytes). With glibc's
 * defaults such buffers are `mmap`ed and `munmap`ed each time, so every encode pays page faults
 * for zeroed pages: measured here, encoding a 2 MB int32 array took 4–14 ms instead of about 1 ms.
 * Raising `M_MMAP_THRESHOLD` keeps such blocks in the heap for reuse; `M_TRIM_THRESHOLD` bounds
 * how much freed memory stays mapped. Same effect as starting with
 * `MALLOC_MMAP_THRESHOLD_=... MALLOC_TRIM_THRESHOLD_=...`.
 *
 * @module
 */

import { errorMessage } from "../core/errors.ts";

const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;

/** Result of {@link tuneMallocForLargeArrays}. */
export interface MallocTuning {
  /** Whether the thresholds were set. */
  applied: boolean;
  /** Why not (no FFI permission, not Linux/glibc, ...). */
  reason?: string;
  /** The mmap threshold set, in bytes. */
  mmapThreshold?: number;
}

/**
 * Raises glibc's mmap threshold (default 64 MiB, falling back to 32 MiB, glibc's documented
 * maximum) and trim threshold (default 256 MiB) via `mallopt`, when running on Linux with FFI
 * permission already granted (never prompts). Process-wide; safe to call more than once.
 */
export function tuneMallocForLargeArrays(
  mmapThreshold = 64 * 1024 * 1024,
  trimThreshold = 256 * 1024 * 1024,
): MallocTuning {
  if (Deno.build.os !== "linux") return { applied: false, reason: "not Linux" };
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return { applied: false, reason: "no FFI permission" };
    }
    const libc = Deno.dlopen("libc.so.6", {
      mallopt: { parameters: ["i32", "i32"], result: "i32" },
    });
    try {
      let threshold = mmapThreshold;
      if (libc.symbols.mallopt(M_MMAP_THRESHOLD, threshold) !== 1) {
        threshold = 32 * 1024 * 1024;
        if (libc.symbols.mallopt(M_MMAP_THRESHOLD, threshold) !== 1) {
          return { applied: false, reason: "mallopt refused" };
        }
      }
      libc.symbols.mallopt(M_TRIM_THRESHOLD, trimThreshold);
      return { applied: true, mmapThreshold: threshold };
    } finally {
      libc.close();
    }
  } catch (error) {
    return { applied: false, reason: errorMessage(error) };
  }
}

let trimmer: { trim: () => boolean; close: () => void } | undefined | null;

/**
 * Gives memory that glibc malloc holds free (after many clients left) back to the system with
 * `malloc_trim(0)`. Needs FFI permission already granted (never prompts); returns false where
 * that or glibc is missing. Takes a few milliseconds with a large heap: call it rarely.
 */
export function trimMalloc(): boolean {
  if (trimmer === undefined) {
    trimmer = null;
    try {
      if (
        Deno.build.os === "linux" && Deno.permissions.querySync({ name: "ffi" }).state === "granted"
      ) {
        const libc = Deno.dlopen("libc.so.6", {
          malloc_trim: { parameters: ["usize"], result: "i32" },
        });
        trimmer = { trim: () => libc.symbols.malloc_trim(0n) === 1, close: () => libc.close() };
      }
    } catch {
      trimmer = null;
    }
  }
  if (!trimmer) return false;
  trimmer.trim();
  return true;
}
