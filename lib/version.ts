/**
 * The program's version string: the version from deno.json, plus the git description when the
 * program was built from (or runs from) a git checkout.
 *
 * Release builds (`deno task bundle` / `deno task compile`) stamp the description into the bundle
 * by replacing a placeholder literal; runs from a source checkout ask `git describe`
 * when the run permission allows it.
 *
 * @module
 */

import denoConfig from "../deno.json" with { type: "json" };

/** Version from deno.json. */
export const VERSION: string = denoConfig.version;

// The build script replaces this literal (it must occur once in the program) by the git
// description of the build; unreplaced, it starts with "@@" and means "not stamped".
const buildStamp: string = "@@DISS_BUILD_STAMP@@";

/** Formats `VERSION` with an optional git description: `0.1.0 (git v0.1.0-3-gabc1234)`. */
export function formatVersion(version: string, gitDescription: string | undefined): string {
  const git = gitDescription?.trim();
  return git ? `${version} (git ${git})` : version;
}

/** The git description stamped at build time, or undefined when not stamped. */
export function stampedDescription(stamp: string = buildStamp): string | undefined {
  return stamp.startsWith("@@") || stamp.trim() === "" ? undefined : stamp.trim();
}

/** Asks git for the description of the checkout this module lives in (undefined if none). */
export function describeCheckout(moduleUrl: string = import.meta.url): string | undefined {
  if (!moduleUrl.startsWith("file:")) return undefined;
  try {
    if (Deno.permissions.querySync({ name: "run", command: "git" }).state !== "granted") {
      return undefined;
    }
    const dir = new URL(".", moduleUrl).pathname;
    const out = new Deno.Command("git", {
      args: ["-C", dir, "describe", "--tags", "--always", "--dirty"],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (!out.success) return undefined;
    const text = new TextDecoder().decode(out.stdout).trim();
    return text === "" ? undefined : text;
  } catch {
    return undefined;
  }
}

let cached: string | undefined;

/** The full version string, computed once: stamped build, else git checkout, else plain. */
export function versionString(): string {
  cached ??= formatVersion(VERSION, stampedDescription() ?? describeCheckout());
  return cached;
}
