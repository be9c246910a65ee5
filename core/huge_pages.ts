/**
 * Transparent huge pages for the IOC's large buffers (series stacks, receive buffers), through
 * glibc's `glibc.malloc.hugetlb=1` tunable: with it, glibc asks the kernel for transparent huge
 * pages (`madvise(MADV_HUGEPAGE)`) on the memory it maps for large allocations, which is where the
 * runtime puts big ArrayBuffers and SharedArrayBuffers. Where transparent huge pages are `madvise`
 * or `always` (`/sys/kernel/mm/transparent_hugepage/enabled`), a 2 GB series stack is then about
 * a thousand 2 MB pages instead of half a million 4 KB ones. Without the tunable nothing changes
 * but the page size; glibc reads it once, when the process starts, so the launchers set it and
 * the IOC's restart with the runtime settings adds it (`lib/runtime_reexec.ts`).
 *
 * Why it matters, measured on the 2-core VM this was built on (a guest whose memory manager visits
 * idle pages, so that touching a page again after some idle seconds costs about as much as a fault):
 *
 * - A worker copying 2 MB images into a 1 GB stack written 40 s before: 0.63 ms per image with 4 KB
 *   pages, 0.12 ms with huge pages (0.10–0.14 ms either way right after the stack was written).
 * - Writing a new 1 GB stack: 3.1 s with 4 KB pages, 1.4 s with huge pages.
 * - End to end at 1000 frames/s, series of 1000 images of 1028×512 uint32 (2 GB stacks prepared
 *   for about a minute before the first series): with 4 KB pages two runs of three series decoded
 *   at 0.91–0.92 and 0.79–0.93 of the rate sent, and the second series of the first run overflowed
 *   the decode backlog (ERROR); with huge pages 1.00–1.01.
 *
 * @module
 */

/** The environment variable glibc reads its tunables from (at process start). */
export const GLIBC_TUNABLES_ENV = "GLIBC_TUNABLES";

/** The tunable that makes glibc's large allocations use transparent huge pages. */
export const HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1";

/**
 * The value `GLIBC_TUNABLES` should have, given its current `value`: the tunable added to the
 * others (colon-separated), or the value as it is when it names `glibc.malloc.hugetlb` already
 * (whatever it says: the user's choice is kept).
 */
export function withHugePages(value: string | undefined): string {
  if (value === undefined || value.trim() === "") return HUGE_PAGES_TUNABLE;
  const names = value.split(":").map((entry) => entry.split("=")[0].trim());
  if (names.includes("glibc.malloc.hugetlb")) return value;
  return `${value}:${HUGE_PAGES_TUNABLE}`;
}

/** Whether this process got the huge-page tunable, as glibc read it at start-up. */
export interface HugePagesStatus {
  /** True when `GLIBC_TUNABLES` names `glibc.malloc.hugetlb` (set by us or by the user). */
  ok: boolean;
  /** `GLIBC_TUNABLES` as the process started with it (undefined: unset). */
  tunables: string | undefined;
}

/**
 * The huge-page state of a process started with `env` on `os`, or undefined where the tunable
 * does not apply (not Linux). A value of `glibc.malloc.hugetlb` chosen by the user (also 0) counts
 * as set: only its absence is worth a warning.
 */
export function hugePagesStatus(
  env: Readonly<Record<string, string | undefined>>,
  os: string,
): HugePagesStatus | undefined {
  if (os !== "linux") return undefined;
  const tunables = env[GLIBC_TUNABLES_ENV];
  return { ok: tunables !== undefined && withHugePages(tunables) === tunables, tunables };
}
